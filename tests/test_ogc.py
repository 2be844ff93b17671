"""OGC API - Features (Parts 1 and 3) through the ASGI app, on SQLite and on PostGIS.

GIS clients themselves (GDAL, OWSLib, geopandas) are in test_gis_clients.py; this file checks
the conformance classes the service claims, one requirement at a time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import shapely
from fastapi.testclient import TestClient
from openapi_spec_validator import OpenAPIV30SpecValidator
from shapely.geometry import box, shape
from sqlalchemy import Engine

from app.api.app import create_app
from app.domain import geometry as geo
from app.domain.model import Basis, NewObservation, Status
from app.domain.timeutil import parse_moment, parse_window
from app.settings import Settings
from app.storage.database import Database
from tests.conftest import BACKENDS
from tests.test_api import assert_rfc7946

GEOJSON = "application/geo+json"
OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"
CONF = "http://www.opengis.net/spec/"


def items(client: TestClient, collection: str = "control", **params: Any) -> dict[str, Any]:
    r = client.get(f"/collections/{collection}/items", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == GEOJSON
    return dict(r.json())


def every_item(client: TestClient, collection: str = "control", **params: Any) -> list[dict]:
    """Follow the next links to the end."""
    body = items(client, collection, **params)
    features = list(body["features"])
    while nxt := [link for link in body["links"] if link["rel"] == "next"]:
        r = client.get(nxt[0]["href"])
        assert r.status_code == 200
        body = r.json()
        features.extend(body["features"])
    return features


def link_of(body: dict[str, Any], rel: str) -> dict[str, Any]:
    found = [link for link in body["links"] if link["rel"] == rel]
    assert found, f"no {rel} link in {body['links']}"
    return found[0]


# --- Part 1: landing page, conformance, API definition ------------------------------------


def test_landing_page_links(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert link_of(body, "service-desc")["type"] == OPENAPI_30
    assert link_of(body, "service-doc")["type"] == "text/html"
    assert link_of(body, "conformance")["href"].endswith("/conformance")
    assert link_of(body, "data")["href"].endswith("/collections")
    assert link_of(body, "self")["type"] == "application/json"
    assert link_of(body, "alternate")["type"] == "text/html"


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/", "Frontline Atlas"),
        ("/conformance", "conf/core"),
        ("/collections", "/collections/control"),
        ("/collections/control", "Control pieces"),
        ("/collections/control/items", "ua-commander-in-chief"),
        ("/collections/control/items/1-kursk", "frontline-atlas-illustration"),
        ("/collections/control/queryables", "valid_from"),
    ],
)
def test_every_resource_has_html_for_browsers(client: TestClient, path: str, marker: str) -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for r in (
        client.get(path, headers={"accept": browser}),
        client.get(path, params={"f": "html"}),
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert marker in r.text


def test_conformance_lists_what_is_implemented(client: TestClient) -> None:
    body = client.get("/conformance").json()
    claimed = set(body["conformsTo"])
    for suffix in (
        "ogcapi-features-1/1.0/conf/core",
        "ogcapi-features-1/1.0/conf/geojson",
        "ogcapi-features-1/1.0/conf/html",
        "ogcapi-features-1/1.0/conf/oas30",
        "ogcapi-features-3/1.0/conf/queryables",
        "ogcapi-features-3/1.0/conf/filter",
        "ogcapi-features-3/1.0/conf/features-filter",
        "cql2/1.0/conf/cql2-text",
        "cql2/1.0/conf/cql2-json",
        "cql2/1.0/conf/basic-cql2",
    ):
        assert CONF + suffix in claimed
    # Not implemented, so not claimed: CRS other than CRS84, temporal functions, CASEI.
    assert not any(
        c.endswith(("/crs", "temporal-functions", "case-insensitive-comparison")) for c in claimed
    )


def test_api_definition_is_valid_openapi_30(client: TestClient) -> None:
    r = client.get("/api")
    assert r.status_code == 200
    assert r.headers["content-type"] == OPENAPI_30
    doc = r.json()
    assert doc["openapi"].startswith("3.0.")
    errors = [e.message for e in OpenAPIV30SpecValidator(doc).iter_errors()]
    assert errors == []
    limit = doc["components"]["parameters"]["limit"]
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    items_op = doc["paths"]["/collections/{collectionId}/items"]["get"]
    assert {"$ref": "#/components/parameters/limit"} in items_op["parameters"]
    concrete = doc["paths"]["/collections/control/items"]["get"]  # where GDAL looks
    assert {"$ref": "#/components/parameters/limit"} in concrete["parameters"]
    assert "collectionId" not in {p.get("name") for p in concrete["parameters"]}
    names = {p.get("name") for p in items_op["parameters"]}
    assert {"filter", "filter-lang", "region", "party", "source", "known_at"} <= names


# --- collections --------------------------------------------------------------------------


def test_collections_with_extents(client: TestClient) -> None:
    body = client.get("/collections").json()
    by_id = {c["id"]: c for c in body["collections"]}
    assert list(by_id) == ["regions", "control", "observations"]
    for c in by_id.values():
        assert c["itemType"] == "feature"
        items_link = [x for x in c["links"] if x["rel"] == "items" and x["type"] == GEOJSON]
        assert items_link[0]["href"].endswith(f"/collections/{c['id']}/items")
        assert c["extent"]["spatial"]["bbox"][0][0] < c["extent"]["spatial"]["bbox"][0][2]
    interval = by_id["control"]["extent"]["temporal"]["interval"][0]
    assert interval == ["2024-08-12T00:00:00Z", None]  # the first figure; still open
    assert "temporal" not in by_id["regions"]["extent"]
    assert client.get("/collections/control").json()["id"] == "control"


def test_unknown_collection_and_feature_are_404_problems(client: TestClient) -> None:
    r = client.get("/collections/frontline/items")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "regions, control, observations" in r.json()["detail"]
    for path in ("/collections/control/items/999-kursk", "/collections/control/items/x"):
        assert client.get(path).status_code == 404


# --- items: media type, paging, limit -----------------------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", GEOJSON, "application/json"])
def test_items_are_geojson_whatever_the_accept_header(
    client: TestClient, accept: str | None
) -> None:
    headers = {"accept": accept} if accept else {}
    r = client.get("/collections/control/items", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == GEOJSON
    body = r.json()
    assert_rfc7946(body)
    assert body["numberMatched"] == body["numberReturned"] == 10
    assert all(isinstance(f["id"], str) and f["id"] for f in body["features"])


@pytest.fixture
def small_pages(seeded_engine: Engine) -> Iterator[TestClient]:
    """The service with at most three features a page."""
    settings = Settings(
        database_url=str(seeded_engine.url), items_max_limit=3, items_default_limit=2
    )
    with TestClient(create_app(settings, engine=seeded_engine)) as c:
        yield c


def test_a_large_limit_is_clamped_never_refused(small_pages: TestClient) -> None:
    body = items(small_pages, limit=1000)
    assert body["numberReturned"] == 3
    assert body["numberMatched"] == 10
    assert link_of(body, "next")["type"] == GEOJSON
    doc = small_pages.get("/api").json()
    assert doc["components"]["parameters"]["limit"]["schema"]["maximum"] == 3
    assert items(small_pages)["numberReturned"] == 2  # the default


def test_next_links_keep_every_parameter_and_reach_every_feature(small_pages: TestClient) -> None:
    params = {"datetime": "2024-08-01/2025-05-01", "region": "kursk", "party": "UA", "limit": 1000}
    first = items(small_pages, **params)
    nxt = link_of(first, "next")["href"]
    for key in (
        "datetime=2024-08-01%2F2025-05-01",
        "region=kursk",
        "party=UA",
        "offset=3",
        "limit=3",
    ):
        assert key in nxt
    features = every_item(small_pages, **params)
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids)) == first["numberMatched"] == 9
    last = small_pages.get("/collections/control/items", params={**params, "offset": 6}).json()
    assert "next" not in {link["rel"] for link in last["links"]}
    assert link_of(last, "prev")["href"]


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_a_limit_that_is_not_a_positive_integer_is_a_400(client: TestClient, limit: str) -> None:
    r = client.get("/collections/control/items", params={"limit": limit})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"


def test_an_unknown_parameter_is_a_400_that_lists_the_known_ones(client: TestClient) -> None:
    r = client.get("/collections/control/items", params={"partie": "UA"})
    assert r.status_code == 400
    body = r.json()
    assert "partie" in body["detail"]
    assert "party" in body["known"]
    assert client.get("/collections/regions/items", params={"party": "UA"}).status_code == 400


def test_pages_carry_each_polygon_as_the_python_encoder_writes_it(
    client: TestClient, seeded_engine: Engine
) -> None:
    """A page's polygons come out of the database as GeoJSON text (PostGIS writes it; SQLite's
    WKB is encoded a page at once): the same as each stored polygon encoded alone in Python,
    RFC 7946 rings and 6 decimals, on clipped pieces whose coordinates have more."""
    body = items(client, limit=1000)
    assert_rfc7946(body)
    keys = [
        (f["properties"]["observation_id"], f["properties"]["region"]) for f in body["features"]
    ]
    with Database(seeded_engine).read() as unit:
        stored = unit.pieces.geometries(keys)
    coordinates = shapely.get_coordinates([g for g in stored.values() if g is not None])
    assert (coordinates != coordinates.round(6)).any()  # so that rounding is tested
    for feature, key in zip(body["features"], keys, strict=True):
        alone = orjson.dumps(geo.to_geojson(stored[key]), option=orjson.OPT_SERIALIZE_NUMPY)
        assert feature["geometry"] == json.loads(alone), key


def test_a_page_past_the_end_is_empty_and_still_counts(client: TestClient) -> None:
    everything = items(client, limit=1000)
    past = items(client, offset=everything["numberMatched"] + 5)
    assert past["features"] == []
    assert past["numberMatched"] == everything["numberMatched"]
    last = items(client, offset=everything["numberMatched"] - 1)
    assert last["numberReturned"] == 1
    assert last["numberMatched"] == everything["numberMatched"]
    assert not [link for link in last["links"] if link["rel"] == "next"]


# --- datetime: validity intervals ---------------------------------------------------------

MOMENTS = [
    "2024-08-11",
    "2024-08-12",
    "2024-08-20",
    "2024-08-31",
    "2024-11-23",
    "2025-04-25",
    "2025-04-26",
    "2026-01-01",
]


@pytest.mark.parametrize("at", MOMENTS)
def test_datetime_instant_is_exactly_control_at(client: TestClient, at: str) -> None:
    for region in ("kursk", "belgorod"):
        control = client.get(f"/regions/{region}/control", params={"at": at}).json()
        body = items(client, datetime=at, region=region)
        assert body["numberMatched"] == len(control["features"])
        by_id = {f["properties"]["observation_id"]: f for f in body["features"]}
        for feature in control["features"]:
            twin = by_id[feature["id"]]
            assert twin["properties"] == feature["properties"]
            assert twin["geometry"] == feature["geometry"]


def _meets(props: dict[str, Any], start: dt.datetime | None, end: dt.datetime | None) -> bool:
    """The standard's rule, written out independently of the service's code."""
    begins = parse_moment(props["valid_from"], "x")
    until = parse_moment(props["valid_until"], "x") if props["valid_until"] else None
    return (end is None or begins <= end) and (start is None or until is None or until > start)


@pytest.mark.parametrize(
    "window",
    [
        "2024-08-01/2025-05-01",
        "../2025-04-26",
        "2025-01-01/..",
        "2024-08-21/2024-08-26",
        "2025-04-26T00:00:00Z/2025-04-26T00:00:00Z",
        "../2024-08-11",
        "2025-04-27/..",
    ],
)
def test_datetime_interval_matches_features_whose_validity_meets_it(
    client: TestClient, window: str
) -> None:
    everything = items(client)["features"]
    start, end = parse_window(window)
    expected = {f["id"] for f in everything if _meets(f["properties"], start, end)}
    assert {f["id"] for f in items(client, datetime=window)["features"]} == expected


def test_datetime_interval_examples(client: TestClient) -> None:
    # The 1,263 km² figure was valid 2024-08-20 to 2024-08-27: a window inside it finds it,
    # though no feature *starts* inside the window (what a one-column filter would miss).
    found = items(client, datetime="2024-08-21/2024-08-26", region="kursk")["features"]
    assert [f["properties"]["reported_area_km2"] for f in found] == [1263.0]
    assert items(client, datetime="../2024-08-11")["numberMatched"] == 0
    assert items(client, datetime="2025-04-27/..", region="kursk")["numberMatched"] == 5


@pytest.mark.parametrize("bad", ["yesterday", "../..", "2025-05-01/2024-08-01", "2025-13-01"])
@pytest.mark.parametrize("collection", ["control", "observations", "regions"])
def test_bad_datetime_is_a_400(client: TestClient, bad: str, collection: str) -> None:
    r = client.get(f"/collections/{collection}/items", params={"datetime": bad})
    assert r.status_code == 400
    assert r.json()["parameter"] == "datetime"


def test_regions_are_timeless(client: TestClient) -> None:
    assert items(client, "regions", datetime="1990-01-01")["numberMatched"] == 30


# --- bbox and property filters ------------------------------------------------------------


def test_bbox_keeps_features_whose_polygon_meets_the_box(client: TestClient) -> None:
    illustrated = items(client, datetime="2024-08-31", source="frontline-atlas-illustration")
    polygon = shape(illustrated["features"][0]["geometry"])
    west, south, east, north = polygon.bounds
    inside = items(client, bbox=f"{west},{south},{east},{north}")
    assert {f["properties"]["source"] for f in inside["features"]} == {
        "frontline-atlas-illustration"
    }
    assert all(
        shape(f["geometry"]).intersects(box(west, south, east, north)) for f in inside["features"]
    )
    assert items(client, bbox="30,45,30.1,45.1")["numberMatched"] == 0  # Odesa oblast: nothing
    point = polygon.representative_point()
    small = f"{point.x - 0.01},{point.y - 0.01},{point.x + 0.01},{point.y + 0.01}"
    assert [f["id"] for f in items(client, "regions", bbox=small)["features"]] == ["kursk"]


@pytest.mark.parametrize(
    "bad", ["1,2,3", "a,b,c,d", "36,52,35,51x", "35,52,36,51", "200,50,201,51"]
)
def test_bad_bbox_is_a_400(client: TestClient, bad: str) -> None:
    r = client.get("/collections/control/items", params={"bbox": bad})
    assert r.status_code == 400
    assert r.json()["parameter"] == "bbox"


def test_property_parameters(client: TestClient) -> None:
    assert items(client, region="belgorod")["numberMatched"] == 1
    by_ru = items(client, account="RU")["features"]
    assert {f["properties"]["source"] for f in by_ru} == {"ru-general-staff"}
    assert items(client, status="contested")["numberMatched"] == 1
    assert items(client, source="ua-officials", region="kursk")["numberMatched"] == 1
    r = client.get("/collections/control/items", params={"party": "XX"})
    assert r.status_code == 400
    assert "UA" in r.json()["known"]
    r = client.get("/collections/control/items", params={"region": "rostov"})
    assert r.status_code == 400
    assert "kursk" in r.json()["known"]


# --- Part 3: queryables and CQL2 ----------------------------------------------------------


def test_queryables(client: TestClient) -> None:
    r = client.get("/collections/control/queryables")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/schema+json"
    body = r.json()
    assert body["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert body["$id"].endswith("/collections/control/queryables")
    assert body["type"] == "object"
    props = body["properties"]
    assert props["valid_from"]["format"] == "date-time"
    assert props["geometry"]["format"] == "geometry-multipolygon"
    assert {"region", "party", "status", "source", "account", "area_km2"} <= set(props)


CQL2_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    (
        "party = 'UA' AND status = 'contested'",
        {
            "op": "and",
            "args": [
                {"op": "=", "args": [{"property": "party"}, "UA"]},
                {"op": "=", "args": [{"property": "status"}, "contested"]},
            ],
        },
        {"10-belgorod"},
    ),
    (
        "reported_area_km2 > 1000",
        {"op": ">", "args": [{"property": "reported_area_km2"}, 1000]},
        {"4-kursk", "5-kursk"},
    ),
    (
        "source LIKE 'ua-general%'",
        {"op": "like", "args": [{"property": "source"}, "ua-general%"]},
        {"6-kursk", "9-kursk"},
    ),
    (
        "source LIKE 'ua_officials'",
        {"op": "like", "args": [{"property": "source"}, "ua_officials"]},
        {"8-kursk", "10-belgorod"},
    ),
    (
        "reported_area_km2 BETWEEN 20 AND 900",
        {"op": "between", "args": [{"property": "reported_area_km2"}, 20, 900]},
        {"6-kursk", "8-kursk"},
    ),
    (
        "source IN ('ru-general-staff', 'ua-officials') AND region = 'kursk'",
        {
            "op": "and",
            "args": [
                {
                    "op": "in",
                    "args": [{"property": "source"}, ["ru-general-staff", "ua-officials"]],
                },
                {"op": "=", "args": [{"property": "region"}, "kursk"]},
            ],
        },
        {"7-kursk", "8-kursk"},
    ),
    (
        "area_km2 IS NOT NULL",
        {"op": "not", "args": [{"op": "isNull", "args": [{"property": "area_km2"}]}]},
        {"1-kursk", "2-kursk"},
    ),
    (
        "valid_from >= TIMESTAMP('2025-04-26T00:00:00Z') AND region = 'kursk' "
        "AND reported_area_km2 < 10",
        {
            "op": "and",
            "args": [
                {
                    "op": ">=",
                    "args": [{"property": "valid_from"}, {"timestamp": "2025-04-26T00:00:00Z"}],
                },
                {"op": "=", "args": [{"property": "region"}, "kursk"]},
                {"op": "<", "args": [{"property": "reported_area_km2"}, 10]},
            ],
        },
        {"7-kursk"},
    ),
    (
        "valid_until > DATE('2025-01-01')",
        {"op": ">", "args": [{"property": "valid_until"}, {"date": "2025-01-01"}]},
        {"1-kursk", "6-kursk"},
    ),
    (
        "S_INTERSECTS(geometry, POINT(35.3 51.2)) "
        "AND valid_from < TIMESTAMP('2025-01-01T00:00:00Z')",
        {
            "op": "and",
            "args": [
                {
                    "op": "s_intersects",
                    "args": [
                        {"property": "geometry"},
                        {"type": "Point", "coordinates": [35.3, 51.2]},
                    ],
                },
                {
                    "op": "<",
                    "args": [{"property": "valid_from"}, {"timestamp": "2025-01-01T00:00:00Z"}],
                },
            ],
        },
        {"1-kursk"},
    ),
    (
        "S_WITHIN(geometry, BBOX(34, 50, 37, 52))",
        {"op": "s_within", "args": [{"property": "geometry"}, {"bbox": [34, 50, 37, 52]}]},
        {"1-kursk", "2-kursk"},
    ),
    (
        "S_DISJOINT(geometry, BBOX(30, 45, 31, 46))",
        {"op": "s_disjoint", "args": [{"property": "geometry"}, {"bbox": [30, 45, 31, 46]}]},
        {"1-kursk", "2-kursk"},
    ),
    (
        "valid_until > valid_from AND reported_area_km2 > 900",
        {
            "op": "and",
            "args": [
                {"op": ">", "args": [{"property": "valid_until"}, {"property": "valid_from"}]},
                {"op": ">", "args": [{"property": "reported_area_km2"}, 900]},
            ],
        },
        {"3-kursk", "4-kursk"},
    ),
]


@pytest.mark.parametrize(
    ("text", "as_json", "expected"), CQL2_CASES, ids=[c[0][:40] for c in CQL2_CASES]
)
def test_cql2_text_and_json(
    client: TestClient, text: str, as_json: dict[str, Any], expected: set[str]
) -> None:
    by_text = items(client, filter=text)
    assert {f["id"] for f in by_text["features"]} == expected
    assert by_text["numberMatched"] == len(expected)
    by_json = items(client, filter=json.dumps(as_json), **{"filter-lang": "cql2-json"})
    assert {f["id"] for f in by_json["features"]} == expected


def test_cql2_combines_with_datetime_and_paging(small_pages: TestClient) -> None:
    features = every_item(small_pages, filter="region = 'kursk'", datetime="2025-04-26")
    assert len(features) == 5


@pytest.mark.parametrize(
    ("params", "parameter", "says"),
    [
        ({"filter": "colour = 'red'"}, "filter", "not a queryable"),
        ({"filter": "party = "}, "filter", "not valid CQL2 text"),
        ({"filter": "open('/etc/passwd') = 1"}, "filter", "no functions"),
        ({"filter": "{", "filter-lang": "cql2-json"}, "filter", "not JSON"),
        ({"filter": "party = 'UA'", "filter-lang": "sql"}, "filter-lang", "cql2-text"),
        ({"filter": "party = 'UA'", "filter-crs": "EPSG:3857"}, "filter-crs", "CRS84"),
        ({"bbox": "35,51,36,52", "bbox-crs": "EPSG:3857"}, "bbox-crs", "CRS84"),
    ],
)
def test_bad_filters_are_400s_that_say_why(
    client: TestClient, params: dict[str, str], parameter: str, says: str
) -> None:
    r = client.get("/collections/control/items", params=params)
    assert r.status_code == 400
    body = r.json()
    assert body["parameter"] == parameter
    assert says in body["detail"]


# --- one feature; the observations collection; known_at -----------------------------------


def test_one_feature(client: TestClient) -> None:
    r = client.get("/collections/control/items/2-kursk")
    assert r.status_code == 200
    assert r.headers["content-type"] == GEOJSON
    feature = r.json()
    assert feature["id"] == "2-kursk"
    assert feature["properties"]["area_km2"] == pytest.approx(29.999, abs=0.001)
    assert link_of(feature, "collection")["href"].endswith("/collections/control")
    assert_rfc7946(feature)
    region = client.get("/collections/regions/items/kursk").json()
    assert region["properties"]["area_km2"] == pytest.approx(30_117, abs=1)


def test_observations_collection(client: TestClient) -> None:
    body = items(client, "observations", region="kursk", datetime="2025-04-26")
    by_source = {f["properties"]["source"]: f["properties"] for f in body["features"]}
    assert by_source["ua-officials"]["reported_area_km2"] == 30.0
    assert by_source["frontline-atlas-illustration"]["areas_km2"]["kursk"] == pytest.approx(
        29.999, abs=0.001
    )
    assert by_source["frontline-atlas-illustration"]["regions"] == ["kursk"]
    assert items(client, "observations")["numberMatched"] == 10
    one = client.get("/collections/observations/items/8").json()
    assert one["properties"]["source"] == "ua-officials"
    filtered = items(client, "observations", filter="reported_region = 'belgorod'")
    assert [f["id"] for f in filtered["features"]] == ["10"]


def test_known_at_shows_the_collections_as_they_stood(empty_engine: Engine) -> None:
    from app.seed import seed
    from app.storage.database import Database
    from tests.conftest import DATA_DIR

    db = Database(empty_engine)
    seed(db, DATA_DIR)
    before = dt.datetime.now(dt.UTC)
    with db.write("desk") as w:
        w.revisions.retract(8, "test: the officials' figure withdrawn")
        w.observations.add(
            [
                NewObservation(
                    "ua-officials",
                    "UA",
                    Status.CONTROLLED,
                    Basis.ASSESSED,
                    parse_moment("2025-05-01", "x"),
                    reported_area_km2=25.0,
                    reported_region="kursk",
                )
            ]
        )
    app = create_app(Settings(database_url=str(empty_engine.url)), engine=empty_engine)
    with TestClient(app) as client:
        now = items(client, source="ua-officials", region="kursk")
        assert [f["properties"]["reported_area_km2"] for f in now["features"]] == [25.0]
        then = items(client, source="ua-officials", region="kursk", known_at=before.isoformat())
        assert [f["properties"]["reported_area_km2"] for f in then["features"]] == [30.0]
        assert then["features"][0]["properties"]["valid_until"] is None
        assert items(client, known_at="2020-01-01")["numberMatched"] == 0
        old = client.get(
            "/collections/control/items/8-kursk", params={"known_at": before.isoformat()}
        )
        assert old.status_code == 200
        assert client.get("/collections/control/items/8-kursk").status_code == 404
        obs = items(client, "observations", source="ua-officials", known_at=before.isoformat())
        assert {f["id"] for f in obs["features"]} == {"8", "10"}


def test_schema_describes_every_property(client: TestClient) -> None:
    collection = client.get("/collections/observations").json()
    r = client.get(link_of(collection, "describedby")["href"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/schema+json"
    props = r.json()["properties"]
    assert props["areas_km2"]["type"] == "object"
    assert props["valid_to"]["format"] == "date-time"
    feature = items(client, "observations", limit=1)["features"][0]
    assert set(feature["properties"]) <= set(props)


# --- paging and the read path in SQL -----------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def tied(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_databases: Any,
) -> Iterator[TestClient]:
    """The seed plus observations that tie on (valid_from, observation id): one shape across
    two regions, drawn by two sources on the same day; pages of two features at most."""
    from app.domain.observations import parse_feature
    from app.seed import seed
    from app.storage.database import Database
    from tests.conftest import DATA_DIR, _new_engine, _require_backend

    _require_backend(request.param)
    empty_engine = _new_engine(request.param, tmp_path_factory, pg_databases)
    db = Database(empty_engine)
    db.upgrade()
    seed(db, DATA_DIR)
    across = [[33.9, 50.9], [36.4, 50.9], [36.4, 51.6], [33.9, 51.6], [33.9, 50.9]]  # kursk, sumy
    features = [
        parse_feature(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [across]},
                "properties": {
                    "source": source,
                    "party": "UA",
                    "status": "controlled",
                    "valid_from": "2024-09-01",
                    "illustrative": True,
                    "note": f"tie {n}",
                },
            },
            "tie",
        ).observation
        for n, source in enumerate(["frontline-atlas-illustration", "ua-general-staff"] * 3)
    ]
    with db.write("test") as unit:
        unit.observations.add(features)
    settings = Settings(database_url=str(empty_engine.url), items_max_limit=2)
    with TestClient(create_app(settings, engine=empty_engine)) as c:
        yield c
    empty_engine.dispose()


@pytest.mark.parametrize("collection", ["control", "observations", "regions"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"datetime": "2024-09-01/2025-01-01"},
        {"filter": "party = 'UA'"},
        {"bbox": "33,50,37,52"},
    ],
    ids=["all", "window", "filter", "bbox"],
)
def test_walking_every_page_gives_each_feature_once(
    tied: TestClient, collection: str, params: dict[str, str]
) -> None:
    if collection == "regions" and "filter" in params:
        params = {"filter": "country = 'Ukraine'"}
    walked = every_item(tied, collection, **params)
    ids = [f["id"] for f in walked]
    assert len(ids) == len(set(ids)), "a page repeated a feature"
    first = items(tied, collection, **params)
    assert first["numberMatched"] == len(ids)
    again = [f["id"] for f in every_item(tied, collection, **params)]
    assert again == ids  # the same order every time
    if collection == "control":  # the pages follow (valid_from, observation, region)
        keys = [
            (
                f["properties"]["valid_from"],
                f["properties"]["observation_id"],
                f["properties"]["region"],
            )
            for f in walked
        ]
        assert keys == sorted(keys)
        assert len({k[:2] for k in keys}) < len(keys)  # the data has ties to break


@pytest.mark.parametrize(
    ("text", "as_json", "expected"), CQL2_CASES, ids=[c[0][:40] for c in CQL2_CASES]
)
def test_a_filter_answers_alike_in_sql_and_in_python(
    client: TestClient, text: str, as_json: dict[str, Any], expected: set[str]
) -> None:
    """``observation_id + 0 > 0`` is true of every feature and cannot run in SQL (arithmetic),
    so it sends the whole filter down the Python path: both paths must agree."""
    in_sql = items(client, filter=text, limit=2)
    in_python = items(client, filter=f"({text}) AND observation_id + 0 > 0", limit=2)
    assert in_sql["numberMatched"] == in_python["numberMatched"] == len(expected)
    assert [f["id"] for f in in_sql["features"]] == [f["id"] for f in in_python["features"]]
    assert in_sql["features"] == in_python["features"]


@pytest.mark.parametrize("collection", ["control", "observations", "regions"])
def test_a_streamed_page_is_the_same_document(seeded_engine: Engine, collection: str) -> None:
    """Pages above STREAM_BYTES go out a batch of features at a time; the document, its
    validator and its 304 are those of the page built whole."""
    answers = {}
    for stream_bytes in (1, 10**9):  # stream every page; stream none
        settings = Settings(database_url=str(seeded_engine.url), stream_bytes=stream_bytes)
        with TestClient(create_app(settings, engine=seeded_engine)) as c:
            r = c.get(f"/collections/{collection}/items", params={"limit": 1000})
            assert r.status_code == 200
            assert r.headers["content-type"] == GEOJSON
            again = c.get(
                f"/collections/{collection}/items",
                params={"limit": 1000},
                headers={"If-None-Match": r.headers["etag"]},
            )
            assert again.status_code == 304
            answers[stream_bytes] = r
    streamed, whole = answers[1].json(), answers[10**9].json()
    assert streamed.pop("timeStamp")
    assert whole.pop("timeStamp")
    assert streamed == whole
    assert streamed["numberReturned"] == len(streamed["features"]) > 0
    assert answers[1].headers["etag"] == answers[10**9].headers["etag"]
    # Streamed: sent before its length is known.
    assert "content-length" not in answers[1].headers
    assert "content-length" in answers[10**9].headers
