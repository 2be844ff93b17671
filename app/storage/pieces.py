"""Reading the derived pieces: in force at a moment, a region's history, every region's pieces.

Geometry work (clipping, areas, validity intervals) was done by :mod:`app.domain` when the data
was written; with ``known_at`` the intervals are recomputed by :mod:`app.domain.asof` from the
record as it stood then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any, NamedTuple

import shapely
from shapely.geometry import MultiPolygon
from sqlalchemy import Connection, Engine, bindparam, func, or_, select, true, tuple_
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.util import find_tables

from app.domain import asof
from app.domain import geometry as geo
from app.domain.model import Piece, Region
from app.storage import cql, dialect
from app.storage.base import Part, chunks
from app.storage.dialect import as_datetime
from app.storage.observations import CITATION_COLUMNS, reader
from app.storage.regions import selection as region_selection
from app.storage.tables import observations, pieces, regions, sources

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
    (``account`` from its source). KeyError for a name that is neither."""
    if name == "account":
        return sources.c.account
    return pieces.c[name] if name in pieces.c else observations.c[name]


# Every column :func:`piece_from_row` reads, derived from the fields of Piece and Citation.
PIECE_COLUMNS = tuple(
    [_column(f.name) for f in fields(Piece) if f.name not in ("citation", "geometry")]
    + [observations.c[name] for name in CITATION_COLUMNS]
)


Envelope = tuple[float, float, float, float]
Window = tuple[dt.datetime | None, dt.datetime | None]


Moment = dt.datetime | BindParameter[dt.datetime]  # a value, or a parameter bound later


def in_window(
    c: Connection | Engine, query: Select[Any], start: Moment | None, end: Moment | None
) -> Select[Any]:
    """Pieces whose validity interval meets ``[start, end]``: :func:`app.domain.asof.overlaps`
    in SQL, on the stored intervals (on PostgreSQL found through their range index first,
    see :func:`app.storage.dialect.intervals_meeting`)."""
    query = query.where(
        *dialect.intervals_meeting(c, pieces.c.valid_from, pieces.c.valid_until, start, end)
    )
    if end is not None:
        query = query.where(pieces.c.valid_from <= end)
    if start is not None:
        query = query.where(or_(pieces.c.valid_until.is_(None), pieces.c.valid_until > start))
    return query


def _narrowed(
    c: Connection,
    query: Select[Any],
    bbox: Envelope | None,
    window: Window | None,
    condition: ColumnElement[bool] | None,
) -> Select[Any]:
    """``query`` cut to the pieces whose stored bounding box meets ``bbox``, whose interval
    meets ``window`` and which meet ``condition``."""
    start, end = window if window is not None else (None, None)
    query = query.where(*dialect.spans_meeting(c, start, end, bbox))  # SQLite: an R*Tree
    if bbox is not None:
        min_lon, min_lat, max_lon, max_lat = bbox
        query = query.where(
            pieces.c.min_lon <= max_lon,
            pieces.c.max_lon >= min_lon,
            pieces.c.min_lat <= max_lat,
            pieces.c.max_lat >= min_lat,
        )
    if window is not None:
        query = in_window(c, query, *window)
    if condition is not None:
        query = query.where(condition)
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


def selection(
    c: Connection | Engine,
    region: str | Sequence[str] | None,
    flt: PieceFilter,
    with_geometry: bool,
    known_at: dt.datetime | None = None,
) -> Select[Any]:
    """:meth:`Pieces.selection` on the database of ``c`` (a connection or its engine)."""
    cols: list[Any] = list(PIECE_COLUMNS)
    if with_geometry:
        cols.append(pieces.c.geometry)
    query = (
        select(*cols)
        .select_from(pieces)
        .join(observations, observations.c.id == pieces.c.observation_id)
        .join(sources, sources.c.slug == pieces.c.source)
    )
    if isinstance(region, str):
        query = query.where(pieces.c.region == region)
    elif region is not None:
        query = query.where(pieces.c.region.in_(list(region)))
    # current: 'active = true', which a partial index can match
    query = query.where(*([pieces.c.active] if known_at is None else known_then(known_at)))
    if flt.parties is not None:
        query = query.where(column_in(pieces.c.party, flt.parties))
    if flt.statuses is not None:
        query = query.where(pieces.c.status.in_(list(flt.statuses)))
    if flt.sources is not None:
        query = query.where(pieces.c.source.in_(list(flt.sources)))
    if flt.accounts is not None:
        query = query.where(column_in(sources.c.account, flt.accounts))
    return query.order_by(*order(c, pieces))


