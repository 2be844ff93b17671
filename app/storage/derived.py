"""Derived pieces, kept in step with the observations inside the same unit of work.

A new observation is cut into its per-region pieces by :func:`app.domain.pieces.cut`; a
correction or retraction deactivates the old record's pieces; at the end of the unit (or of a
savepoint) the validity intervals of every line of testimony touched are brought up to date
(:func:`app.domain.asof.validity_until`). ``rebuild`` recomputes everything from the raw
observations (``frontline rebuild``, a new region boundary).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from typing import Any

from shapely.geometry import MultiPolygon
from sqlalchemy import Integer, bindparam, func, literal_column, select, union_all
from sqlalchemy.sql import Select

from app.domain import asof
from app.domain.errors import InvalidInput
from app.domain.model import NewObservation
from app.domain.pieces import Clipped, Preclipped, cut
from app.storage.base import Part, chunks
from app.storage.dialect import lock_keys
from app.storage.observations import observation_from_row
from app.storage.regions import bbox_values
from app.storage.tables import observations, pieces
from app.storage.types import UTCDateTime

Line = tuple[str, str | None, str, str, str]  # (region, party, status, source, basis)


LINE_COLUMNS = ("region", "party", "status", "source", "basis")


def _line(row: Any) -> Line:
    return (row["region"], row["party"], row["status"], row["source"], row["basis"])


def piece_rows(
    observation_id: int,
    obs: NewObservation,
    boundaries: dict[str, MultiPolygon],
    where: str,
    active: bool = True,
    clipped: Clipped | None = None,
) -> list[dict[str, Any]]:
    """The rows of the pieces of one observation (see :func:`app.domain.pieces.cut`)."""
    return [
        {
            "observation_id": observation_id,
            "region": piece.region,
            "source": obs.source,
            "party": obs.party,
            "status": str(obs.status),
            "basis": str(obs.basis),
            "valid_from": obs.valid_from,
            "valid_to": obs.valid_to,
            "valid_until": obs.valid_to,
            "active": active,
            "geometry": piece.geometry,
            **bbox_values(piece.geometry),
            "area_km2": piece.area_km2,
            "reported_area_km2": piece.reported_area_km2,
        }
        for piece in cut(obs, boundaries, where, clipped)
    ]


class Derived(Part):
    def __init__(self, unit: Any) -> None:
        super().__init__(unit)
        # Per line of testimony touched in this unit, where it changed first: the earliest
        # valid_from of a piece added or taken out, or None to recompute the whole line.
        self._touched: dict[Line, dt.datetime | None] = {}

    def _touch(self, rows: Iterable[Any], whole: bool = False) -> None:
        for row in rows:
            line = _line(row)
            at = None if whole else row["valid_from"]
            if line in self._touched:
                known = self._touched[line]
                at = None if known is None or at is None else min(known, at)
            self._touched[line] = at

    def add(
        self,
        observation_id: int,
        obs: NewObservation,
        where: str,
        preclipped: Preclipped | None = None,
    ) -> dict[str, float]:
        """Store the pieces of a new observation; its measured area per region. Each piece is
        stored open until its own ``valid_to``: right when it is the newest of its line (an
        import's next map); :meth:`flush` ends the one it follows, and mends the line if it
        landed in the middle (a back-dated record). ``preclipped``: the drawing already clipped
        (by an import, outside the transaction), used if the boundaries have not changed since."""
        regions = self.unit.regions
        clipped = regions.still_clipped(preclipped)
        rows = piece_rows(observation_id, obs, regions.boundaries, where, clipped=clipped)
        if rows:
            self.c.execute(pieces.insert(), rows)
        self._touch(rows)
        return {r["region"]: r["area_km2"] for r in rows if r["area_km2"] is not None}

    def deactivate(self, observation_id: int) -> None:
        """Take a corrected or retracted record's pieces out of the default views."""
        rows = self.c.execute(
            select(*(pieces.c[name] for name in (*LINE_COLUMNS, "valid_from"))).where(
                pieces.c.observation_id == observation_id
            )
        ).mappings()
        self._touch(rows)
        self.c.execute(
            pieces.update().where(pieces.c.observation_id == observation_id).values(active=False)
        )

    def rebuild(self, region: str | None = None) -> int:
        """Recompute derived pieces (of one region, or all) from the raw observations."""
        boundaries = self.unit.regions.boundaries
        if region is not None:
            boundaries = {region: boundaries[region]}
            self.c.execute(pieces.delete().where(pieces.c.region == region))
        else:
            self.c.execute(pieces.delete())
        superseded = set(
            self.c.execute(
                select(observations.c.supersedes).where(observations.c.supersedes.is_not(None))
            ).scalars()
        )
        count = 0
        for row in self.c.execute(select(observations)).mappings().all():
            obs = observation_from_row(row)
            if region is not None and obs.reported_region not in (None, region):
                obs = replace(
                    obs, reported_area_km2=None, reported_region=None, reported_qualifier=None
                )
            active = row["retracted_at"] is None and row["id"] not in superseded
            try:
                new = piece_rows(row["id"], obs, boundaries, f"observation {row['id']}", active)
            except InvalidInput:
                new = []  # touches none of the regions being rebuilt
            if new:
                self.c.execute(pieces.insert(), new)
                count += len(new)
                self._touch(new, whole=True)
        return count

    def flush(self) -> None:
        """Bring the validity intervals of every line of testimony touched so far up to date.

        Two transactions writing to the same line must not each compute its intervals without
        the other's row: the lines are locked first (the second writer waits here for the first
        to commit, then, READ COMMITTED, sees its rows), all in one order, so no two writers
        wait on each other. Only the part of a line from the piece before its first change on
        is read: for a piece added at the head of its line, that piece and the one it ends."""
        if not self._touched:
            return
        lines = sorted(self._touched, key=str)
        lock_keys(self.c, ["|".join(str(part) for part in line) for line in lines])
        changed: list[dict[str, Any]] = []
        for batch in chunks(lines, TAILS_PER_STATEMENT):
            shape = tuple((line[1] is None, self._touched[line] is None) for line in batch)
            params: dict[str, Any] = {}
            for i, line in enumerate(batch):
                for name, value in zip(LINE_COLUMNS, line, strict=True):
                    params[f"{name}_{i}"] = value
                params[f"since_{i}"] = self._touched[line]
            tails: list[list[Any]] = [[] for _ in batch]
            for row in self.c.execute(_tails(shape), params):
                tails[row.line].append(row)
            for line, rows in zip(batch, tails, strict=True):
                rows.sort(key=lambda row: (row.valid_from, row.observation_id))
                for row, until in zip(rows, asof.validity_until(rows), strict=True):
                    if row.valid_until != until:
                        changed.append({"o": row.observation_id, "r": line[0], "until": until})
        if changed:
            self.c.execute(_SET_UNTIL, changed)
        self._touched.clear()


# Lines whose tails one statement reads (a UNION ALL of that many index probes).
TAILS_PER_STATEMENT = 32

_SET_UNTIL = (
    pieces.update()
    .where(pieces.c.observation_id == bindparam("o"), pieces.c.region == bindparam("r"))
    .values(valid_until=bindparam("until"))
)


@lru_cache(maxsize=256)  # a shape per mix of lines; bounded for a long-lived server
def _tails(shape: tuple[tuple[bool, bool], ...]) -> Any:
    """The tails (see :func:`_tail`) of several lines in one statement: one round trip, however
    many lines a unit touched. ``shape``: per line, (party is null, whole line); the rows carry
    the line's position (``line``) and come in no particular order. Built once per shape."""
    branches = [_tail(i, party_is_null, whole) for i, (party_is_null, whole) in enumerate(shape)]
    return branches[0] if len(branches) == 1 else union_all(*branches)


def _tail(i: int, party_is_null: bool, whole: bool) -> Select[Any]:
    """The active pieces of the ``i``-th line of a statement (its parameters suffixed ``_i``),
    from the one in force before ``since_i`` on (a suffix of the line, which holds every piece
    whose interval may have changed since then), or all of them (``whole``)."""
    party = pieces.c.party
    same_line = [
        pieces.c.region == bindparam(f"region_{i}"),
        party.is_(None) if party_is_null else party == bindparam(f"party_{i}"),
        pieces.c.status == bindparam(f"status_{i}"),
        pieces.c.source == bindparam(f"source_{i}"),
        pieces.c.basis == bindparam(f"basis_{i}"),
        pieces.c.active.is_(True),
    ]
    query = select(
        literal_column(str(i), Integer).label("line"),
        pieces.c.observation_id,
        pieces.c.valid_from,
        pieces.c.valid_to,
        pieces.c.valid_until,
    ).where(*same_line)
    if whole:
        return query
    since = bindparam(f"since_{i}", type_=UTCDateTime())
    before = (
        select(pieces.c.valid_from)
        .where(*same_line, pieces.c.valid_from < since)
        .order_by(pieces.c.valid_from.desc())
        .limit(1)
        .scalar_subquery()
    )
    return query.where(pieces.c.valid_from >= func.coalesce(before, since))
