"""The repository: every read and write the service makes, the same on SQLite and PostGIS.

Geometry work (clipping, areas, validity intervals) is delegated to the pure core in
:mod:`app.domain`; this module only moves rows. A write is one transaction: it either stores
everything it was given, with its derived pieces, or nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from shapely.geometry import MultiPolygon
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.sql import ColumnElement, Select

from app.domain import asof
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
from app.storage.tables import (
    observations,
    parties,
    pieces,
    region_boundaries,
    regions,
    sources,
)
from app.storage.writer import Writer, WriteResult

__all__ = ["NONE", "PieceFilter", "Repository", "WriteResult"]

T = TypeVar("T")

NONE = "none"  # in filters: "no party" / "no account"


@dataclass(frozen=True)
class PieceFilter:
    """Which pieces to read. ``None`` means any; a ``None`` inside a list means 'no party'."""

    parties: Sequence[str | None] | None = None
    statuses: Sequence[str] | None = None
    sources: Sequence[str] | None = None
    accounts: Sequence[str | None] | None = None


def _column(name: str) -> Any:
    """The column a :class:`Piece` field is read from: the piece's own, else its observation's
    (``account`` from its source)."""
    if name == "account":
        return sources.c.account
    return pieces.c[name] if name in pieces.c else observations.c[name]


# Every column :func:`piece_from_row` reads, derived from the fields of Piece and Citation.
PIECE_COLUMNS = tuple(
    [_column(f.name) for f in fields(Piece) if f.name not in ("citation", "geometry")]
    + [observations.c[f"citation_{f.name}"] for f in fields(Citation)]
)


def chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``: IN lists that stay under every database's limits."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def in_window(
    query: Select[Any], start: dt.datetime | None, end: dt.datetime | None
) -> Select[Any]:
    """Pieces whose validity interval meets ``[start, end]``: :func:`app.domain.asof.overlaps`
    in SQL, on the stored intervals."""
    if end is not None:
        query = query.where(pieces.c.valid_from <= end)
    if start is not None:
        query = query.where(or_(pieces.c.valid_until.is_(None), pieces.c.valid_until > start))
    return query


def column_in(column: Any, values: Sequence[str | None]) -> ColumnElement[bool]:
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

    def _region_query(self, with_boundary: bool, known_at: dt.datetime | None) -> Select[Any]:
        """Regions with their current boundary, or (``known_at``) the boundary they had then."""
        if known_at is None:
            cols: list[Any] = [regions.c.area_km2, regions.c.boundary]
            query = select(regions.c.slug)
        else:
            b = region_boundaries
            cols = [b.c.area_km2, b.c.boundary]
            query = (
                select(regions.c.slug)
                .join(b, b.c.region == regions.c.slug)
                .where(b.c.recorded_at <= known_at)
                .where(or_(b.c.replaced_at.is_(None), b.c.replaced_at > known_at))
            )
        names = [regions.c.name, regions.c.country, regions.c.country_code, cols[0]]
        return query.add_columns(*names, *(cols[1:] if with_boundary else []))

    def regions(
        self, with_boundary: bool = True, known_at: dt.datetime | None = None
    ) -> list[Region]:
        query = self._region_query(with_boundary, known_at)
        with self.engine.connect() as c:
            rows = c.execute(query.order_by(regions.c.country, regions.c.slug)).all()
        return [Region(*row) for row in rows]

    def region(
        self, slug: str, with_boundary: bool = True, known_at: dt.datetime | None = None
    ) -> Region:
        """One region; ``UnknownRegion`` (404, naming the known ones) when there is none."""
        query = self._region_query(with_boundary, known_at).where(regions.c.slug == slug)
        with self.engine.connect() as c:
            row = c.execute(query).first()
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

    def _piece_query(
        self,
        region: str | None,
        flt: PieceFilter,
        with_geometry: bool,
        known_at: dt.datetime | None = None,
    ) -> Select[Any]:
        """Pieces of a region (``None``: of every region) with their observation's fields;
        current ones, or (``known_at``) those the service knew then, superseded and retracted
        ones as they stood."""
        cols: list[Any] = list(PIECE_COLUMNS)
        if with_geometry:
            cols.append(pieces.c.geometry)
        query = (
            select(*cols)
            .select_from(pieces)
            .join(observations, observations.c.id == pieces.c.observation_id)
            .join(sources, sources.c.slug == pieces.c.source)
        )
        if region is not None:
            query = query.where(pieces.c.region == region)
        if known_at is None:
            query = query.where(pieces.c.active.is_(True))
        else:
            query = query.where(*known_then(known_at))
        if flt.parties is not None:
            query = query.where(column_in(pieces.c.party, flt.parties))
        if flt.statuses is not None:
            query = query.where(pieces.c.status.in_(list(flt.statuses)))
        if flt.sources is not None:
            query = query.where(pieces.c.source.in_(list(flt.sources)))
        if flt.accounts is not None:
            query = query.where(column_in(sources.c.account, flt.accounts))
        return query.order_by(pieces.c.valid_from, pieces.c.observation_id)

    def in_force(
        self,
        region: str,
        at: dt.datetime,
        flt: PieceFilter,
        with_geometry: bool = True,
        known_at: dt.datetime | None = None,
    ) -> list[Piece]:
        """The pieces in force at ``at``: at most one per (party, status, source, basis).

        With ``known_at``, as the service would have answered at that moment: only what was
        recorded by then, before later corrections and retractions. Validity intervals are then
        recomputed from that record (the stored ``valid_until`` reflects the present).
        """
        if known_at is None:
            query = in_window(self._piece_query(region, flt, with_geometry), at, at)
            with self.engine.connect() as c:
                return [piece_from_row(row) for row in c.execute(query).mappings()]
        chosen = [
            p
            for p in self.history(region, flt, known_at=known_at)
            if asof.overlaps(p.valid_from, p.valid_until, at, at)
        ]
        if not with_geometry or not chosen:
            return chosen
        shapes = self.piece_geometries([(p.observation_id, region) for p in chosen])
        return [replace(p, geometry=shapes.get((p.observation_id, region))) for p in chosen]

    def history(
        self,
        region: str,
        flt: PieceFilter,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        known_at: dt.datetime | None = None,
    ) -> list[Piece]:
        """Every piece of a region in time order (no geometry), optionally within [start, end].

        With ``known_at``: the record as it stood then, with validity intervals recomputed.
        """
        query = self._piece_query(region, flt, with_geometry=False, known_at=known_at)
        with self.engine.connect() as c:
            found = [piece_from_row(row) for row in c.execute(query).mappings()]
        if known_at is not None:
            found = asof.with_intervals(found)
        return [
            p
            for p in found
            if (start is None or p.valid_from >= start) and (end is None or p.valid_from <= end)
        ]

    def all_pieces(
        self,
        flt: PieceFilter,
        known_at: dt.datetime | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        window: tuple[dt.datetime | None, dt.datetime | None] | None = None,
        regions: Sequence[str] | None = None,
    ) -> list[Piece]:
        """Pieces of every region (no geometry) in time order, each with its validity interval,
        optionally only those meeting the time ``window`` and, as a first cut on stored bounding
        boxes, ``bbox`` (callers test the polygons themselves).

        With ``known_at``: the record as it stood then, intervals recomputed from whole lines of
        testimony (so neither cut is made in SQL then).
        """
        query = self._piece_query(None, flt, with_geometry=False, known_at=known_at)
        if regions is not None:  # lines of testimony are per region: safe to cut before
            query = query.where(pieces.c.region.in_(list(regions)))
        if bbox is not None and known_at is None:
            min_lon, min_lat, max_lon, max_lat = bbox
            query = query.where(
                pieces.c.min_lon <= max_lon,
                pieces.c.max_lon >= min_lon,
                pieces.c.min_lat <= max_lat,
                pieces.c.max_lat >= min_lat,
            )
        if window is not None and known_at is None:
            query = in_window(query, *window)
        with self.engine.connect() as c:
            found = [piece_from_row(row) for row in c.execute(query).mappings()]
        if known_at is not None:
            found = asof.with_intervals(found)
            if window is not None:
                found = [p for p in found if asof.overlaps(p.valid_from, p.valid_until, *window)]
        return found

    def piece_geometries(
        self, keys: Sequence[tuple[int, str]]
    ) -> dict[tuple[int, str], MultiPolygon | None]:
        """The clipped polygons of these (observation id, region) pieces."""
        wanted = set(keys)
        out: dict[tuple[int, str], MultiPolygon | None] = {}
        ids = sorted({oid for oid, _ in wanted})
        with self.engine.connect() as c:
            for chunk in chunks(ids):
                rows = c.execute(
                    select(pieces.c.observation_id, pieces.c.region, pieces.c.geometry).where(
                        pieces.c.observation_id.in_(chunk)
                    )
                )
                for oid, region, geometry in rows:
                    if (oid, region) in wanted:
                        out[(oid, region)] = geometry
        return out

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {
                t.name: int(c.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (parties, sources, regions, observations, pieces)
            }

    def is_empty(self) -> bool:
        with self.engine.connect() as c:
            return c.execute(select(regions.c.slug).limit(1)).first() is None


def known_then(known_at: dt.datetime) -> list[ColumnElement[bool]]:
    """Observations as the record stood at ``known_at``."""
    newer = observations.alias("newer")
    return [
        observations.c.recorded_at <= known_at,
        or_(observations.c.retracted_at.is_(None), observations.c.retracted_at > known_at),
        ~select(newer.c.id)
        .where(newer.c.supersedes == observations.c.id, newer.c.recorded_at <= known_at)
        .exists(),
    ]


def _qualifier(value: str | None) -> Qualifier | None:
    return Qualifier(value) if value else None


def _citation(row: Any) -> Citation:
    return Citation(
        row["citation_url"],
        row["citation_title"],
        row["citation_publisher"],
        row["citation_published_at"],
    )


def piece_from_row(row: Any) -> Piece:
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
