"""Inputs that used to crash the service or slip into the record (issue 8): each is now a 4xx
problem+json whose detail names the field and the fix, and nothing is written.

Real HTTP through the ASGI app, on an SQLite file and on PostGIS. Every test that could write
compares the table counts before and after.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.params import MAX_OBSERVATION_ID
from app.api.routing import CheckedRoute, query_parameter_names
from app.domain.observations import MAX_VERTICES
from app.settings import Settings
from tests.test_write_api import PROBLEM, Api, feature, make_api

SOURCE = {"slug": "new-desk", "name": "New desk", "kind": "osint"}
PARTY = {"code": "KP", "name": "North Korea", "color": "#024fa2"}


@pytest.fixture
def api(empty_engine: Engine) -> Iterator[Api]:
    yield from make_api(empty_engine)


@contextmanager
def nothing_written(api: Api) -> Iterator[None]:
    before = api.repo.counts()
    yield
    assert api.repo.counts() == before


def problem(r: Any, status: int, *words: str) -> dict[str, Any]:
    """The answer is a problem+json of ``status`` whose detail holds every one of ``words``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("http")
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


# --- observation ids -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "oid",
    [str(MAX_OBSERVATION_ID + 1), "4998272330", "99999999999999999999999", "0", "-1"],
)
def test_an_id_no_observation_can_have_is_a_404_on_every_route(api: Api, oid: str) -> None:
    requests = [
        ("GET", f"/observations/{oid}", {}),
        ("GET", f"/observations/{oid}/history", {}),
        ("POST", f"/observations/{oid}/corrections", {"json": feature(), "headers": api.write}),
        ("DELETE", f"/observations/{oid}?reason=duplicate", {"headers": api.write}),
    ]
    with nothing_written(api):
        for method, url, kw in requests:
            problem(api.client.request(method, url, **kw), 404, f"There is no observation {oid}")
        for url in (
            f"/collections/observations/items/{oid}",
            f"/collections/control/items/{oid}-kursk",
        ):
            problem(api.client.get(url), 404, oid)


def test_the_largest_id_still_reaches_the_database(api: Api) -> None:
    r = api.client.get(f"/observations/{MAX_OBSERVATION_ID}")
    problem(r, 404, f"There is no observation {MAX_OBSERVATION_ID}")
    r = api.post(feature())
    assert r.status_code == 201, r.text
    assert api.client.get(f"/observations/{r.json()['id']}").status_code == 200


def test_the_openapi_documents_the_id_range(client: TestClient) -> None:
    for document in (client.get("/openapi.json").json(), client.get("/api").json()):
        [param] = [
            p
            for p in document["paths"]["/observations/{observation_id}"]["get"]["parameters"]
            if p.get("in") == "path"
        ]
        assert param["schema"]["minimum"] == 1
        assert param["schema"]["maximum"] == MAX_OBSERVATION_ID


# --- NUL characters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "pointer"),
    [
        ({"note": "a\x00b"}, "/properties/note"),
        ({"citation": {"title": "Map\x00"}}, "/properties/citation/title"),
        ({"source": "\x00"}, "/properties/source"),
        ({"weird\x00key": 1}, "/properties/weird\x00key"),
    ],
)
def test_a_nul_in_an_observation_is_a_400_with_its_pointer(
    api: Api, properties: dict[str, Any], pointer: str
) -> None:
    body = feature(**properties)
    collection = {"type": "FeatureCollection", "features": [feature(), body]}
    with nothing_written(api):
        r = problem(api.post(body), 400, "NUL", pointer, "Remove it")
        assert r["pointer"] == pointer
        problem(api.post(collection), 400, f"/features/1{pointer}")
        problem(
            api.client.post("/observations/1/corrections", json=body, headers=api.write),
            400,
            pointer,
        )


