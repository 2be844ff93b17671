"""OGC API - Features: landing page, conformance, collections, items, queryables, and the
OpenAPI 3.0 definition. Part 1 (Core, GeoJSON, HTML, OpenAPI 3.0) and Part 3 (CQL2 filters).

Time is handled as the as-of rule wants it: each feature of ``control`` is valid over an
interval, and ``datetime`` matches the features whose interval meets the instant or interval
asked for, not those whose one timestamp falls inside it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
import shapely
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.datastructures import URL

from app import __version__
from app.api.deps import Unit, parameters_of
from app.api.ogc import html
from app.api.ogc.collections import COLLECTIONS, Collection, Item, ItemQuery
from app.api.ogc.filters import CRS84, parse_bbox, parse_filter
from app.api.ogc.openapi import OPENAPI_30_MEDIA_TYPE, openapi_30, with_concrete_paths
from app.api.params import (
    KnownAt,
    MaxAge,
    known_moment,
    max_age_span,
    piece_filter,
    region_codes,
)
from app.api.responses import GEOJSON_MEDIA_TYPE, JSON, GeoJSON, encoded, streamed_geojson
from app.api.routing import CheckedRoute, query_parameter_names, unknown_parameter
from app.api.serialize import ILLUSTRATIVE_NOTICE, jsonable
from app.api.viewer import viewer_page
from app.domain import geometry as geo
from app.domain.errors import InvalidParameter, NotFound
from app.domain.timeutil import Window, age_days, isoformat, now, parse_window
from app.settings import Settings
from app.storage.base import chunks
from app.storage.tiles import LAYERS

router = APIRouter(tags=["OGC API - Features"], route_class=CheckedRoute)
# What the service is (landing page, conformance, API definition): no data, so open even when
# reads need a token (the app includes it without ``read_access``), like /openapi.json and
# /docs. A client learns from it where to go and that a token is needed; a browser at ``/``
# gets the map viewer's page, whose reads then ask for the token.
about = APIRouter(tags=["OGC API - Features"], route_class=CheckedRoute)

JSON_TYPE = "application/json"
HTML_TYPE = "text/html"
SCHEMA_TYPE = "application/schema+json"
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
STREAM_BATCH = 100  # features encoded at a time in a streamed page

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    # OGC API - Tiles (app/api/ogc/tiles.py) and the tile matrix sets it uses
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]

# The property parameters of /items (region, party, …): each collection takes some of them.
PROPERTY_PARAMETERS = frozenset(p for c in COLLECTIONS.values() for p in c.parameters)

Format = Annotated[
    Literal["json", "geojson", "html"] | None,
    Query(description="`json` (GeoJSON for features) or `html`; default by the Accept header."),
]
CollectionId = Annotated[
    str,
    Path(
        alias="collectionId", description="Collection id: `regions`, `control` or `observations`."
    ),
]


@dataclass(frozen=True)
class ItemsParameters:
    """The query parameters of /items, declared once. The collection resource takes them too
    (and ignores them): GDAL sends a connection URL's parameters with every request."""

    bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat (CRS84).")] = None
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description="Only CRS84.")] = None
    datetime: Annotated[
        str | None, Query(description="Instant or interval the validity must meet.")
    ] = None
    limit: Annotated[int | None, Query(description="Features per page (clamped).")] = None
    offset: Annotated[int, Query(ge=0, description="Features to skip (paging).")] = 0
    filter: Annotated[str | None, Query(description="CQL2 filter on the queryables.")] = None
    filter_lang: Annotated[
        str | None, Query(alias="filter-lang", description="`cql2-text` (default) or `cql2-json`.")
    ] = None
    filter_crs: Annotated[str | None, Query(alias="filter-crs", description="Only CRS84.")] = None
    region: Annotated[list[str] | None, Query(description="Only these regions (slugs).")] = None
    party: Annotated[list[str] | None, Query(description="Only these parties (or `none`).")] = None
    status: Annotated[list[str] | None, Query(description="Only these statuses.")] = None
    source: Annotated[list[str] | None, Query(description="Only these sources.")] = None
    account: Annotated[
        list[str] | None, Query(description="Only sources speaking for these parties.")
    ] = None
    known_at: KnownAt = None
    max_age: MaxAge = None


