"""OGC API - Tiles: vector tiles decoded and compared with what /items serves, on SQLite and
PostGIS, and with each other."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import morecantile
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import MultiPolygon, box, shape
from sqlalchemy import Engine

from app.api.app import create_app
from app.domain.model import Basis, NewObservation, Status
from app.domain.timeutil import parse_moment
from app.settings import Settings
from app.storage.database import Database
from app.storage.tiles import LAYERS, TileShape
from benchmarks.tiles import UKRAINE, front_tiles, load_theatre, tiles_of
from tests.conftest import DATA_DIR, PostgresDatabases, _new_engine, _require_backend

MVT = "application/vnd.mapbox-vector-tile"
PROBLEM = "application/problem+json"
TMS = morecantile.tms.get("WebMercatorQuad")
TO_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform
KURSK = (35.3, 51.3)  # in the seed's illustrative polygons


def tile_path(collection: str, tile: morecantile.Tile) -> str:
    return f"/collections/{collection}/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}"


def decoded(
    client: TestClient, collection: str, tile: morecantile.Tile, **params: Any
) -> list[dict[str, Any]]:
    """The features of the tile's one layer, named after the collection."""
    r = client.get(tile_path(collection, tile), params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MVT
    if not r.content:
        return []
    layers = mapbox_vector_tile.decode(r.content)
    assert set(layers) == {collection}
    assert layers[collection]["extent"] == 4096
    features: list[dict[str, Any]] = layers[collection]["features"]
    for feature in features:
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert all(isinstance(v, str | int | float | bool) for v in feature["properties"].values())
    return features


def key(properties: dict[str, Any]) -> frozenset[tuple[str, Any]]:
    return frozenset(properties.items())


def from_items(
    client: TestClient, collection: str, tile: morecantile.Tile, **params: Any
) -> tuple[set[frozenset[tuple[str, Any]]], set[frozenset[tuple[str, Any]]]]:
    """What /items says the tile must show (clipped area of 2 pixels or more) and may show (any
    area above zero: slivers under a pixel are dropped, and simplification moves areas a bit)."""
    drawn = TileShape(tile)
    west, south, east, north = drawn.clip_lonlat
    clip = (max(west, -180), max(south, -90), min(east, 180), min(north, 90))
    r = client.get(
        f"/collections/{collection}/items",
        params={**params, "bbox": ",".join(map(str, clip)), "limit": 1000},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberMatched"] == body["numberReturned"]
    must, may = set(), set()
    for feature in body["features"]:
        if feature["geometry"] is None:
            continue
        clipped = shape(feature["geometry"]).intersection(box(*clip))
        area = shapely.transform(clipped, TO_3857, interleaved=False).area / drawn.pixel**2
        properties = {k: v for k, v in feature["properties"].items() if k in LAYERS[collection]}
        properties = {k: v for k, v in properties.items() if v is not None}
        if area > 0:
            may.add(key(properties))
        if area >= 2:
            must.add(key(properties))
    return must, may


def assert_tile_is_items(
    client: TestClient, collection: str, tile: morecantile.Tile, **params: Any
) -> int:
    got = {key(f["properties"]) for f in decoded(client, collection, tile, **params)}
    must, may = from_items(client, collection, tile, **params)
    assert must <= got <= may, (tile, params, must - got, got - may)
    return len(got)


# --- against /items, on the seed, both databases --------------------------------------------


@pytest.mark.parametrize("zoom", [4, 7, 9, 12])
@pytest.mark.parametrize(
    "params",
    [
        {"datetime": "2024-09-01"},
        {"datetime": "2025-05-01"},
        {},
        {"datetime": "2024-08-01/2025-05-01", "party": "UA", "region": "kursk"},
        {"datetime": "2025-05-01", "source": "frontline-atlas-illustration", "account": "none"},
        {"datetime": "2025-05-01", "party": "RU"},
        {"datetime": "2025-05-01", "status": "contested"},
    ],
)
def test_control_tile_shows_what_items_serves(
    client: TestClient, zoom: int, params: dict[str, str]
) -> None:
    tile = TMS.tile(*KURSK, zoom)
    found = assert_tile_is_items(client, "control", tile, **params)
    if params.get("party") == "RU" or params.get("status") == "contested":
        assert found == 0  # the seed draws Ukrainian-held ground only
    elif zoom >= 7 and params.get("datetime") == "2024-09-01":
        (feature,) = decoded(client, "control", tile, **params)
        assert feature["properties"] == {
            "observation_id": 1,
            "region": "kursk",
            "source": "frontline-atlas-illustration",
            "party": "UA",
            "status": "controlled",
            "basis": "assessed",
            "valid_from": "2024-08-27T00:00:00Z",
            "valid_until": "2025-04-26T00:00:00Z",
            "area_km2": pytest.approx(1299.995, abs=0.001),
            "illustrative": True,
        }


@pytest.mark.parametrize("zoom", [0, 3, 5, 8])
def test_regions_tile_shows_what_items_serves(client: TestClient, zoom: int) -> None:
    tile = TMS.tile(*KURSK, zoom)
    assert assert_tile_is_items(client, "regions", tile) > 0
    features = decoded(client, "regions", tile, region="kursk")
    assert [f["properties"]["slug"] for f in features] == ["kursk"]
    assert set(features[0]["properties"]) == {"slug", "name", "country", "area_km2"}


def test_seeded_tiles_stay_small(client: TestClient) -> None:
    for zoom in range(15):
        tile = TMS.tile(*KURSK, zoom)
        for collection, params in (
            ("control", {}),
            ("control", {"datetime": "2025-05-01"}),
            ("regions", {}),
        ):
            r = client.get(tile_path(collection, tile), params=params)
            assert r.status_code == 200
            assert len(r.content) < 500_000, (collection, tile, params)


def test_an_empty_tile_is_an_empty_200(client: TestClient) -> None:
    atlantic = TMS.tile(-30.0, 40.0, 6)
    r = client.get(tile_path("control", atlantic))
    assert (r.status_code, r.headers["content-type"], r.content) == (200, MVT, b"")
    assert client.get(tile_path("regions", atlantic)).content == b""
    # and one with data, but not then
    r = client.get(tile_path("control", TMS.tile(*KURSK, 6)), params={"datetime": "2020-01-01"})
    assert (r.status_code, r.content) == (200, b"")


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/collections/control/tiles/WebMercatorQuad/15/0/0", 404, "from 0 to 14"),
        ("/collections/control/tiles/WebMercatorQuad/-1/0/0", 404, "from 0 to 14"),
        ("/collections/control/tiles/WebMercatorQuad/3/8/0", 404, "from 0 to 7"),
        ("/collections/regions/tiles/WebMercatorQuad/3/0/-1", 404, "from 0 to 7"),
        ("/collections/control/tiles/WorldCRS84Quad/3/0/0", 404, "WebMercatorQuad"),
        ("/collections/control/tiles/WebMercatorQuad/3/4/2?bbox=1,2,3,4", 400, "datetime"),
        ("/collections/control/tiles/WebMercatorQuad/3/4/2?party=XX", 400, "UA"),
        ("/collections/control/tiles/WebMercatorQuad/3/4/2?region=atlantis", 400, "kursk"),
        ("/collections/control/tiles/WebMercatorQuad/3/4/2?datetime=soon", 400, "datetime"),
        ("/collections/regions/tiles/WebMercatorQuad/3/4/2?party=UA", 400, "known_at"),
        ("/tileMatrixSets/WorldCRS84Quad", 404, "WebMercatorQuad"),
    ],
)
def test_bad_tile_requests_are_problems_that_say_what_is_valid(
    client: TestClient, path: str, status: int, says: str
) -> None:
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert says in r.json()["detail"]