def test_a_nul_in_an_admin_body_is_a_400(api: Api) -> None:
    with nothing_written(api):
        r = api.client.post("/sources", json={**SOURCE, "name": "a\x00b"}, headers=api.admin)
        problem(r, 400, "NUL", "/name")
        r = api.client.post("/parties", json={**PARTY, "name": "\x00"}, headers=api.admin)
        problem(r, 400, "/name")
        region = {
            "type": "Feature",
            "geometry": feature()["geometry"],
            "properties": {"name": "Kursk\x00", "country": "Russia", "country_code": "RU"},
        }
        r = api.client.put("/regions/new-region", json=region, headers=api.admin)
        problem(r, 400, "/properties/name")
        r = api.client.request(
            "DELETE", "/observations/1", json={"reason": "dup\x00"}, headers=api.write
        )
        problem(r, 400, "/reason")
    assert api.client.get("/observations/1").json()["properties"]["current"] is True


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/regions/a%00b", "slug"),
        ("/regions/a%00b/control", "slug"),
        ("/sources/x%00", "slug"),
        ("/collections/con%00trol/items", "collectionId"),
        ("/regions/kursk/control?party=U%00A", "party"),
        ("/regions/kursk/control?at=2025-01-01%00", "at"),
        ("/collections/control/items?filter=party%3D%27U%00A%27", "filter"),
        ("/exports/observations?source=a%00", "source"),
    ],
)
def test_a_nul_in_a_path_or_query_value_is_a_400_naming_it(
    client: TestClient, url: str, name: str
) -> None:
    body = problem(client.get(url), 400, "NUL", repr(name))
    assert body["parameter"] == name


def test_a_nul_in_a_retraction_reason_retracts_nothing(api: Api) -> None:
    with nothing_written(api):
        r = api.client.delete("/observations/1?reason=dup%00licate", headers=api.write)
        problem(r, 400, "'reason'", "NUL")
    assert api.client.get("/observations/1").json()["properties"]["current"] is True


# --- CQL2 arithmetic -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cql",
    [
        "area_km2 / 0 > 1",
        "area_km2 / 0.0 > 1",
        "area_km2 / (area_km2 - area_km2) > 1",  # zero only when evaluated
    ],
)
def test_a_filter_that_divides_by_zero_is_a_400(client: TestClient, cql: str) -> None:
    r = client.get("/collections/control/items", params={"filter": cql})
    body = problem(r, 400, "'filter' divides by zero", "compare instead")
    assert body["parameter"] == "filter"
    ok = client.get("/collections/control/items", params={"filter": "area_km2 / 2 > 1"})
    assert ok.status_code == 200
    assert ok.json()["numberMatched"] > 0


# --- bounds on an observation --------------------------------------------------------------------


def ring(n: int) -> list[list[float]]:
    """A closed ring of ``n`` positions (``n - 1`` corners), a small circle in Kursk oblast."""
    angles = [2 * math.pi * i / (n - 1) for i in range(n - 1)]
    corners = [[35.3 + 0.05 * math.cos(a), 51.2 + 0.05 * math.sin(a)] for a in angles]
    return [*corners, corners[0]]


def polygon(n: int) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring(n)]}


def test_the_vertex_cap_is_a_setting_and_says_the_limit(empty_engine: Engine) -> None:
    assert Settings().max_vertices_per_observation == MAX_VERTICES == 200_000
    for api in make_api(empty_engine, max_vertices_per_observation=1000):
        with nothing_written(api):
            r = api.post(feature(geometry=polygon(1001)))
            body = problem(r, 422, "1,001 positions", "limit is 1,000", "Simplify")
            assert body["pointer"] == "/geometry/coordinates"
            assert body["limit"] == 1000
            two = {"type": "MultiPolygon", "coordinates": [[ring(501)], [ring(500)]]}
            problem(api.post(feature(geometry=two)), 422, "1,001 positions")
        assert api.post(feature(geometry=polygon(1000))).status_code == 201


