"""Derived pieces, kept in step with the observations inside the same unit of work.

A new observation is cut into its per-region pieces by :func:`app.domain.pieces.cut`; a
correction or retraction deactivates the old record's pieces; at the end of the unit (or of a
savepoint) the validity intervals of every line of testimony touched are brought up to date
(:func:`app.domain.asof.validity_until`). ``rebuild`` recomputes everything from the raw
observations (``frontline rebuild``, a new region boundary).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shapely.geometry import MultiPolygon
from sqlalchemy import select

from app.domain import asof
from app.domain.errors import InvalidInput
from app.domain.model import NewObservation
from app.domain.pieces import cut
from app.storage.base import Part
from app.storage.dialect import lock_key
from app.storage.observations import observation_from_row
from app.storage.regions import bbox_values
from app.storage.tables import observations, pieces

Line = tuple[str, str | None, str, str, str]  # (region, party, status, source, basis)


def _line(row: Any) -> Line:
    return (row["region"], row["party"], row["status"], row["source"], row["basis"])


def piece_rows(
    observation_id: int,
    obs: NewObservation,
    boundaries: dict[str, MultiPolygon],
    where: str,
    active: bool = True,
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
        for piece in cut(obs, boundaries, where)
    ]


class Derived(Part):
    def __init__(self, unit: Any) -> None:
        super().__init__(unit)
        self._touched: set[Line] = set()

    def add(self, observation_id: int, obs: NewObservation, where: str) -> dict[str, float]:
        """Store the pieces of a new observation; its measured area per region."""
        rows = piece_rows(observation_id, obs, self.unit.regions.boundaries, where)
        if rows:
            self.c.execute(pieces.insert(), rows)
        self._touched.update(_line(r) for r in rows)
        return {r["region"]: r["area_km2"] for r in rows if r["area_km2"] is not None}

    def deactivate(self, observation_id: int) -> None:
        """Take a corrected or retracted record's pieces out of the default views."""
        rows = self.c.execute(
            select(pieces).where(pieces.c.observation_id == observation_id)
        ).mappings()
        self._touched.update(_line(r) for r in rows)
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
                self._touched.update(_line(r) for r in new)
        return count

    def flush(self) -> None:
        """Bring the validity intervals of every line of testimony touched so far up to date."""
        for line in sorted(self._touched, key=str):
            self._refresh_intervals(line)
        self._touched.clear()

    def _refresh_intervals(self, line: Line) -> None:
        # Two transactions writing to the same line of testimony must not each compute the
        # intervals without the other's row: the second waits here for the first to commit,
        # then (READ COMMITTED) sees it. Lines are locked in one order, so no two wait on each
        # other.
        lock_key(self.c, "|".join(str(part) for part in line))
        region, party, status, source, basis = line
        rows = self.c.execute(
            select(
                pieces.c.observation_id,
                pieces.c.valid_from,
                pieces.c.valid_to,
                pieces.c.valid_until,
            )
            .where(
                pieces.c.region == region,
                pieces.c.party.is_(None) if party is None else pieces.c.party == party,
                pieces.c.status == status,
                pieces.c.source == source,
                pieces.c.basis == basis,
                pieces.c.active.is_(True),
            )
            .order_by(pieces.c.valid_from, pieces.c.observation_id)
        ).all()
        for row, until in zip(rows, asof.validity_until(rows), strict=True):
            if row.valid_until != until:
                self.c.execute(
                    pieces.update()
                    .where(pieces.c.observation_id == row.observation_id, pieces.c.region == region)
                    .values(valid_until=until)
                )