def test_observations_have_no_tiles(client: TestClient) -> None:
    r = client.get("/collections/observations/tiles/WebMercatorQuad/3/4/2")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM


# --- the documents ------------------------------------------------------------------------------


def test_tilejson_keeps_the_query_and_describes_the_layer(client: TestClient) -> None:
    query = {"datetime": "2024-09-01", "party": "UA"}
    r = client.get("/collections/control/tiles/WebMercatorQuad/tilejson.json", params=query)
    assert r.status_code == 200
    doc = r.json()
    assert doc["tilejson"] == "3.0.0"
    assert (doc["minzoom"], doc["maxzoom"]) == (0, 14)
    (template,) = doc["tiles"]
    assert template.endswith(
        "/collections/control/tiles/WebMercatorQuad/{z}/{x}/{y}?datetime=2024-09-01&party=UA"
    )
    west, south, east, north = doc["bounds"]
    assert west < KURSK[0] < east
    assert south < KURSK[1] < north
    (layer,) = doc["vector_layers"]
    assert layer["id"] == "control"
    assert set(layer["fields"]) == set(LAYERS["control"])
    tile = TMS.tile(*KURSK, 8)
    url = template.format(z=tile.z, x=tile.x, y=tile.y).removeprefix("http://testserver")
    assert client.get(url).content == client.get(tile_path("control", tile), params=query).content
    regions = client.get("/collections/regions/tiles/WebMercatorQuad/tilejson.json").json()
    assert set(regions["vector_layers"][0]["fields"]) == {"slug", "name", "country", "area_km2"}
    bad = client.get("/collections/control/tiles/WebMercatorQuad/tilejson.json?party=XX")
    assert bad.status_code == 400