def test_the_default_vertex_cap_refuses_a_huge_polygon(api: Api) -> None:
    with nothing_written(api):
        r = api.post(feature(geometry=polygon(MAX_VERTICES + 1)))
        problem(r, 422, f"limit is {MAX_VERTICES:,}", "MAX_VERTICES_PER_OBSERVATION")


BOUNDS = [
    ("area", {"reported_area_km2": 1e308, "reported_region": "kursk"}, "20000000"),
    ("negative area", {"reported_area_km2": -1, "reported_region": "kursk"}, "0"),
    ("note", {"note": "x" * 10_001}, "at most 10000 characters"),
    ("title", {"citation": {"title": "x" * 1_001}}, "at most 1000 characters"),
    ("publisher", {"citation": {"publisher": "x" * 1_001}}, "at most 1000 characters"),
    ("url", {"citation": {"url": "https://x.org/" + "x" * 2_000}}, "at most 2000 characters"),
    ("source", {"source": "x" * 65}, "at most 64 characters"),
    ("valid_from", {"valid_from": "0001-01-01"}, "from 1900-01-01"),
    ("far future", {"valid_from": "9999-12-31T23:00:00-05:00"}, "is in the future"),
    ("valid_to", {"valid_to": "2150-01-01"}, "before 2100-01-01"),
    ("published_at", {"citation": {"published_at": "1800-01-01"}}, "from 1900-01-01"),
]


def test_numbers_texts_and_moments_have_bounds_that_are_stated(api: Api) -> None:
    with nothing_written(api):
        for name, properties, bound in BOUNDS:
            r = api.post(feature(**properties))
            body = problem(r, 422, bound)
            field = next(iter(properties))
            assert field in body["detail"], name
            assert body["pointer"] == "/properties"
    at_the_bounds = feature(
        note="x" * 10_000,
        valid_from="1900-01-01",
        valid_to="2099-12-31",
        reported_area_km2=20_000_000,
        reported_region="kursk",
        citation={"title": "t" * 1_000, "url": "https://x.org/" + "x" * 1_986},
    )
    assert api.post(at_the_bounds).status_code == 201


def test_query_moments_off_the_calendar_are_a_400(client: TestClient) -> None:
    for url in (
        "/regions/kursk/control?at=9999-12-31T23:00:00-05:00",
        "/regions/kursk/control?at=0001-01-01T00:00:00%2B05:00",
        "/collections/control/items?datetime=0001-01-01T00:00:00%2B05:00/..",
    ):
        problem(client.get(url), 400, "off the calendar")


# --- media types ---------------------------------------------------------------------------------

NOT_JSON = [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_a_body_that_is_not_sent_as_json_is_a_415(api: Api, content_type: str | None) -> None:
    import orjson

    def send(method: str, url: str, body: Any, token: dict[str, str]) -> Any:
        headers = {**token, **({"Content-Type": content_type} if content_type else {})}
        return api.client.request(method, url, content=orjson.dumps(body), headers=headers)

    region = {"type": "Feature", "geometry": feature()["geometry"], "properties": {}}
    with nothing_written(api):
        for method, url, body, token in [
            ("POST", "/observations", feature(), api.write),
            ("POST", "/observations/1/corrections", feature(), api.write),
            ("DELETE", "/observations/1", {"reason": "duplicate"}, api.write),
            ("PUT", "/regions/kursk", region, api.admin),
            ("POST", "/sources", SOURCE, api.admin),
            ("POST", "/parties", PARTY, api.admin),
        ]:
            r = send(method, url, body, token)
            got = f"'Content-Type: {content_type}'" if content_type else "no Content-Type"
            body = problem(r, 415, got, "application/json", "application/geo+json")
            assert body["accepted"] == ["application/json", "application/geo+json"]
    assert api.client.get("/observations/1").json()["properties"]["current"] is True


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/geo+json", "Application/JSON"]
)
def test_json_and_geojson_with_parameters_are_read(api: Api, content_type: str) -> None:
    import orjson

    headers = {**api.write, "Content-Type": content_type}
    r = api.client.post("/observations", content=orjson.dumps(feature()), headers=headers)
    assert r.status_code == 201, r.text
    headers = {**api.admin, "Content-Type": content_type}
    r = api.client.post("/sources", content=orjson.dumps(SOURCE), headers=headers)
    assert r.status_code == 201, r.text