# What GIS clients send with every request: GDAL and QGIS append a connection URL's parameters
# (``OAPIF:http://host/?datetime=…``) to the landing page, conformance, API and collection
# requests too. Those resources take them, checked like /items's, and ignore them.
Items = Annotated[ItemsParameters, Depends(parameters_of(ItemsParameters))]
ConnectionParameters = Items


def check_collection_parameters(request: Request, coll: Collection) -> None:
    """The route refuses what /items does not declare (see app.api.routing); a property
    parameter that the collection has no property for is refused the same way."""
    other = PROPERTY_PARAMETERS - set(coll.parameters)
    for name in request.query_params:
        if name in other:
            route = request.scope["route"]
            assert isinstance(route, APIRoute)
            known = query_parameter_names(route) - other
            raise unknown_parameter(name, known, f"collection {coll.id!r}")


# --- helpers ----------------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def base_url(request: Request) -> str:
    public = _settings(request).public_url
    return (public or str(request.base_url)).rstrip("/")


def _accept_q(accept: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media:
            out[media.lower()] = q
    return out


def wants_html(request: Request, f: str | None) -> bool:
    """``f=html`` or ``f=json``; else HTML only when the Accept header names text/html at least
    as high as any JSON type (browsers). ``*/*`` and no Accept header give JSON."""
    if f is not None:
        if f not in ("json", "geojson", "html"):
            raise InvalidParameter("f", f"'f' is json or html, not {f!r}.")
        return f == "html"
    q = _accept_q(request.headers.get("accept", ""))
    html_q = q.get(HTML_TYPE, 0.0)
    json_q = max((q.get(t, 0.0) for t in (JSON_TYPE, GEOJSON_MEDIA_TYPE, SCHEMA_TYPE)), default=0.0)
    return html_q > 0 and html_q >= json_q


def link(
    href: str, rel: str, media_type: str, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"href": href, "rel": rel, "type": media_type}
    if title:
        out["title"] = title
    out.update(extra)
    return out


def self_links(request: Request, json_type: str = JSON_TYPE) -> list[dict[str, Any]]:
    """``self`` and ``alternate`` links for a resource offered as JSON and HTML."""
    as_json = str(_url(request).include_query_params(f="json"))
    as_html = str(_url(request).include_query_params(f="html"))
    return [
        link(as_json, "self", json_type, "This document"),
        link(as_html, "alternate", HTML_TYPE, "This document as HTML"),
    ]


def _url(request: Request) -> URL:
    """The request's URL, on the public base URL when one is set."""
    query = f"?{request.url.query}" if request.url.query else ""
    return URL(base_url(request) + request.url.path + query)


def _collection(collection_id: str) -> Collection:
    try:
        return COLLECTIONS[collection_id]
    except KeyError:
        raise NotFound(
            f"There is no collection {collection_id!r}. Collections: "
            f"{', '.join(COLLECTIONS)} (GET /collections)."
        ) from None


# --- landing, conformance, API definition -----------------------------------------------------


@about.get(
    "/",
    summary="Landing page: what this service is, and where to go next",
    description="JSON for programs; a browser (HTML preferred in `Accept`, no `f`) gets the map "
    "viewer (also at `/map`); `f=html` gives this landing page as HTML.",
)
def landing(request: Request, _connection: ConnectionParameters, f: Format = None) -> Response:
    if f is None and wants_html(request, None):
        return viewer_page(request)
    base = base_url(request)
    links = [
        *self_links(request),
        link(f"{base}/api", "service-desc", OPENAPI_30_MEDIA_TYPE, "API definition (OpenAPI 3.0)"),
        link(f"{base}/openapi.json", "service-desc", JSON_TYPE, "API definition (OpenAPI 3.1)"),
        link(f"{base}/docs", "service-doc", HTML_TYPE, "API documentation"),
        link(f"{base}/map", "related", HTML_TYPE, "Map viewer"),
        link(f"{base}/conformance", "conformance", JSON_TYPE, "Conformance classes"),
        link(f"{base}/conformance", OGC_REL + "conformance", JSON_TYPE, "Conformance classes"),
        link(f"{base}/collections", "data", JSON_TYPE, "Feature collections"),
        link(f"{base}/collections", OGC_REL + "data", JSON_TYPE, "Feature collections"),
        link(f"{base}/tileMatrixSets", OGC_REL + "tiling-schemes", JSON_TYPE, "Tiling schemes"),
        link(f"{base}/regions", "regions", GEOJSON_MEDIA_TYPE, "Regions and their claims"),
        link(f"{base}/parties", "parties", JSON_TYPE, "Parties"),
        link(f"{base}/sources", "sources", JSON_TYPE, "Sources"),
        link(f"{base}/exports/observations?format=csv", "export", "text/csv", "All data as CSV"),
    ]
    title = "Frontline Atlas"
    description = (
        "Who controls which ground, when, and according to whom: time-stamped "
        "territorial-control polygons and area claims, each with its source and citation."
    )
    if wants_html(request, f):
        return html.page(title, html.paragraph(description), links)
    return JSON(
        {"title": title, "description": description, "version": __version__, "links": links}
    )


@about.get("/conformance", summary="The conformance classes this service implements")
def conformance(request: Request, _connection: ConnectionParameters, f: Format = None) -> Response:
    if wants_html(request, f):
        return html.page("Conformance", html.bullet_list(CONFORMANCE), self_links(request))
    return JSON({"conformsTo": CONFORMANCE, "links": self_links(request)})


def shared_parameters(settings: Settings) -> dict[str, dict[str, Any]]:
    """Parameters declared once under components/parameters, as OGC API - Features wants."""
    return {
        "limit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Features per page. A larger value is clamped to the maximum, not "
            "refused; follow the `next` link for the rest.",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": settings.items_max_limit,
                "default": settings.items_default_limit,
            },
        },
        "bbox": {
            "name": "bbox",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "minLon,minLat,maxLon,maxLat in WGS84 (CRS84).",
            "schema": {
                "type": "array",
                "minItems": 4,
                "maxItems": 6,
                "items": {"type": "number"},
            },
        },
        "datetime": {
            "name": "datetime",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Instant or interval (2025-04-26, 2024-08-01/2025-05-01, "
            "../2025-04-26, 2025-01-01/..). A feature matches when its validity interval meets "
            "it. A bare date as an instant or an end is the end of that day, UTC; as a start, "
            "its beginning.",
            "schema": {"type": "string"},
        },
    }


