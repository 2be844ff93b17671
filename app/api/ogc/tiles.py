"""OGC API - Tiles: Mapbox Vector Tiles of ``control`` and ``regions`` on WebMercatorQuad.

- ``/collections/{id}/tiles/WebMercatorQuad/{z}/{x}/{y}``: one tile (``x`` the column, ``y`` the
  row, as every XYZ map client and tipg write it; the tileset's templated link says so by
  name). ``control`` takes the filters of ``/collections/control/items`` (the same declarations,
  read off that route) and draws the same pieces; ``regions`` takes ``region`` and ``known_at``.
- ``…/WebMercatorQuad/tilejson.json``: TileJSON 3.0.0 for MapLibre and friends, its tile URL
  keeping the query parameters it was asked with.
- ``/collections/{id}/tiles`` and ``…/tiles/WebMercatorQuad``: the OGC tileset list and tileset;
  ``/tileMatrixSets`` and ``/tileMatrixSets/WebMercatorQuad``: the tiling scheme (morecantile).

A tile with nothing in it is a ``200`` with an empty body (MapLibre and OpenLayers take it as
an empty tile, as they do a ``204``; a ``200`` also suits clients and caches that take a ``204``
for an error). A tile outside the matrix is a
``404`` problem that gives the valid range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import morecantile
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from app.api.deps import Unit, parameters_of
from app.api.ogc import routes as ogc
from app.api.ogc.collections import COLLECTIONS, Collection
from app.api.params import known_moment, max_age_span, piece_filter, region_codes
from app.api.responses import JSON
from app.api.routing import CheckedRoute
from app.domain.errors import NotFound
from app.domain.timeutil import parse_window
from app.storage.tiles import LAYERS, TMS

router = APIRouter(tags=["OGC API - Tiles"], route_class=CheckedRoute)

MVT_TYPE = "application/vnd.mapbox-vector-tile"
TMS_ID = "WebMercatorQuad"
MIN_ZOOM, MAX_ZOOM = 0, 14  # beyond 14 clients overzoom: no polygon here needs more
TILEJSON_VERSION = "3.0.0"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"

# The filters a tile takes: those of /collections/{id}/items that make sense for a tile, with
# the very declarations (types, descriptions) of that route.
FILTERS = ("datetime", "region", "party", "status", "source", "account", "known_at", "max_age")
Filters = Annotated[ogc.ItemsParameters, Depends(parameters_of(ogc.ItemsParameters, FILTERS))]

TileMatrixSetId = Annotated[
    str, Path(alias="tileMatrixSetId", description="Tile matrix set: only `WebMercatorQuad`.")
]


def _query(unit: Unit, coll: Collection, filters: ogc.ItemsParameters) -> dict[str, Any]:
    """What the filters ask of :meth:`Tiles.control` or :meth:`Tiles.regions`, read exactly as
    /items reads them (unknown codes are 400s that list the known ones)."""
    query: dict[str, Any] = {
        "regions": region_codes(unit, filters.region),
        "known_at": known_moment(filters.known_at),
    }
    window = parse_window(filters.datetime) if filters.datetime is not None else None
    if coll.id == "control":
        query["window"] = window
        query["since"] = ogc.fresh_since(window, max_age_span(filters.max_age))
        query["flt"] = piece_filter(
            unit, filters.party, filters.status, filters.source, filters.account
        )
    return query


def _draw(unit: Unit, coll: Collection, tile: morecantile.Tile, query: dict[str, Any]) -> bytes:
    if coll.id == "control":
        return unit.tiles.control(tile, **query)
    return unit.tiles.regions(tile, **query)


def _tile(z: int, x: int, y: int) -> morecantile.Tile:
    """The tile, or a 404 that says which tiles there are."""
    if not MIN_ZOOM <= z <= MAX_ZOOM:
        raise NotFound(
            f"Zoom {z} is outside {TMS_ID} here: zoom levels run from {MIN_ZOOM} to {MAX_ZOOM} "
            f"(clients overzoom beyond {MAX_ZOOM}).",
            valid={"z": [MIN_ZOOM, MAX_ZOOM]},
        )
    last = 2**z - 1
    if not (0 <= x <= last and 0 <= y <= last):
        raise NotFound(
            f"Tile {z}/{x}/{y} is outside {TMS_ID}: at zoom {z}, x (column) and y (row) run "
            f"from 0 to {last}.",
            valid={"z": [MIN_ZOOM, MAX_ZOOM], "x": [0, last], "y": [0, last]},
        )
    return morecantile.Tile(x, y, z)


def _tms(tile_matrix_set_id: str) -> morecantile.TileMatrixSet:
    if tile_matrix_set_id != TMS_ID:
        raise NotFound(
            f"There is no tile matrix set {tile_matrix_set_id!r}; the one offered is {TMS_ID} "
            "(GET /tileMatrixSets)."
        )
    return TMS


# --- documents --------------------------------------------------------------------------------


def _bounds(coll: Collection, unit: Unit) -> list[float]:
    bbox = coll.extent(unit).get("spatial", {}).get("bbox")
    return list(bbox[0]) if bbox else [-180.0, -85.0511, 180.0, 85.0511]


def _template(request: Request, coll: Collection, variables: tuple[str, str, str]) -> str:
    """The tile URL template, keeping the query of this request."""
    z, x, y = ("{" + v + "}" for v in variables)
    path = f"{ogc.base_url(request)}/collections/{coll.id}/tiles/{TMS_ID}/{z}/{x}/{y}"
    return f"{path}?{request.url.query}" if request.url.query else path


def _fields(coll: Collection) -> dict[str, str]:
    """TileJSON ``fields``: each property of the layer and what it holds."""
    out = {}
    for name in LAYERS[coll.id]:
        schema = coll.schema[name]
        out[name] = f"{schema.get('type', 'string').capitalize()}: {schema['title']}"
    return out


def _properties_schema(coll: Collection) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: coll.schema[name] for name in LAYERS[coll.id]},
    }


def _tileset_links(request: Request, coll: Collection) -> list[dict[str, Any]]:
    base = ogc.base_url(request)
    here = f"{base}/collections/{coll.id}/tiles/{TMS_ID}"
    return [
        ogc.link(here, "self", ogc.JSON_TYPE, f"{coll.title}: vector tileset"),
        ogc.link(
            f"{base}/tileMatrixSets/{TMS_ID}",
            ogc.OGC_REL + "tiling-scheme",
            ogc.JSON_TYPE,
            "The tile matrix set",
        ),
        ogc.link(
            _template(request, coll, ("tileMatrix", "tileCol", "tileRow")),
            "item",
            MVT_TYPE,
            "Mapbox vector tiles",
            templated=True,
        ),
        ogc.link(f"{here}/tilejson.json", "describedby", ogc.JSON_TYPE, "TileJSON"),
        ogc.link(f"{base}/collections/{coll.id}", "collection", ogc.JSON_TYPE, coll.title),
    ]


def _tileset_summary(request: Request, coll: Collection) -> dict[str, Any]:
    return {
        "title": f"{coll.title} ({TMS_ID})",
        "dataType": "vector",
        "crs": CRS_3857,
        "tileMatrixSetURI": TMS.uri,
        "links": _tileset_links(request, coll),
    }


def _limits(bounds: list[float]) -> list[dict[str, Any]]:
    out = []
    for z in range(MIN_ZOOM, MAX_ZOOM + 1):
        first = TMS.tile(bounds[0], bounds[3], z)
        last = TMS.tile(bounds[2], bounds[1], z)
        out.append(
            {
                "tileMatrix": str(z),
                "minTileRow": first.y,
                "maxTileRow": last.y,
                "minTileCol": first.x,
                "maxTileCol": last.x,
            }
        )
    return out


# --- routes -----------------------------------------------------------------------------------

Zoom = Annotated[int, Path(description=f"Zoom level (tile matrix), {MIN_ZOOM} to {MAX_ZOOM}.")]
Column = Annotated[int, Path(description="Tile column, 0 to 2^z - 1, west to east.")]
Row = Annotated[int, Path(description="Tile row, 0 to 2^z - 1, north to south.")]


def _routes(coll: Collection) -> None:
    """The tile routes of one collection (concrete paths: each has its own parameters)."""
    tiles = f"/collections/{coll.id}/tiles"

    def tilesets(request: Request) -> Response:
        return JSON(
            {
                "tilesets": [_tileset_summary(request, coll)],
                "links": [
                    ogc.link(f"{ogc.base_url(request)}{tiles}", "self", ogc.JSON_TYPE, "Tilesets")
                ],
            }
        )

    def tileset(request: Request, unit: Unit, tile_matrix_set_id: TileMatrixSetId) -> Response:
        _tms(tile_matrix_set_id)
        bounds = _bounds(coll, unit)
        return JSON(
            {
                **_tileset_summary(request, coll),
                "description": coll.description,
                "tileMatrixSetLimits": _limits(bounds),
                "boundingBox": {
                    "lowerLeft": bounds[:2],
                    "upperRight": bounds[2:],
                    "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                },
                "layers": [
                    {
                        "id": coll.id,
                        "title": coll.title,
                        "dataType": "vector",
                        "geometryDimension": 2,
                        "minTileMatrix": str(MIN_ZOOM),
                        "maxTileMatrix": str(MAX_ZOOM),
                        "propertiesSchema": _properties_schema(coll),
                    }
                ],
            }
        )

    def tilejson(
        request: Request, unit: Unit, tile_matrix_set_id: TileMatrixSetId, filters: Filters
    ) -> Response:
        _tms(tile_matrix_set_id)
        ogc.check_collection_parameters(request, coll)
        _query(unit, coll, filters)  # bad filters fail here, not in every tile
        bounds = _bounds(coll, unit)
        return JSON(
            {
                "tilejson": TILEJSON_VERSION,
                "name": coll.id,
                "description": coll.description,
                "scheme": "xyz",
                "tiles": [_template(request, coll, ("z", "x", "y"))],
                "minzoom": MIN_ZOOM,
                "maxzoom": MAX_ZOOM,
                "bounds": bounds,
                "center": [
                    round((bounds[0] + bounds[2]) / 2, 6),
                    round((bounds[1] + bounds[3]) / 2, 6),
                    5,
                ],
                "vector_layers": [
                    {
                        "id": coll.id,
                        "description": coll.title,
                        "minzoom": MIN_ZOOM,
                        "maxzoom": MAX_ZOOM,
                        "fields": _fields(coll),
                    }
                ],
            }
        )

    def tile(
        request: Request,
        unit: Unit,
        tile_matrix_set_id: TileMatrixSetId,
        z: Zoom,
        x: Column,
        y: Row,
        filters: Filters,
    ) -> Response:
        _tms(tile_matrix_set_id)
        ogc.check_collection_parameters(request, coll)
        drawn = _draw(unit, coll, _tile(z, x, y), _query(unit, coll, filters))
        return Response(drawn, media_type=MVT_TYPE)

    name = coll.title
    tms = f"{tiles}/{{tileMatrixSetId}}"
    add: Callable[..., None] = router.add_api_route
    add(tiles, tilesets, summary=f"{name}: the vector tilesets", name=f"tilesets_{coll.id}")
    add(tms, tileset, summary=f"{name}: the vector tileset", name=f"tileset_{coll.id}")
    add(
        f"{tms}/tilejson.json",
        tilejson,
        summary=f"{name}: TileJSON 3.0.0 (the tile URL keeps the query parameters)",
        name=f"tilejson_{coll.id}",
    )
    add(
        f"{tms}/{{z}}/{{x}}/{{y}}",
        tile,
        summary=f"{name}: one Mapbox Vector Tile",
        description=(
            f"One tile, layer `{coll.id}` with the properties "
            f"{', '.join(f'`{p}`' for p in LAYERS[coll.id])}. Polygons are clipped, simplified "
            "to a quarter pixel of the zoom, and shapes under a pixel dropped. An empty tile is "
            "a 200 with an empty body; a tile outside the matrix is a 404."
        ),
        response_class=Response,
        responses={
            200: {"content": {MVT_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
        },
        name=f"tile_{coll.id}",
    )


for _coll in (COLLECTIONS[cid] for cid in LAYERS):
    _routes(_coll)


@router.get("/tileMatrixSets", summary="The tile matrix sets (tiling schemes) offered")
def tile_matrix_sets(request: Request) -> Response:
    href = f"{ogc.base_url(request)}/tileMatrixSets/{TMS_ID}"
    return JSON(
        {
            "tileMatrixSets": [
                {
                    "id": TMS_ID,
                    "title": TMS.title,
                    "uri": TMS.uri,
                    "links": [ogc.link(href, ogc.OGC_REL + "tiling-scheme", ogc.JSON_TYPE, TMS_ID)],
                }
            ],
            "links": [
                ogc.link(f"{ogc.base_url(request)}/tileMatrixSets", "self", ogc.JSON_TYPE, "Sets")
            ],
        }
    )


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="One tile matrix set (OGC TMS 2.0 JSON)")
def tile_matrix_set(tile_matrix_set_id: TileMatrixSetId) -> Response:
    return JSON(_tms(tile_matrix_set_id).model_dump(mode="json", exclude_none=True))