# --- unknown query parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "known"),
    [
        ("/regions/kursk/control?foo=bar", ["account", "at", "known_at", "party", "source"]),
        ("/regions?foo=bar", ["geometry", "known_at"]),
        ("/regions/kursk/area?party=UA&foo=1", ["format", "from", "kind", "party", "to"]),
        ("/regions/kursk/change?party=UA&from=2024-09-01&to=2025-01-01&foo=1", ["from", "to"]),
        ("/parties?foo=bar", []),
        ("/healthz?foo=bar", []),
        ("/observations/1?foo=bar", ["known_at"]),
        ("/exports/observations?foo=bar", ["format", "geometry", "region", "revisions"]),
        ("/collections?foo=bar", ["f"]),
        ("/collections/control/items?foo=bar", ["bbox", "datetime", "filter", "limit", "party"]),
        ("/?foo=bar", ["f"]),
    ],
)
def test_an_unknown_parameter_is_a_400_listing_the_known_ones(
    client: TestClient, url: str, known: list[str]
) -> None:
    body = problem(client.get(url), 400, "Unknown parameter 'foo'")
    assert body["parameter"] == "foo"
    assert set(known) <= set(body["known"])
    if not known:
        assert "no query parameters" in body["detail"]


def test_an_unknown_parameter_on_a_write_writes_nothing(api: Api) -> None:
    with nothing_written(api):
        r = api.client.post("/observations?dry_run=1", json=feature(), headers=api.write)
        assert set(problem(r, 400, "'dry_run'")["known"]) == {"repair"}
        r = api.client.post("/sources?x=1", json=SOURCE, headers=api.admin)
        problem(r, 400, "'x'", "no query parameters")


def test_a_token_in_the_query_string_is_told_where_it_goes(client: TestClient) -> None:
    r = client.get("/regions?access_token=secret")
    problem(r, 400, "access_token", "Authorization: Bearer")  # see app.api.middleware


def test_a_collection_refuses_the_property_parameters_it_has_no_property_for(
    client: TestClient,
) -> None:
    body = problem(client.get("/collections/regions/items?party=UA"), 400, "'party'", "'regions'")
    assert "party" not in body["known"]
    assert "region" in body["known"]
    assert client.get("/collections/control/items?party=UA").status_code == 200