@about.get(
    "/api",
    summary="The API definition, OpenAPI 3.0",
    responses={200: {"content": {OPENAPI_30_MEDIA_TYPE: {}}}},
)
def api_definition(request: Request, _connection: ConnectionParameters) -> Response:
    cached = getattr(request.app.state, "openapi_30", None)
    if cached is None:
        cached = openapi_30(request.app.openapi(), shared_parameters(_settings(request)))
        with_concrete_paths(cached, "collectionId", list(COLLECTIONS))
        request.app.state.openapi_30 = cached
    return JSON(cached, media_type=OPENAPI_30_MEDIA_TYPE)


# --- collections ------------------------------------------------------------------------------


def collection_json(request: Request, collection: Collection, unit: Unit) -> dict[str, Any]:
    base = f"{base_url(request)}/collections/{collection.id}"
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": collection.extent(unit),
        "links": [
            link(base, "self", JSON_TYPE, collection.title),
            link(f"{base}?f=html", "alternate", HTML_TYPE, f"{collection.title} as HTML"),
            link(f"{base}/items", "items", GEOJSON_MEDIA_TYPE, "Items as GeoJSON"),
            link(f"{base}/items?f=html", "items", HTML_TYPE, "Items as HTML"),
            link(f"{base}/queryables", OGC_REL + "queryables", SCHEMA_TYPE, "Queryables"),
            link(f"{base}/schema", "describedby", SCHEMA_TYPE, "Feature properties"),
            link(f"{base}/schema", OGC_REL + "schema", SCHEMA_TYPE, "Feature properties"),
            *(
                [link(f"{base}/tiles", OGC_REL + "tilesets-vector", JSON_TYPE, "Vector tiles")]
                if collection.id in LAYERS
                else []
            ),
        ],
    }


@router.get("/collections", summary="The feature collections")
def collections(
    request: Request, unit: Unit, _connection: ConnectionParameters, f: Format = None
) -> Response:
    items = [collection_json(request, c, unit) for c in COLLECTIONS.values()]
    links = self_links(request)
    if wants_html(request, f):
        return html.page("Collections", html.collections_table(items), links)
    return JSON({"collections": items, "links": links})


