"""The repository: every read and write the service makes, the same on SQLite and PostGIS.

Geometry work (clipping, areas, validity intervals) is delegated to the pure core in
:mod:`app.domain`; this module only moves rows. A write is one transaction: it either stores
everything it was given, with its derived pieces, or nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shapely.geometry import MultiPolygon
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.sql import ColumnElement, Select

from app.domain.errors import UnknownRegion
from app.domain.model import (
    Basis,
    Citation,
    NewObservation,
    Party,
    Piece,
    Qualifier,
    Region,
    Source,
    SourceKind,
    Status,
)
from app.storage.tables import observations, parties, pieces, regions, sources
from app.storage.writer import Writer, WriteResult

__all__ = ["NONE", "PieceFilter", "Repository", "WriteResult"]

NONE = "none"  # in filters: "no party" / "no account"


@dataclass(frozen=True)
class PieceFilter:
    """Which pieces to read. ``None`` means any; a ``None`` inside a list means 'no party'."""

    parties: Sequence[str | None] | None = None
    statuses: Sequence[str] | None = None
    sources: Sequence[str] | None = None
    accounts: Sequence[str | None] | None = None


def _in(column: Any, values: Sequence[str | None]) -> ColumnElement[bool]:
    """``column IN values``, where a ``None`` among the values matches NULL."""
    concrete = [v for v in values if v is not None]
    clauses: list[ColumnElement[bool]] = []
    if concrete:
        clauses.append(column.in_(concrete))
    if len(concrete) < len(values):
        clauses.append(column.is_(None))
    return or_(*clauses)


class Repository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # --- reference data -----------------------------------------------------------------------

    def regions(self, with_boundary: bool = True) -> list[Region]:
        cols = [regions.c.slug, regions.c.name, regions.c.country, regions.c.country_code]
        cols.append(regions.c.area_km2)
        if with_boundary:
            cols.append(regions.c.boundary)
        with self.engine.connect() as c:
            rows = c.execute(select(*cols).order_by(regions.c.country, regions.c.slug)).all()
        return [Region(*row) for row in rows]

    def region(self, slug: str, with_boundary: bool = True) -> Region:
        cols = [regions.c.slug, regions.c.name, regions.c.country, regions.c.country_code]
        cols.append(regions.c.area_km2)
        if with_boundary:
            cols.append(regions.c.boundary)
        with self.engine.connect() as c:
            row = c.execute(select(*cols).where(regions.c.slug == slug)).first()
            if row is None:
                known = c.execute(select(regions.c.slug)).scalars().all()
                raise UnknownRegion(slug, known)
        return Region(*row)

    def parties(self) -> list[Party]:
        with self.engine.connect() as c:
            rows = c.execute(select(parties).order_by(parties.c.code)).all()
        return [Party(*row) for row in rows]

    def sources(self) -> list[Source]:
        with self.engine.connect() as c:
            rows = c.execute(select(sources).order_by(sources.c.slug)).all()
        return [
            Source(r.slug, r.name, SourceKind(r.kind), r.account, r.url, r.description)
            for r in rows
        ]

    def save_party(self, party: Party) -> bool:
        """Insert or update a party; True when anything changed."""
        values = {"code": party.code, "name": party.name, "color": party.color}
        return self._upsert(parties, parties.c.code, party.code, values)

    def save_source(self, source: Source) -> bool:
        values = {
            "slug": source.slug,
            "name": source.name,
            "kind": str(source.kind),
            "account": source.account,
            "url": source.url,
            "description": source.description,
        }
        return self._upsert(sources, sources.c.slug, source.slug, values)

    def _upsert(self, table: Any, key: Any, key_value: str, values: dict[str, Any]) -> bool:
        with self.engine.begin() as c:
            row = c.execute(select(table).where(key == key_value)).mappings().first()
            if row is None:
                c.execute(table.insert().values(**values))
                return True
            if any(row[k] != v for k, v in values.items()):
                c.execute(table.update().where(key == key_value).values(**values))
                return True
            return False

    # --- writes: each call is one transaction (see app.storage.writer) ----------------------

    @contextmanager
    def writer(self, recorded_by: str | None = None) -> Iterator[Writer]:
        """One transaction for any number of writes: all of them land, or none."""
        with self.engine.begin() as connection:
            writer = Writer(connection, recorded_by)
            yield writer
            writer.flush()

    def add_observations(
        self, items: Sequence[NewObservation], recorded_by: str | None = None
    ) -> list[WriteResult]:
        """Store observations and their pieces in one transaction (all or nothing)."""
        with self.writer(recorded_by) as w:
            return w.add_observations(list(items))

    def save_region(
        self, slug: str, name: str, country: str, country_code: str, boundary: MultiPolygon
    ) -> bool:
        with self.writer() as w:
            return w.save_region(slug, name, country, country_code, boundary)

    def rebuild_pieces(self, region: str | None = None) -> int:
        with self.writer() as w:
            return w.rebuild_pieces(region)

    # --- reads --------------------------------------------------------------------------------

    def _piece_query(self, region: str, flt: PieceFilter, with_geometry: bool) -> Select[Any]:
        cols: list[Any] = [
            pieces.c.observation_id,
            pieces.c.region,
            pieces.c.source,
            sources.c.account,
            pieces.c.party,
            pieces.c.status,
            pieces.c.basis,
            pieces.c.valid_from,
            pieces.c.valid_to,
            pieces.c.valid_until,
            pieces.c.area_km2,
            pieces.c.reported_area_km2,
            observations.c.reported_qualifier,
            observations.c.illustrative,
            observations.c.citation_url,
            observations.c.citation_title,
            observations.c.citation_publisher,
            observations.c.citation_published_at,
            observations.c.note,
            observations.c.recorded_at,
        ]
        if with_geometry:
            cols.append(pieces.c.geometry)
        query = (
            select(*cols)
            .select_from(pieces)
            .join(observations, observations.c.id == pieces.c.observation_id)
            .join(sources, sources.c.slug == pieces.c.source)
            .where(pieces.c.region == region, pieces.c.active.is_(True))
        )
        if flt.parties is not None:
            query = query.where(_in(pieces.c.party, flt.parties))
        if flt.statuses is not None:
            query = query.where(pieces.c.status.in_(list(flt.statuses)))
        if flt.sources is not None:
            query = query.where(pieces.c.source.in_(list(flt.sources)))
        if flt.accounts is not None:
            query = query.where(_in(sources.c.account, flt.accounts))
        return query.order_by(pieces.c.valid_from, pieces.c.observation_id)

    def in_force(
        self, region: str, at: dt.datetime, flt: PieceFilter, with_geometry: bool = True
    ) -> list[Piece]:
        """The pieces in force at ``at``: at most one per (party, status, source, basis)."""
        query = self._piece_query(region, flt, with_geometry).where(
            pieces.c.valid_from <= at,
            or_(pieces.c.valid_until.is_(None), pieces.c.valid_until > at),
        )
        with self.engine.connect() as c:
            return [_piece(row) for row in c.execute(query).mappings()]

    def history(
        self,
        region: str,
        flt: PieceFilter,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> list[Piece]:
        """Every piece of a region in time order (no geometry), optionally within [start, end]."""
        query = self._piece_query(region, flt, with_geometry=False)
        if start is not None:
            query = query.where(pieces.c.valid_from >= start)
        if end is not None:
            query = query.where(pieces.c.valid_from <= end)
        with self.engine.connect() as c:
            return [_piece(row) for row in c.execute(query).mappings()]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {
                t.name: int(c.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (parties, sources, regions, observations, pieces)
            }

    def is_empty(self) -> bool:
        with self.engine.connect() as c:
            return c.execute(select(regions.c.slug).limit(1)).first() is None


def _qualifier(value: str | None) -> Qualifier | None:
    return Qualifier(value) if value else None


def _citation(row: Any) -> Citation:
    return Citation(
        row["citation_url"],
        row["citation_title"],
        row["citation_publisher"],
        row["citation_published_at"],
    )


def _piece(row: Any) -> Piece:
    return Piece(
        observation_id=row["observation_id"],
        region=row["region"],
        source=row["source"],
        account=row["account"],
        party=row["party"],
        status=Status(row["status"]),
        basis=Basis(row["basis"]),
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        valid_until=row["valid_until"],
        area_km2=row["area_km2"],
        reported_area_km2=row["reported_area_km2"],
        reported_qualifier=_qualifier(row["reported_qualifier"]),
        illustrative=bool(row["illustrative"]),
        citation=_citation(row),
        note=row["note"],
        recorded_at=row["recorded_at"],
        geometry=row.get("geometry"),
    )