def order(c: Connection | Engine, table: Any) -> list[Any]:
    """:meth:`Pieces.order` on the database of ``c``."""
    return [table.c.valid_from, table.c.observation_id, dialect.in_byte_order(c, table.c.region)]


AT = bindparam("at", type_=pieces.c.valid_from.type)  # the moment of :func:`_in_force_at`


@lru_cache(maxsize=256)  # a shape per region and filter asked; bounded for a long-lived server
def _in_force_at(
    engine: Engine, region: str | tuple[str, ...], flt: PieceFilter, with_geometry: bool
) -> Select[Any]:
    """The current pieces of ``region`` in force at the parameter ``at``: built (and its
    SQLAlchemy cache key made) once per database and shape, some 0.25 ms of every as-of
    answer otherwise. ``flt`` holds tuples, so that it is hashable."""
    return in_window(engine, selection(engine, region, flt, with_geometry), AT, AT)


def _frozen(flt: PieceFilter) -> PieceFilter:
    """``flt`` with tuples for lists: hashable, a key of :func:`_in_force_at`."""

    def frozen(values: Sequence[Any] | None) -> tuple[Any, ...] | None:
        return None if values is None else tuple(values)

    return PieceFilter(
        frozen(flt.parties), frozen(flt.statuses), frozen(flt.sources), frozen(flt.accounts)
    )


@lru_cache(maxsize=256)
def _region_in_force_at(
    engine: Engine, slug: str, flt: PieceFilter
) -> tuple[Select[Any], tuple[str, ...]]:
    """The region ``slug`` (current, without its boundary) joined to the pieces of
    :func:`_in_force_at`, each with its polygon as :func:`dialect.geojson_or_wkb` gives it
    (``geojson``): a row a piece, or one with no piece; none for no such region. With the
    labels of the region's columns, in :class:`Region`'s order."""
    region = region_selection(with_boundary=False, known_at=None)
    labels = tuple(f"region_{c.name}" for c in region.selected_columns)
    region = region.with_only_columns(
        *(c.label(label) for c, label in zip(region.selected_columns, labels, strict=True))
    ).where(regions.c.slug == slug)
    found = (
        _in_force_at(engine, slug, flt, with_geometry=False)
        .add_columns(dialect.geojson_or_wkb(engine, pieces.c.geometry).label("geojson"))
        .order_by(None)
        .subquery("found")
    )
    asked = region.subquery("asked")
    query = (
        select(asked, found)
        .select_from(asked.outerjoin(found, true()))
        .order_by(*order(engine, found))
    )
    return query, labels


def geojson_texts(c: Connection | Engine, values: Sequence[Any]) -> list[str | bytes]:
    """The polygons :func:`dialect.geojson_or_wkb` read as GeoJSON texts (``null`` for none):
    PostGIS wrote them; SQLite's WKB is encoded here, as PostGIS would."""
    if dialect.has_spatial_sql(c):
        return [b"null" if value is None else value for value in values]
    return list(geo.geojson_texts(shapely.from_wkb(list(values))))