@router.get(
    "/collections/{collectionId}",
    summary="One feature collection",
    description="Takes the parameters of its `/items` too, and checks but ignores them: GIS "
    "clients such as GDAL send a connection URL's parameters "
    "(`OAPIF:…/collections/control?datetime=2025-04-26`) with every request.",
)
def collection(
    request: Request,
    unit: Unit,
    collection_id: CollectionId,
    _connection: ConnectionParameters,
    f: Format = None,
) -> Response:
    coll = _collection(collection_id)
    check_collection_parameters(request, coll)
    body = collection_json(request, coll, unit)
    if wants_html(request, f):
        text = html.paragraph(body["description"]) + html.table(["extent"], [[body["extent"]]])
        return html.page(body["title"], text, body["links"])
    return JSON(body)


def _schema(request: Request, coll: Collection, resource: str, title: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base_url(request)}/collections/{coll.id}/{resource}",
        "type": "object",
        "title": f"{coll.title}: {title}",
        "properties": coll.queryables if resource == "queryables" else coll.schema,
        "additionalProperties": resource != "queryables",
    }


@router.get(
    "/collections/{collectionId}/schema",
    summary="The properties of the collection's features (JSON Schema)",
    responses={200: {"content": {SCHEMA_TYPE: {}}}},
)
def schema(request: Request, collection_id: CollectionId) -> Response:
    coll = _collection(collection_id)
    return JSON(_schema(request, coll, "schema", "feature properties"), media_type=SCHEMA_TYPE)


@router.get(
    "/collections/{collectionId}/queryables",
    summary="The properties a filter may name (JSON Schema)",
    responses={200: {"content": {SCHEMA_TYPE: {}}}},
)
def queryables(request: Request, collection_id: CollectionId, f: Format = None) -> Response:
    coll = _collection(collection_id)
    body = _schema(request, coll, "queryables", "queryables")
    if wants_html(request, f):
        rows = [
            (name, s.get("title"), s.get("type") or s.get("format"))
            for name, s in coll.queryables.items()
        ]
        return html.page(f"{coll.title}: queryables", html.table(["name", "title", "type"], rows))
    return JSON(body, media_type=SCHEMA_TYPE)


# --- items ------------------------------------------------------------------------------------


def _feature(item: Item) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": item.id,
        "geometry": geo.to_geojson(item.geometry)
        if item.geojson is None
        else orjson.Fragment(item.geojson),
        "properties": jsonable(item.values),
    }


def _page_links(
    request: Request, coll: Collection, matched: int, offset: int, limit: int
) -> list[dict[str, Any]]:
    url = _url(request)
    links = [
        link(str(url.include_query_params(f="json")), "self", GEOJSON_MEDIA_TYPE, "This page"),
        link(str(url.include_query_params(f="html")), "alternate", HTML_TYPE, "This page as HTML"),
    ]
    if offset + limit < matched:
        nxt = url.include_query_params(offset=offset + limit, limit=limit)
        links.append(link(str(nxt), "next", GEOJSON_MEDIA_TYPE, "Next page"))
    if offset > 0:
        prev = url.include_query_params(offset=max(0, offset - limit), limit=limit)
        links.append(link(str(prev), "prev", GEOJSON_MEDIA_TYPE, "Previous page"))
    collection_url = f"{base_url(request)}/collections/{coll.id}"
    links.append(link(collection_url, "collection", JSON_TYPE, coll.title))
    return links


def fresh_since(window: Window | None, oldest: dt.timedelta | None) -> dt.datetime | None:
    """With ``max_age``: the features are those no older than that all through the window
    (without ``datetime``: now), i.e. valid from this moment on."""
    start = window[0] if window is not None else now()
    return None if oldest is None or start is None else start - oldest


def _with_age(page: list[Item], window: Window | None, request: Request) -> None:
    """Each feature's ``age_days`` at the moment asked for: an instant; for an interval its
    end or, when earlier, the moment the feature left force; without ``datetime``, now (and
    then the answer changes as time passes, which the HTTP cache is told)."""
    instant = window is not None and window[0] == window[1]
    end = window[1] if window is not None else None
    if end is None:
        request.state.about_now = True
        end = now()
    for item in page:
        valid_from, until = item.values["valid_from"], item.values.get("valid_until")
        at = end if instant or until is None else min(end, until)
        item.values["age_days"] = age_days(valid_from, at)