def test_ogc_tilesets_and_tile_matrix_sets(client: TestClient) -> None:
    conforms = client.get("/conformance").json()["conformsTo"]
    for suffix in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt"):
        assert f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{suffix}" in conforms
    collection = client.get("/collections/control").json()
    (tiles_link,) = [lk for lk in collection["links"] if lk["rel"].endswith("tilesets-vector")]
    assert tiles_link["href"].endswith("/collections/control/tiles")
    observations = client.get("/collections/observations").json()
    assert not [lk for lk in observations["links"] if lk["rel"].endswith("tilesets-vector")]

    (tileset,) = client.get("/collections/control/tiles").json()["tilesets"]
    assert tileset["dataType"] == "vector"
    assert tileset["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    item = next(lk for lk in tileset["links"] if lk["rel"] == "item")
    assert item["type"] == MVT
    assert item["templated"] is True
    assert item["href"].endswith("/WebMercatorQuad/{tileMatrix}/{tileCol}/{tileRow}")
    tile = TMS.tile(*KURSK, 7)
    filled = item["href"].format(tileMatrix=tile.z, tileRow=tile.y, tileCol=tile.x)
    assert client.get(filled.removeprefix("http://testserver")).content
    full = client.get("/collections/control/tiles/WebMercatorQuad").json()
    limits = {int(lim["tileMatrix"]): lim for lim in full["tileMatrixSetLimits"]}
    assert set(limits) == set(range(15))
    assert limits[7]["minTileCol"] <= tile.x <= limits[7]["maxTileCol"]
    assert limits[7]["minTileRow"] <= tile.y <= limits[7]["maxTileRow"]
    assert set(full["layers"][0]["propertiesSchema"]["properties"]) == set(LAYERS["control"])

    sets = client.get("/tileMatrixSets").json()["tileMatrixSets"]
    assert [s["id"] for s in sets] == ["WebMercatorQuad"]
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["id"] == "WebMercatorQuad"
    assert tms["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857"
    assert len(tms["tileMatrices"]) == 25
    landing = client.get("/").json()
    assert any(lk["rel"].endswith("tiling-schemes") for lk in landing["links"])


def test_the_api_definitions_describe_the_tiles(client: TestClient) -> None:
    def parameters(document: dict[str, Any], path: str) -> dict[str, Any]:
        shared = document.get("components", {}).get("parameters", {})
        found = document["paths"][path]["get"]["parameters"]
        resolved = [shared[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p for p in found]
        return {p["name"]: p for p in resolved}

    for document in (client.get("/api").json(), client.get("/openapi.json").json()):
        tile = parameters(document, "/collections/control/tiles/{tileMatrixSetId}/{z}/{x}/{y}")
        # the very parameters of /collections/control/items, declared there once
        items = parameters(document, "/collections/{collectionId}/items")
        for name in ("datetime", "region", "party", "status", "source", "account", "known_at"):
            assert tile[name] == items[name]
        assert {"z", "x", "y", "tileMatrixSetId"} <= set(tile)


# --- known_at -----------------------------------------------------------------------------------


def test_known_at_draws_the_record_as_it_stood(empty_engine: Engine) -> None:
    from app.seed import seed

    db = Database(empty_engine)
    seed(db, DATA_DIR)
    before = dt.datetime.now(dt.UTC)
    with db.write("desk") as w:
        w.observations.add(
            [
                NewObservation(
                    "frontline-atlas-illustration",
                    "UA",
                    Status.CONTROLLED,
                    Basis.ASSESSED,
                    parse_moment("2025-05-10", "x"),
                    geometry=MultiPolygon([box(35.2, 51.15, 35.4, 51.25)]),
                    illustrative=True,
                )
            ]
        )
    app = create_app(Settings(database_url=str(empty_engine.url)), engine=empty_engine)
    tile = TMS.tile(*KURSK, 8)
    with TestClient(app) as client:
        for params in ({}, {"known_at": before.isoformat()}, {"datetime": "2025-05-05"}):
            assert_tile_is_items(client, "control", tile, **params)
        now = {f["properties"]["observation_id"]: f for f in decoded(client, "control", tile)}
        then = {
            f["properties"]["observation_id"]: f
            for f in decoded(client, "control", tile, known_at=before.isoformat())
        }
        assert set(now) - set(then) == {max(now)}  # the new drawing was not known then
        assert now[2]["properties"]["valid_until"] == "2025-05-10T23:59:59.999999Z"
        assert "valid_until" not in then[2]["properties"]  # open then
        assert decoded(client, "control", tile, known_at="2020-01-01") == []


# --- the two databases: the same tiles, on a whole-theatre history ------------------------------


@pytest.fixture(scope="module")
def theatres(
    tmp_path_factory: pytest.TempPathFactory, pg_databases: PostgresDatabases | None
) -> Iterator[dict[str, TestClient]]:
    """Three daily whole-front maps (each drawn anew) on SQLite and on PostGIS."""
    _require_backend("postgis")
    clients: dict[str, TestClient] = {}
    engines = []
    archive: Path = tmp_path_factory.mktemp("theatre")
    for backend in ("sqlite", "postgis"):
        engine = _new_engine(backend, tmp_path_factory, pg_databases)
        engines.append(engine)
        load_theatre(Database(engine), archive / backend, days=3)
        app = create_app(Settings(database_url=str(engine.url)), engine=engine)
        clients[backend] = TestClient(app).__enter__()
    yield clients
    for client in clients.values():
        client.__exit__(None, None, None)
    for engine in engines:
        engine.dispose()


THEATRE_DAY = "2024-08-02"  # the second of the three maps (benchmarks.archive starts 1 Aug)


def _theatre_tiles() -> list[morecantile.Tile]:
    return [
        *tiles_of(UKRAINE, 1),
        *tiles_of(UKRAINE, 5),
        *front_tiles(8)[::3],
        *front_tiles(12)[::40],
    ]


@pytest.mark.postgis
@pytest.mark.parametrize("params", [{"datetime": THEATRE_DAY}, {}, {"party": "RU"}])
def test_both_databases_draw_the_same_tiles(
    theatres: dict[str, TestClient], params: dict[str, str]
) -> None:
    drawn = 0
    for tile in _theatre_tiles():
        by_backend = {
            backend: {key(f["properties"]): f for f in decoded(client, "control", tile, **params)}
            for backend, client in theatres.items()
        }
        sqlite, postgis = by_backend["sqlite"], by_backend["postgis"]
        assert set(sqlite) == set(postgis), tile
        for k, feature in sqlite.items():
            mine, theirs = shape(feature["geometry"]), shape(postgis[k]["geometry"])
            # Each simplifies within a quarter pixel (4 of the tile's 4096 units) of the shape,
            # so tiny shapes at low zoom may differ by up to that band along their outline.
            band = 4 * theirs.length
            assert mine.area == pytest.approx(theirs.area, rel=0.03, abs=max(4, band)), (
                tile,
                dict(k),
            )
            drawn += 1
        assert_tile_is_items(theatres["sqlite"], "control", tile, **params)
    assert drawn > 20


@pytest.mark.postgis
def test_both_databases_draw_the_same_regions(theatres: dict[str, TestClient]) -> None:
    for tile in [*tiles_of(UKRAINE, 1), *tiles_of(UKRAINE, 4), *tiles_of(UKRAINE, 6)[::5]]:
        by_backend = [
            {key(f["properties"]): shape(f["geometry"]).area for f in decoded(c, "regions", tile)}
            for c in theatres.values()
        ]
        assert set(by_backend[0]) == set(by_backend[1])
        for k, area in by_backend[0].items():
            assert area == pytest.approx(by_backend[1][k], rel=0.03, abs=4)


@pytest.mark.postgis
def test_every_tile_of_the_theatre_stays_small(theatres: dict[str, TestClient]) -> None:
    for backend, client in theatres.items():
        for zoom in range(0, 7):
            for tile in tiles_of(UKRAINE, zoom):
                for params in ({"datetime": THEATRE_DAY}, {}):
                    r = client.get(tile_path("control", tile), params=params)
                    assert len(r.content) < 500_000, (backend, tile, params, len(r.content))
