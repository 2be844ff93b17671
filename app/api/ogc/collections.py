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
from sqlalchemy import func, select

from app.api.serialize import km2, piece_id, piece_values
from app.domain import asof
from app.domain.errors import NotFound
from app.domain.model import Basis, Piece, Qualifier, Status
from app.storage import records
from app.storage.repository import PieceFilter, Repository
from app.storage.tables import observations, pieces, regions

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
    envelope: tuple[float, float, float, float] | None = None
    known_at: dt.datetime | None = None


@dataclass
class Item:
    """One feature before serialisation: ``values`` are its properties with Python values."""

    id: str
    values: dict[str, Any]
    key: Any  # what the collection needs to load the geometry
    geometry: BaseGeometry | None = None
    has_geometry: bool = False


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
    def candidates(self, repo: Repository, query: ItemQuery) -> list[Item]: ...

    @abstractmethod
    def load_geometries(self, repo: Repository, items: Sequence[Item]) -> None: ...

    @abstractmethod
    def item(self, repo: Repository, feature_id: str, query: ItemQuery) -> Item: ...

    @abstractmethod
    def extent(self, repo: Repository) -> dict[str, Any]: ...

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


def _bbox_of(table: Any, *where: Any) -> Any:
    return select(
        func.min(table.c.min_lon),
        func.min(table.c.min_lat),
        func.max(table.c.max_lon),
        func.max(table.c.max_lat),
    ).where(*where)


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

    def candidates(self, repo: Repository, query: ItemQuery) -> list[Item]:
        found = repo.regions(with_boundary=True, known_at=query.known_at)
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

    def load_geometries(self, repo: Repository, items: Sequence[Item]) -> None:
        return None  # loaded with the candidates: there are few regions

    def item(self, repo: Repository, feature_id: str, query: ItemQuery) -> Item:
        for candidate in self.candidates(repo, query):
            if candidate.id == feature_id:
                return candidate
        raise self.not_found(feature_id)

    def extent(self, repo: Repository) -> dict[str, Any]:
        with repo.engine.connect() as c:
            bbox = c.execute(_bbox_of(regions)).one()
        return _extent(bbox, None, None, False)


def _temporal_extent(repo: Repository) -> tuple[dt.datetime | None, dt.datetime | None, bool]:
    with repo.engine.connect() as c:
        start, end, open_count = c.execute(
            select(
                func.min(pieces.c.valid_from),
                func.max(pieces.c.valid_until),
                func.count().filter(pieces.c.valid_until.is_(None)),
            ).where(pieces.c.active.is_(True))
        ).one()
    if isinstance(start, str):  # SQLite aggregates come back as text
        start, end = (None if v is None else dt.datetime.fromisoformat(v) for v in (start, end))
    return start, end, bool(open_count)


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

    def candidates(self, repo: Repository, query: ItemQuery) -> list[Item]:
        found = repo.all_pieces(
            query.flt,
            known_at=query.known_at,
            bbox=query.envelope,
            window=query.window,
            regions=query.regions,
        )
        return [self._item(p) for p in asof.chronological(found)]

    @staticmethod
    def _item(piece: Piece) -> Item:
        key = (piece.observation_id, piece.region)
        return Item(piece_id(*key), piece_values(piece), key)

    def load_geometries(self, repo: Repository, items: Sequence[Item]) -> None:
        shapes = repo.piece_geometries([i.key for i in items if not i.has_geometry])
        for item in items:
            if not item.has_geometry:
                item.geometry, item.has_geometry = shapes.get(item.key), True

    def item(self, repo: Repository, feature_id: str, query: ItemQuery) -> Item:
        number, _, region = feature_id.partition("-")
        if not number.isdigit() or not region:
            raise self.not_found(feature_id)
        found = repo.all_pieces(PieceFilter(), known_at=query.known_at, regions=[region])
        for piece in found:
            if piece.observation_id == int(number):
                return self._item(piece)
        raise self.not_found(feature_id)

    def extent(self, repo: Repository) -> dict[str, Any]:
        with repo.engine.connect() as c:
            bbox = c.execute(_bbox_of(pieces, pieces.c.active.is_(True))).one()
        return _extent(bbox, *_temporal_extent(repo))


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

    def candidates(self, repo: Repository, query: ItemQuery) -> list[Item]:
        found = repo.all_pieces(query.flt, known_at=query.known_at, window=query.window)
        if query.regions is not None:
            wanted = set(query.regions)
            ids = {p.observation_id for p in found if p.region in wanted}
            found = [p for p in found if p.observation_id in ids]
        return [Item(str(r["id"]), r, r["id"]) for r in records.records_of(repo.engine, found)]

    def load_geometries(self, repo: Repository, items: Sequence[Item]) -> None:
        ids = [i.key for i in items if not i.has_geometry]
        shapes = records.observation_geometries(repo.engine, ids)
        for item in items:
            if not item.has_geometry:
                item.geometry, item.has_geometry = shapes.get(item.key), True

    def item(self, repo: Repository, feature_id: str, query: ItemQuery) -> Item:
        if not feature_id.isdigit():
            raise self.not_found(feature_id)
        found = [
            p
            for p in repo.all_pieces(PieceFilter(), known_at=query.known_at)
            if p.observation_id == int(feature_id)
        ]
        rows = records.records_of(repo.engine, found)
        if not rows:
            raise self.not_found(feature_id)
        return Item(feature_id, rows[0], rows[0]["id"])

    def extent(self, repo: Repository) -> dict[str, Any]:
        with repo.engine.connect() as c:
            bbox = c.execute(_bbox_of(observations, observations.c.retracted_at.is_(None))).one()
        return _extent(bbox, *_temporal_extent(repo))


COLLECTIONS: dict[str, Collection] = {c.id: c for c in (Regions(), Control(), Observations())}