class Pieces(Part):
    def selection(
        self,
        region: str | Sequence[str] | None,
        flt: PieceFilter,
        with_geometry: bool,
        known_at: dt.datetime | None = None,
    ) -> Select[Any]:
        """Pieces of a region, or of several (``None``: of every region) with their
        observation's fields;
        current ones, or (``known_at``) those the service knew then, superseded and retracted
        ones as they stood."""
        return selection(self.c, region, flt, with_geometry, known_at)

    def order(self, table: Any) -> list[Any]:
        """The paging order over ``table``'s (or a subquery's) columns: total, so that pages
        neither skip nor repeat; the order of :func:`paging_key`."""
        return order(self.c, table)

    def in_force(
        self,
        region: str | Sequence[str],
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
            where = region if isinstance(region, str) else tuple(region)
            query = _in_force_at(self.c.engine, where, _frozen(flt), with_geometry)
            rows = self.c.execute(query, {AT.key: at}).mappings()
            return [piece_from_row(row) for row in rows]
        chosen = [
            p
            for p in self.history(region, flt, known_at=known_at)
            if asof.overlaps(p.valid_from, p.valid_until, at, at)
        ]
        if not with_geometry or not chosen:
            return chosen
        shapes = self.geometries([(p.observation_id, p.region) for p in chosen])
        return [replace(p, geometry=shapes.get((p.observation_id, p.region))) for p in chosen]

    def in_force_in(self, slug: str, at: dt.datetime, flt: PieceFilter) -> InForce:
        """The region ``slug`` and its pieces in force at ``at`` (:meth:`in_force`), read in
        one statement where the region and then its pieces took two: the most asked question
        of all, answered in one round trip, with each piece's polygon as GeoJSON text (from
        PostGIS itself) rather than a shapely object. A country comes with no pieces (they
        are its members': :meth:`in_force` of those). ``UnknownRegion`` when there is none."""
        query, labels = _region_in_force_at(self.c.engine, slug, _frozen(flt))
        rows = self.c.execute(query, {AT.key: at}).mappings().all()
        if not rows:
            self.unit.regions.get(slug, with_boundary=False)  # raises UnknownRegion
            raise AssertionError(f"region {slug!r} read in one statement and not in another")
        region = Region(*(rows[0][label] for label in labels))
        rows = [row for row in rows if row["observation_id"] is not None]
        texts = geojson_texts(self.c, [row["geojson"] for row in rows])
        return InForce(region, [piece_from_row(row) for row in rows], texts)

    def history(
        self,
        region: str | Sequence[str],
        flt: PieceFilter,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        known_at: dt.datetime | None = None,
    ) -> list[Piece]:
        """Every piece of a region (or of several) in time order (no geometry), optionally
        within [start, end].

        With ``known_at``: the record as it stood then, with validity intervals recomputed.
        """
        query = self.selection(region, flt, with_geometry=False, known_at=known_at)
        found = [piece_from_row(row) for row in self.c.execute(query).mappings()]
        if known_at is not None:
            found = asof.with_intervals(found)
        return [
            p
            for p in found
            if (start is None or p.valid_from >= start) and (end is None or p.valid_from <= end)
        ]

    def everywhere(
        self,
        flt: PieceFilter,
        known_at: dt.datetime | None = None,
        bbox: Envelope | None = None,
        window: Window | None = None,
        regions: Sequence[str] | None = None,
        condition: ColumnElement[bool] | None = None,
        since: dt.datetime | None = None,
    ) -> list[Piece]:
        """Pieces of every region (no geometry) in the paging order, each with its validity
        interval, optionally only those meeting the time ``window``, the SQL ``condition`` (a
        translated filter, see :meth:`translate`) and, as a first cut on stored bounding boxes,
        ``bbox`` (callers test the polygons themselves).

        With ``known_at``: the record as it stood then, intervals recomputed from whole lines of
        testimony (so only the cuts by region and by ``since``, the earliest ``valid_from``, are
        made in SQL then: an interval depends on the pieces after it, not before).
        """
        query = self.selection(None, flt, with_geometry=False, known_at=known_at)
        if regions is not None:  # lines of testimony are per region: safe to cut before
            query = query.where(pieces.c.region.in_(list(regions)))
        if since is not None:
            query = query.where(pieces.c.valid_from >= since)
        if known_at is None:
            query = _narrowed(self.c, query, bbox, window, condition)
        found = [piece_from_row(row) for row in self.c.execute(query).mappings()]
        if known_at is not None:
            found = asof.with_intervals(found)
            if window is not None:
                found = [p for p in found if asof.overlaps(p.valid_from, p.valid_until, *window)]
        return found

    def page(
        self,
        flt: PieceFilter,
        *,
        regions: Sequence[str] | None,
        bbox: Envelope | None,
        window: Window | None,
        condition: ColumnElement[bool] | None,
        since: dt.datetime | None,
        limit: int,
        offset: int,
    ) -> Page:
        """One page of the current pieces that meet everything asked, each with its polygon
        as GeoJSON text, and how many meet it: selected, counted, ordered and paged in the
        database, in one statement (past the end, a second counts). The bounding box is exact
        only where :attr:`exact_bbox`.

        The page's keys are chosen (and the matches counted, on the keys' row) from ``pieces``
        joined to the tables the conditions name and no others; only then are the page's own
        rows joined to their observations and their polygons encoded: sorting rows that carry
        their polygons would read (on PostGIS detoast) the polygon of every match."""
        query = self.selection(None, flt, with_geometry=False)
        if regions is not None:
            query = query.where(pieces.c.region.in_(list(regions)))
        if since is not None:
            query = query.where(pieces.c.valid_from >= since)
        query = _narrowed(self.c, query, bbox, window, condition)
        if bbox is not None:
            query = query.where(*dialect.intersects_box(self.c, pieces.c.geometry, bbox))
        where = query.whereclause
        assert where is not None  # at least "active"
        counted = select(func.count()).select_from(_joined_for(where)).where(where)
        keys = (
            select(
                pieces.c.observation_id,
                pieces.c.region,
                pieces.c.valid_from,
                counted.scalar_subquery().label("matched"),
            )
            .select_from(_joined_for(where))
            .where(where)
            .order_by(*self.order(pieces))
            .limit(limit)
            .offset(offset)
            .subquery("page")
        )
        rows = self.c.execute(
            select(
                *PIECE_COLUMNS,
                dialect.geojson_or_wkb(self.c, pieces.c.geometry).label("geojson"),
                keys.c.matched,
            )
            .select_from(
                keys.join(
                    pieces,
                    (pieces.c.observation_id == keys.c.observation_id)
                    & (pieces.c.region == keys.c.region),
                )
                .join(observations, observations.c.id == pieces.c.observation_id)
                .join(sources, sources.c.slug == pieces.c.source)
            )
            .order_by(*self.order(keys))
        ).all()
        found = [piece_from_row(row._mapping) for row in rows]
        texts = geojson_texts(self.c, [r.geojson for r in rows])
        if rows:
            matched = int(rows[0].matched)
        elif offset == 0:
            matched = 0
        else:  # past the end: no row to carry the count
            matched = int(self.c.execute(counted).scalar_one())
        return Page(found, texts, matched)

    def piece(self, observation_id: int, region: str) -> Piece | None:
        """One current piece (without its polygon), or None."""
        found = [p for p in self.of_observation(observation_id) if p.region == region]
        return found[0] if found else None

    def of_observation(self, observation_id: int) -> list[Piece]:
        """The current pieces of one observation (without polygons)."""
        query = self.selection(None, PieceFilter(), with_geometry=False)
        query = query.where(pieces.c.observation_id == observation_id)
        return [piece_from_row(row) for row in self.c.execute(query).mappings()]

    @property
    def exact_bbox(self) -> bool:
        """Whether :meth:`page` tests a bounding box against the polygons themselves."""
        return dialect.has_spatial_sql(self.c)

    def translate(self, tree: Any) -> tuple[ColumnElement[bool] | None, Any]:
        """A parsed CQL2 filter over the pieces' properties as (SQL condition, residual for
        Python): see :mod:`app.storage.cql`."""
        return cql.split(tree, _column, self.unit.dialect)

    def geometries(
        self, keys: Sequence[tuple[int, str]]
    ) -> dict[tuple[int, str], MultiPolygon | None]:
        """The clipped polygons of these (observation id, region) pieces: those and no others
        (a whole-front observation has pieces in many regions)."""
        out: dict[tuple[int, str], MultiPolygon | None] = {}
        key = tuple_(pieces.c.observation_id, pieces.c.region)
        for chunk in chunks(sorted(set(keys))):
            # The ids alone first: SQLite searches the primary key by them, where a list of
            # (id, region) pairs alone has it scan every piece (10 ms at 11,600 pieces).
            ids = sorted({oid for oid, _ in chunk})
            query = select(pieces.c.observation_id, pieces.c.region, pieces.c.geometry).where(
                pieces.c.observation_id.in_(ids), key.in_(list(chunk))
            )
            for oid, region, geometry in self.c.execute(query):
                out[(oid, region)] = geometry
        return out

    def extent(
        self, of: str
    ) -> tuple[tuple[float | None, ...], dt.datetime | None, dt.datetime | None, bool]:
        """The bounding box of the current ``regions``, ``control`` pieces or ``observations``,
        and the time span of the current pieces (start, end, whether any interval is open)."""
        table, where = {
            "regions": (regions, []),
            "control": (pieces, [pieces.c.active.is_(True)]),
            "observations": (observations, [observations.c.retracted_at.is_(None)]),
        }[of]
        box = self.c.execute(
            select(
                func.min(table.c.min_lon),
                func.min(table.c.min_lat),
                func.max(table.c.max_lon),
                func.max(table.c.max_lat),
            ).where(*where)
        ).one()
        start, end, open_count = self.c.execute(
            select(
                func.min(pieces.c.valid_from),
                func.max(pieces.c.valid_until),
                func.count().filter(pieces.c.valid_until.is_(None)),
            ).where(pieces.c.active.is_(True))
        ).one()
        return tuple(box), as_datetime(start), as_datetime(end), bool(open_count)


class InForce(NamedTuple):
    """A region and its pieces in force (without polygons), each one's polygon as GeoJSON
    text (``null`` for none) in the same order."""

    region: Region
    pieces: list[Piece]
    geojson: list[str | bytes]


class Page(NamedTuple):
    """A page of pieces (without polygons), each one's polygon as GeoJSON text (``null`` for
    none) in the same order, and how many pieces meet the query in all."""

    pieces: list[Piece]
    geojson: list[str | bytes]
    matched: int


def _joined_for(where: ColumnElement[bool]) -> Any:
    """``pieces`` joined to the observations and sources only if ``where`` names them (an
    inner join to a foreign key's row keeps every row, so leaving it out changes no answer)."""
    named = set(find_tables(where, check_columns=True))
    joined: Any = pieces
    if observations in named:
        joined = joined.join(observations, observations.c.id == pieces.c.observation_id)
    if sources in named:
        joined = joined.join(sources, sources.c.slug == pieces.c.source)
    return joined


def paging_key(piece: Piece) -> tuple[dt.datetime, int, str]:
    """The order pieces are listed and paged in, in Python."""
    return (piece.valid_from, piece.observation_id, piece.region)


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


_read_piece = reader([f.name for f in fields(Piece) if f.name != "geometry"])


def piece_from_row(row: Any) -> Piece:
    """A piece from a row of :data:`PIECE_COLUMNS` (and ``geometry``, when it was read)."""
    values = _read_piece(row)
    # ``in`` first: looking up a key a row lacks takes the result's slow path, on every row.
    return Piece(**values, geometry=row["geometry"] if "geometry" in row else None)  # noqa: SIM401