def test_every_route_takes_exactly_the_query_parameters_it_documents(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    routes = [
        route
        for entry in client.app.routes  # type: ignore[attr-defined]
        for route in getattr(getattr(entry, "original_router", None), "routes", [entry])
        if isinstance(route, APIRoute)
    ]
    assert len(routes) > 20
    for route in routes:
        assert isinstance(route, CheckedRoute), route.path
        if not route.include_in_schema:
            continue
        for method in route.methods:
            operation = document["paths"][route.path_format][method.lower()]
            documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            assert query_parameter_names(route) == documented, route.path
    as_30 = client.get("/api").json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names_31 = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            names_30 = {
                p["$ref"].rsplit("/", 1)[-1] if "$ref" in p else p["name"]
                for p in as_30["paths"][path][method].get("parameters", [])
                if "$ref" in p or p["in"] == "query"
            }
            assert names_30 == names_31, (path, method)


def test_every_body_is_documented_as_json_and_geojson_or_json(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                media = set(operation["requestBody"]["content"])
                assert media <= {"application/json", "application/geo+json"}, (path, method)
                assert "application/json" in media, (path, method)


# --- the app's own errors are problem+json -------------------------------------------------------


def test_unknown_paths_wrong_methods_and_validation_errors_are_problems(api: Api) -> None:
    problem(api.client.get("/no/such/path"), 404, "/no/such/path")
    r = api.client.patch("/regions")
    body = problem(r, 405, "PATCH", "GET")
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"  # HEAD like GET, OPTIONS on every path
    assert body["allowed"] == ["GET", "HEAD", "OPTIONS"]
    with nothing_written(api):
        r = api.client.post("/sources", json={"slug": "x"}, headers=api.admin)
        body = problem(r, 422, "name", "kind")
        r = api.client.post("/parties", json={**PARTY, "color": "red"}, headers=api.admin)
        problem(r, 422, "color")
    problem(api.client.get("/regions?geometry=maybe"), 400, "geometry")
    problem(api.client.get("/observations/abc"), 400, "observation_id")


# --- empty values --------------------------------------------------------------------------------


def test_an_empty_query_value_means_the_default(client: TestClient) -> None:
    assert client.get("/?f=").headers["content-type"] == "application/json"
    r = client.get("/collections/control/items?f=&limit=&filter=&bbox=&datetime=")
    assert r.status_code == 200, r.text
    assert r.json()["numberReturned"] == min(100, r.json()["numberMatched"])
    r = client.get("/regions?geometry=")
    assert r.status_code == 200
    assert r.json()["features"][0]["geometry"] is not None
    r = client.get("/exports/observations?geometry=&format=")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "geometry" in r.text.splitlines()[0]
    problem(client.get("/regions/kursk/area?party="), 400, "party")  # required stays required


def test_a_null_body_on_a_retraction_is_no_body(api: Api) -> None:
    null = {**api.write, "Content-Type": "application/json"}
    r = api.client.request("DELETE", "/observations/1", content=b"null", headers=null)
    problem(r, 400, "needs a reason")
    r = api.client.request("DELETE", "/observations/1?reason=dup", content=b"null", headers=null)
    assert r.status_code == 200, r.text
    assert r.json()["retraction_reason"] == "dup"


def test_the_documents_declare_what_f_takes(client: TestClient) -> None:
    for document in (client.get("/openapi.json").json(), client.get("/api").json()):
        [f] = [
            p
            for p in document["paths"]["/collections"]["get"]["parameters"]
            if p.get("name") == "f"
        ]
        text = str(f["schema"])
        for value in ("json", "geojson", "html"):
            assert f"'{value}'" in text
    problem(client.get("/collections?f=xml"), 400, "'json'", "'html'")


def test_reference_data_has_bounds_too(api: Api) -> None:
    with nothing_written(api):
        for body, words in [
            ({**SOURCE, "name": "x" * 1_001}, ("name", "at most 1000 characters")),
            ({**SOURCE, "description": "x" * 10_001}, ("description", "10000 characters")),
            ({**SOURCE, "url": "x" * 2_001}, ("url", "at most 2000 characters")),
        ]:
            problem(api.client.post("/sources", json=body, headers=api.admin), 422, *words)


def test_the_collection_takes_and_checks_the_items_parameters_gdal_passes(
    client: TestClient,
) -> None:
    r = client.get("/collections/control?datetime=2025-04-26&region=kursk")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "control"
    problem(client.get("/collections/control?foo=1"), 400, "'foo'")
    problem(client.get("/collections/regions?party=UA"), 400, "'party'", "'regions'")


def test_a_long_reason_in_a_body_retracts_nothing(api: Api) -> None:
    with nothing_written(api):
        body = {"reason": "x" * 2_001}
        r = api.client.request("DELETE", "/observations/1", json=body, headers=api.write)
        problem(r, 400, "2,001 characters", "at most 2,000")
    assert api.client.get("/observations/1").json()["properties"]["current"] is True


def test_a_nul_in_a_header_is_a_400(api: Api) -> None:
    headers = {**api.write, "Idempotency-Key": "key\x00"}
    with nothing_written(api):
        problem(api.post(feature(), headers=headers), 400, "'idempotency-key'", "NUL")
