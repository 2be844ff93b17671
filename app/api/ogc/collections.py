"""The feature collections the service offers through OGC API - Features.

- ``regions``: the region boundaries.
- ``control``: one feature per (observation, region): the observation's polygon clipped to the
  region, with its validity interval ``[valid_from, valid_until)`` and every observation
  property. It is what ``/regions/{slug}/control`` serves, for every moment at once.
- ``observations``: the records as the sources gave them, unclipped, one feature each.

Each collection turns an :class:`ItemQuery` into candidate :class:`Item`s (properties only,
cut in SQL by the property filters, the time window and bounding boxes); the routes then test
the exact geometry and the CQL2 filter, and load polygons only for the page they serve.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shapely.geometry.base import BaseGeometry

from app.api.ogc.filters import BBox, Filter
from app.api.params import MAX_OBSERVATION_ID
from app.api.serialize import km2, piece_id, piece_values
from app.domain.errors import NotFound
from app.domain.model import Basis, Piece, Qualifier, Status
from app.storage.base import chunks
from app.storage.pieces import PieceFilter, paging_key
from app.storage.unit import UnitOfWork

GEOMETRY_QUERYABLE = {
    "title": "Geometry",
    "format": "geometry-multipolygon",
    "x-ogc-role": "primary-geometry",
}


def _string(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "type": "string", **extra}


def _moment(title: str) -> dict[str, Any]:
    return {"title": title, "type": "string", "format": "date-time"}


def _number(title: str) -> dict[str, Any]:
    return {"title": title, "type": "number"}


OBSERVATION_QUERYABLES: dict[str, dict[str, Any]] = {
    "source": _string("Source slug (GET /sources)"),
    "account": _string("Party the source speaks for (null: independent)"),
    "party": _string("Party whose ground this is (null: unattributed)"),
    "status": _string("Status", enum=[s.value for s in Status]),
    "basis": _string("Basis", enum=[b.value for b in Basis]),
    "valid_from": {**_moment("Valid from"), "x-ogc-role": "primary-instant"},
    "valid_to": _moment("Valid to, as the source gave it"),
    "valid_until": _moment("End of the validity interval (null: open)"),
    "reported_area_km2": _number("Area the source reported, km²"),
    "drawn_area_km2": _number("Area of the whole drawing as drawn, before any clipping, km²"),
    "reported_qualifier": _string(
        "Qualifier of the reported area", enum=[q.value for q in Qualifier]
    ),
    "illustrative": {"title": "Schematic illustration, not surveyed", "type": "boolean"},
    "citation_url": _string("Citation URL", format="uri"),
    "citation_title": _string("Citation title"),
    "citation_publisher": _string("Citation publisher"),
    "citation_published_at": _moment("Citation published at"),
    "note": _string("Note"),
    "recorded_at": _moment("Recorded at"),
}


AGE_DAYS = _number("Age of the observation at the moment asked for, days (items only)")


@dataclass(frozen=True)
class ItemQuery:
    """What the property parameters, ``datetime``, ``bbox`` and ``known_at`` ask for."""

    flt: PieceFilter = field(default_factory=PieceFilter)
    regions: Sequence[str] | None = None
    window: tuple[dt.datetime | None, dt.datetime | None] | None = None
    area: BBox | None = None
    cql: Filter | None = None
    known_at: dt.datetime | None = None
    since: dt.datetime | None = None  # max_age: only features valid from this moment on

    @property
    def envelope(self) -> tuple[float, float, float, float] | None:
        return self.area.envelope if self.area is not None else None

    def matches(self, item: Item) -> bool:
        """The exact tests on an item whose geometry is loaded (if either needs it)."""
        if self.area is not None and (
            item.geometry is None or not item.geometry.intersects(self.area.shape)
        ):
            return False
        return self.cql is None or self.cql.matches({**item.values, "geometry": item.geometry})

    @property
    def spatial(self) -> bool:
        return self.area is not None or (self.cql is not None and self.cql.spatial)


@dataclass
class Item:
    """One feature before serialisation: ``values`` are its properties with Python values."""

    id: str
    values: dict[str, Any]
    key: Any  # what the collection needs to load the geometry
    geometry: BaseGeometry | None = None
    has_geometry: bool = False
    # The geometry as GeoJSON text already (from the database), instead of ``geometry``.
    geojson: str | bytes | None = None


class Collection(ABC):
    id: str
    title: str
    description: str
    queryables: ClassVar[dict[str, dict[str, Any]]]
    # Every property of the features (the queryables and any that cannot be queried).
    schema: ClassVar[dict[str, dict[str, Any]]]
    # Property parameters of /items besides the standard ones (region, party, …).
    parameters: tuple[str, ...] = ()
    temporal: bool = True

    @abstractmethod
    def candidates(self, unit: UnitOfWork, query: ItemQuery) -> list[Item]:
        """The items that may match, in paging order: cut in SQL as far as it goes."""

    def page(
        self, unit: UnitOfWork, query: ItemQuery, offset: int, limit: int
    ) -> tuple[list[Item], int]:
        """The items from ``offset`` on (at most ``limit``, with their geometry) and how many
        match in all. Here: the candidates tested one by one in Python, a chunk at a time,
        polygons kept for the page alone. Collections that can do it in SQL do so."""
        matched = 0
        page: list[Item] = []
        for chunk in chunks(self.candidates(unit, query)):
            if query.spatial:
                self.load_geometries(unit, chunk)
            for item in chunk:
                if not query.matches(item):
                    continue
                if offset <= matched < offset + limit:
                    page.append(item)
                else:
                    item.geometry, item.has_geometry = None, False  # not on this page: let go
                matched += 1
        self.load_geometries(unit, page)
        return page, matched

    @abstractmethod
    def load_geometries(self, unit: UnitOfWork, items: Sequence[Item]) -> None: ...

    @abstractmethod
    def item(self, unit: UnitOfWork, feature_id: str, query: ItemQuery) -> Item: ...

    @abstractmethod
    def extent(self, unit: UnitOfWork) -> dict[str, Any]: ...

    def not_found(self, feature_id: str) -> NotFound:
        return NotFound(
            f"There is no feature {feature_id!r} in collection {self.id!r}. "
            f"GET /collections/{self.id}/items lists them."
        )


def _extent(
    bbox: Sequence[float | None], start: dt.datetime | None, end: dt.datetime | None, is_open: bool
) -> dict[str, Any]:
    from app.domain.timeutil import isoformat

    out: dict[str, Any] = {}
    if all(v is not None for v in bbox):
        out["spatial"] = {"bbox": [[round(float(v), 6) for v in bbox if v is not None]]}
        out["spatial"]["crs"] = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    if start is not None:
        out["temporal"] = {
            "interval": [[isoformat(start), None if is_open else isoformat(end)]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    return out


class Regions(Collection):
    id = "regions"
    title = "Regions"
    description = (
        "Region boundaries (oblasts of Ukraine; Kursk, Belgorod and Bryansk oblasts of Russia), "
        "each with its geodesic area. Boundaries are timeless here: `datetime` matches all."
    )
    queryables: ClassVar[dict[str, dict[str, Any]]] = {
        "slug": _string("Region slug"),
        "name": _string("Name"),
        "country": _string("Country"),
        "country_code": _string("ISO 3166-1 alpha-2 country code"),
        "area_km2": _number("Geodesic area, km²"),
        "geometry": GEOMETRY_QUERYABLE,
    }
    schema = queryables
    parameters = ("region",)
    temporal = False

    def candidates(self, unit: UnitOfWork, query: ItemQuery) -> list[Item]:
        found = unit.regions.all(with_boundary=True, known_at=query.known_at)
        wanted = set(query.regions) if query.regions is not None else None
        return [
            Item(
                r.slug,
                {
                    "slug": r.slug,
                    "name": r.name,
                    "country": r.country,
                    "country_code": r.country_code,
                    "area_km2": km2(r.area_km2),
                },
                r.slug,
                r.boundary,
                True,
            )
            for r in found
            if wanted is None or r.slug in wanted
        ]

    def load_geometries(self, unit: UnitOfWork, items: Sequence[Item]) -> None:
        return None  # loaded with the candidates: there are few regions

    def item(self, unit: UnitOfWork, feature_id: str, query: ItemQuery) -> Item:
        for candidate in self.candidates(unit, query):
            if candidate.id == feature_id:
                return candidate
        raise self.not_found(feature_id)

    def extent(self, unit: UnitOfWork) -> dict[str, Any]:
        bbox, *_time = unit.pieces.extent("regions")
        return _extent(bbox, None, None, False)


class Control(Collection):
    id = "control"
    title = "Control pieces"
    description = (
        "Who controls which ground, according to whom: each observation's polygon clipped to "
        "each region it concerns, with its geodesic area, source, citation and validity "
        "interval [valid_from, valid_until). `datetime` matches the pieces whose interval meets "
        "the instant or interval asked for, so `datetime=T&region=R` is exactly "
        "`/regions/R/control?at=T`. Claims conflict: features of different sources overlap."
    )
    queryables: ClassVar[dict[str, dict[str, Any]]] = {
        "region": _string("Region slug"),
        "observation_id": {"title": "Observation id", "type": "integer"},
        **OBSERVATION_QUERYABLES,
        "area_km2": _number("Geodesic area of the piece, km²"),
        "geometry": GEOMETRY_QUERYABLE,
    }
    schema: ClassVar[dict[str, dict[str, Any]]] = {**queryables, "age_days": AGE_DAYS}
    parameters = ("region", "party", "status", "source", "account")

    def candidates(self, unit: UnitOfWork, query: ItemQuery) -> list[Item]:
        condition = None
        if query.cql is not None and query.known_at is None:
            condition, _residual = unit.pieces.translate(query.cql.tree)
        found = unit.pieces.everywhere(
            query.flt,
            known_at=query.known_at,
            bbox=query.envelope,
            window=query.window,
            regions=query.regions,
            condition=condition,
            since=query.since,
        )
        return [self._item(p) for p in sorted(found, key=paging_key)]

    def page(
        self, unit: UnitOfWork, query: ItemQuery, offset: int, limit: int
    ) -> tuple[list[Item], int]:
        """In SQL (filtered, counted, ordered, paged) whenever the database can answer every
        test exactly: the current record (not ``known_at``, whose intervals are recomputed),
        a filter that translates whole, a bounding box it tests itself."""
        condition, residual = (
            unit.pieces.translate(query.cql.tree) if query.cql is not None else (None, None)
        )
        in_sql = (
            query.known_at is None
            and residual is None
            and (query.area is None or (query.envelope is not None and unit.pieces.exact_bbox))
        )
        if not in_sql:
            return super().page(unit, query, offset, limit)
        found = unit.pieces.page(
            query.flt,
            regions=query.regions,
            bbox=query.envelope,
            window=query.window,
            condition=condition,
            since=query.since,
            limit=limit,
            offset=offset,
        )
        items = [self._item(p) for p in found.pieces]
        for item, text in zip(items, found.geojson, strict=True):
            item.geojson, item.has_geometry = text, True
        return items, found.matched

    @staticmethod
    def _item(piece: Piece) -> Item:
        key = (piece.observation_id, piece.region)
        return Item(piece_id(*key), piece_values(piece), key)

    def load_geometries(self, unit: UnitOfWork, items: Sequence[Item]) -> None:
        shapes = unit.pieces.geometries([i.key for i in items if not i.has_geometry])
        for item in items:
            if not item.has_geometry:
                item.geometry, item.has_geometry = shapes.get(item.key), True

    def item(self, unit: UnitOfWork, feature_id: str, query: ItemQuery) -> Item:
        number, _, region = feature_id.partition("-")
        if not _possible_id(number) or not region:
            raise self.not_found(feature_id)
        if query.known_at is None:
            found = unit.pieces.piece(int(number), region)
            if found is None:
                raise self.not_found(feature_id)
            return self._item(found)
        for piece in unit.pieces.everywhere(
            PieceFilter(), known_at=query.known_at, regions=[region]
        ):
            if piece.observation_id == int(number):
                return self._item(piece)
        raise self.not_found(feature_id)

    def extent(self, unit: UnitOfWork) -> dict[str, Any]:
        return _extent(*unit.pieces.extent(self.id))


class Observations(Collection):
    id = "observations"
    title = "Observations"
    description = (
        "The records as each source gave them: the polygon as drawn (not clipped), the regions "
        "it concerns with the measured area in each, the reported figure, the citation and the "
        "revision fields. The validity interval runs from valid_from to the latest valid_until "
        "of its regions. Superseded and retracted records leave this collection (they stay at "
        "/observations/{id} and in /exports/observations?revisions=all)."
    )
    queryables: ClassVar[dict[str, dict[str, Any]]] = {
        "id": {"title": "Observation id", "type": "integer"},
        **OBSERVATION_QUERYABLES,
        "reported_region": _string("Region the reported area is for"),
        "recorded_by": _string("Token name that recorded it"),
        "supersedes": {"title": "Id of the record this one corrects", "type": "integer"},
        "geometry": GEOMETRY_QUERYABLE,
    }
    schema: ClassVar[dict[str, dict[str, Any]]] = {
        **queryables,
        "age_days": AGE_DAYS,
        "regions": {"title": "Regions it concerns", "type": "array", "items": {"type": "string"}},
        "areas_km2": {
            "title": "Measured area in each region, km²",
            "type": "object",
            "additionalProperties": {"type": "number"},
        },
    }
    parameters = ("region", "party", "status", "source", "account")

    def candidates(self, unit: UnitOfWork, query: ItemQuery) -> list[Item]:
        found = unit.pieces.everywhere(
            query.flt, known_at=query.known_at, window=query.window, since=query.since
        )
        if query.regions is not None:
            wanted = set(query.regions)
            ids = {p.observation_id for p in found if p.region in wanted}
            found = [p for p in found if p.observation_id in ids]
        return [Item(str(r["id"]), r, r["id"]) for r in unit.observations.records_of(found)]

    def load_geometries(self, unit: UnitOfWork, items: Sequence[Item]) -> None:
        ids = [i.key for i in items if not i.has_geometry]
        shapes = unit.observations.geometries(ids)
        for item in items:
            if not item.has_geometry:
                item.geometry, item.has_geometry = shapes.get(item.key), True

    def item(self, unit: UnitOfWork, feature_id: str, query: ItemQuery) -> Item:
        if not _possible_id(feature_id):
            raise self.not_found(feature_id)
        if query.known_at is None:
            found = unit.pieces.of_observation(int(feature_id))
        else:  # intervals as they stood then need the whole record of then
            found = [
                p
                for p in unit.pieces.everywhere(PieceFilter(), known_at=query.known_at)
                if p.observation_id == int(feature_id)
            ]
        rows = unit.observations.records_of(found)
        if not rows:
            raise self.not_found(feature_id)
        return Item(feature_id, rows[0], rows[0]["id"])

    def extent(self, unit: UnitOfWork) -> dict[str, Any]:
        return _extent(*unit.pieces.extent(self.id))


def _possible_id(text: str) -> bool:
    """Whether ``text`` is an id an observation can have (digits, within the id column)."""
    return text.isdigit() and 1 <= int(text) <= MAX_OBSERVATION_ID


COLLECTIONS: dict[str, Collection] = {c.id: c for c in (Regions(), Control(), Observations())}
