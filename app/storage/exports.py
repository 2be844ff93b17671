"""Rows for research exports: every (observation, region) piece with its observation's revision
fields, read with SQLAlchemy Core the same way on SQLite and PostGIS.

By default the rows are the current record, the pieces every default view shows. With
``all_revisions`` superseded and retracted records come too, flagged (``active`` false). With
``known_at`` everything is as the record stood then: only what was recorded by that moment, and a
correction or retraction made later has not happened yet.

Validity intervals follow :mod:`app.domain.asof`. A current piece has the interval it has in the
current record (or the record at ``known_at``); a piece that has left the record has the interval
it had just before it left, when it was last in force, so an export of all revisions reads as the
history of what the service said.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql import ColumnElement

from app.domain import asof
from app.domain.model import Piece
from app.storage.base import Part
from app.storage.pieces import (
    PIECE_COLUMNS,
    PieceFilter,
    column_in,
    known_then,
    piece_from_row,
)
from app.storage.tables import observations, pieces, sources

# The revision columns an export adds to a piece's properties, in order.
REVISION_FIELDS = (
    "supersedes",
    "superseded_by",
    "retracted_at",
    "retraction_reason",
    "recorded_by",
    "active",
)


@dataclass(frozen=True)
class Revision:
    """Where an observation stands in its chain of corrections (as of ``known_at`` if given)."""

    supersedes: int | None
    superseded_by: int | None
    retracted_at: dt.datetime | None
    retraction_reason: str | None
    recorded_by: str | None
    left_at: dt.datetime | None  # when it left the record: corrected or retracted

    @property
    def active(self) -> bool:
        """Still part of the record: neither superseded nor retracted."""
        return self.left_at is None

    def values(self) -> dict[str, Any]:
        """The :data:`REVISION_FIELDS` with their Python values."""
        return {name: getattr(self, name) for name in REVISION_FIELDS}


@dataclass(frozen=True)
class ExportRow:
    piece: Piece  # without geometry: load it with unit.pieces.geometries
    revision: Revision


class Exports(Part):
    def rows(
        self,
        flt: PieceFilter,
        *,
        regions: Sequence[str] | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        known_at: dt.datetime | None = None,
        all_revisions: bool = False,
    ) -> list[ExportRow]:
        """The pieces the filters select, oldest first (by ``valid_from``, then observation id,
        then region), optionally only those whose ``valid_from`` lies in [``start``, ``end``]."""
        newer = observations.alias("newer")
        successor_q = select(
            newer.c.supersedes.label("of"),
            func.min(newer.c.id).label("id"),
            func.min(newer.c.recorded_at).label("at"),
        ).where(newer.c.supersedes.is_not(None))
        if known_at is not None:
            successor_q = successor_q.where(newer.c.recorded_at <= known_at)
        successor = successor_q.group_by(newer.c.supersedes).subquery("successor")
        query = (
            select(
                *PIECE_COLUMNS,
                observations.c.supersedes,
                observations.c.retracted_at,
                observations.c.retraction_reason,
                observations.c.recorded_by,
                successor.c.id.label("superseded_by"),
                successor.c.at.label("superseded_at"),
            )
            .select_from(pieces)
            .join(observations, observations.c.id == pieces.c.observation_id)
            .join(sources, sources.c.slug == pieces.c.source)
            .outerjoin(successor, successor.c.of == observations.c.id)
            .where(*_selection(flt, regions, known_at, all_revisions))
            .order_by(pieces.c.valid_from, pieces.c.observation_id, pieces.c.region)
        )
        rows = [
            ExportRow(piece_from_row(row), _revision(row, known_at))
            for row in self.c.execute(query).mappings()
        ]
        if (
            known_at is not None or all_revisions
        ):  # stored intervals are those of the current record
            rows = _with_intervals(rows)
        return [
            r
            for r in rows
            if (start is None or r.piece.valid_from >= start)
            and (end is None or r.piece.valid_from <= end)
        ]


def _selection(
    flt: PieceFilter,
    regions: Sequence[str] | None,
    known_at: dt.datetime | None,
    all_revisions: bool,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if all_revisions:
        if known_at is not None:
            where.append(observations.c.recorded_at <= known_at)
    elif known_at is not None:
        where.extend(known_then(known_at))
    else:
        where.append(pieces.c.active.is_(True))
    if regions is not None:
        where.append(pieces.c.region.in_(list(regions)))
    wanted = (
        (pieces.c.party, flt.parties),
        (pieces.c.status, flt.statuses),
        (pieces.c.source, flt.sources),
        (sources.c.account, flt.accounts),
    )
    where.extend(column_in(column, list(values)) for column, values in wanted if values is not None)
    return where


def _revision(row: Any, known_at: dt.datetime | None) -> Revision:
    retracted_at, reason = row["retracted_at"], row["retraction_reason"]
    if known_at is not None and retracted_at is not None and retracted_at > known_at:
        retracted_at, reason = None, None  # not retracted yet then
    ends = [m for m in (retracted_at, row["superseded_at"]) if m is not None]
    return Revision(
        supersedes=row["supersedes"],
        superseded_by=row["superseded_by"],
        retracted_at=retracted_at,
        retraction_reason=reason,
        recorded_by=row["recorded_by"],
        left_at=min(ends) if ends else None,
    )


def _key(piece: Piece) -> tuple[int, str]:
    return (piece.observation_id, piece.region)


def _with_intervals(rows: list[ExportRow]) -> list[ExportRow]:
    """Validity intervals recomputed per line of testimony: from the record as it stands for the
    current rows, and from the record just before it left for each row that left it."""
    current = asof.with_intervals(r.piece for r in rows if r.revision.active)
    until = {_key(p): p.valid_until for p in current}
    groups: dict[Hashable, list[ExportRow]] = defaultdict(list)
    for row in rows:
        groups[asof.group_key(row.piece)].append(row)
    for members in groups.values():
        for row in members:
            if not row.revision.active:
                until[_key(row.piece)] = _until_before(row, members)
    return [replace(r, piece=replace(r.piece, valid_until=until[_key(r.piece)])) for r in rows]


def _until_before(row: ExportRow, group: list[ExportRow]) -> dt.datetime | None:
    """The end of ``row``'s interval in its line of testimony as it stood just before it left."""
    left = row.revision.left_at
    assert left is not None
    then = asof.chronological(
        m.piece
        for m in group
        if m is row
        or (
            m.piece.recorded_at < left
            and (m.revision.left_at is None or m.revision.left_at >= left)
        )
    )
    return asof.validity_until(then)[then.index(row.piece)]