@router.get(
    "/collections/{collectionId}/items",
    response_class=GeoJSON,
    responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}, HTML_TYPE: {}}}},
    summary="The features of a collection: filtered by place, time, properties and CQL2",
    description=(
        "GeoJSON FeatureCollection, paged (`limit`, `offset`, and a `next` link keeping every "
        "other parameter), with `numberMatched` and `numberReturned`. `datetime` matches the "
        "features whose validity interval meets the instant or interval. `filter` takes CQL2 "
        "text (or JSON with `filter-lang=cql2-json`) over the collection's queryables."
    ),
)
def items(
    request: Request,
    unit: Unit,
    collection_id: CollectionId,
    p: Items,
    f: Format = None,
) -> Response:
    coll = _collection(collection_id)
    check_collection_parameters(request, coll)
    oldest = max_age_span(p.max_age)
    as_html = wants_html(request, f)
    settings = _settings(request)
    if p.limit is not None and p.limit < 1:
        raise InvalidParameter("limit", f"'limit' must be 1 or more, not {p.limit}.")
    size = min(p.limit or settings.items_default_limit, settings.items_max_limit)
    area = parse_bbox(p.bbox, p.bbox_crs) if p.bbox is not None else None
    cql = parse_filter(p.filter, p.filter_lang, coll.queryables, p.filter_crs) if p.filter else None
    window = parse_window(p.datetime) if p.datetime is not None else None
    if not coll.temporal:
        window = None  # checked, but every feature of a timeless collection matches
    query = ItemQuery(
        flt=piece_filter(unit, p.party, p.status, p.source, p.account),
        regions=region_codes(unit, p.region),
        window=window,
        area=area,
        cql=cql,
        known_at=known_moment(p.known_at),
        since=fresh_since(window, oldest) if coll.temporal else None,
    )
    page, matched = coll.page(unit, query, p.offset, size)
    if coll.temporal:
        _with_age(page, window, request)
    links = _page_links(request, coll, matched, p.offset, size)
    if as_html:
        features = [_feature(item) for item in page]
        text = html.paragraph(f"{matched} features match; {len(page)} shown from {p.offset}.")
        return html.page(f"{coll.title}: items", text + html.features_table(features), links)
    head: dict[str, Any] = {"type": "FeatureCollection"}
    if any(item.values.get("illustrative") for item in page):
        head.update(illustrative=True, notice=ILLUSTRATIVE_NOTICE)
    head.update(
        timeStamp=isoformat(now()),
        numberMatched=matched,
        numberReturned=len(page),
        links=links,
    )
    if _expected_bytes(page) > settings.stream_bytes:
        return streamed_geojson(head, _encoded_features(page))
    return GeoJSON({**head, "features": [_feature(item) for item in page]})


def _expected_bytes(page: list[Item]) -> int:
    """About how large ``page`` is as GeoJSON: the polygons' text where the database gave it,
    else some 22 bytes a position (6 decimals); and some 700 for the rest of a feature."""
    shapes = [item.geometry for item in page if item.geometry is not None]
    positions = int(shapely.get_num_coordinates(shapes).sum()) if shapes else 0
    texts = sum(len(item.geojson) for item in page if item.geojson is not None)
    return texts + 22 * positions + 700 * len(page)


def _encoded_features(page: list[Item]) -> Iterator[list[bytes]]:
    """The features of ``page``, encoded a batch at a time; each polygon let go once sent."""
    for batch in chunks(page, STREAM_BATCH):
        yield [encoded(_feature(item)) for item in batch]
        for item in batch:
            item.geometry = item.geojson = None


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    response_class=GeoJSON,
    responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}, HTML_TYPE: {}}}},
    summary="One feature",
)
def item(
    request: Request,
    unit: Unit,
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(alias="featureId", description="Feature id.")],
    known_at: KnownAt = None,
    f: Format = None,
) -> Response:
    coll = _collection(collection_id)
    found = coll.item(unit, feature_id, ItemQuery(known_at=known_moment(known_at)))
    coll.load_geometries(unit, [found])
    feature = _feature(found)
    base = f"{base_url(request)}/collections/{coll.id}"
    links = [
        *self_links(request, GEOJSON_MEDIA_TYPE),
        link(base, "collection", JSON_TYPE, coll.title),
    ]
    if wants_html(request, f):
        return html.page(f"{coll.title}: {feature_id}", html.features_table([feature]), links)
    return GeoJSON({**feature, "links": links})
