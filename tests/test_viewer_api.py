"""The server side of the viewer: pages and assets served from the package (no CDN), the
content negotiation of ``/``, claims' ages and ``max_age``, and QGIS's open-start datetime."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.app import create_app
from app.settings import Settings

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/map"])
def test_pages_load_every_asset_from_the_service_itself(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|svg|png))"', page.text)
    assert assets, "the page loads scripts and styles"
    for url in assets:
        assert url.startswith("/static/"), f"{url} is not served by the service"
        got = client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 100
    assert "cdn." not in page.text
    assert "unpkg" not in page.text
    assert "googleapis" not in page.text


def test_vendored_libraries_keep_their_licences(client: TestClient) -> None:
    for folder in (
        "swagger-ui-dist-5.35.0/LICENSE",
        "redoc-2.5.4/LICENSE",
        "maplibre-gl-5.17.0/LICENSE.txt",
        "leaflet-1.9.4/LICENSE",
    ):
        assert client.get(f"/static/vendor/{folder}").status_code == 200


def test_the_root_is_the_map_for_browsers_and_json_for_programs(client: TestClient) -> None:
    viewer = client.get("/", headers={"accept": BROWSER})
    assert 'id="map"' in viewer.text
    landing = client.get("/", params={"f": "html"}, headers={"accept": BROWSER})
    assert 'id="map"' not in landing.text
    assert "/conformance" in landing.text
    for accept in (None, "*/*", "application/json"):
        body = client.get("/", headers={"accept": accept} if accept else {}).json()
        assert any(link["href"].endswith("/map") for link in body["links"])


def test_control_says_each_claims_age(client: TestClient) -> None:
    body = client.get("/regions/kursk/control", params={"at": "2024-08-31"}).json()
    ages = {f["properties"]["source"]: f["properties"]["age_days"] for f in body["features"]}
    # 2024-08-27T00:00Z to the end of 2024-08-31: 5 days
    assert ages == {"ua-commander-in-chief": 5.0, "frontline-atlas-illustration": 5.0}


@pytest.mark.parametrize("max_age", ["P30D", "30", "P4W"])
def test_max_age_leaves_out_stale_claims(client: TestClient, max_age: str) -> None:
    at = {"at": "2025-05-10"}
    everything = client.get("/regions/kursk/control", params=at).json()["features"]
    fresh = client.get("/regions/kursk/control", params={**at, "max_age": max_age}).json()
    sources = {f["properties"]["source"] for f in everything}
    assert "ua-commander-in-chief" in sources  # August 2024's 1,294 km2, still in force
    kept = {f["properties"]["source"] for f in fresh["features"]}
    assert kept == {
        "ua-officials",
        "ru-general-staff",
        "ua-general-staff",
        "frontline-atlas-illustration",
    }
    assert all(f["properties"]["age_days"] <= 30 for f in fresh["features"])
    claims = client.get(
        "/regions/kursk/claims", params={**at, "party": "UA", "max_age": max_age}
    ).json()
    assert {c["source"] for c in claims["claims"]} == kept
    assert claims["spread"]["spread_km2"] == 30.0  # 30 (Kyiv) against 0 (Moscow), not 1,294
    items = client.get(
        "/collections/control/items",
        params={"datetime": "2025-05-10", "region": "kursk", "max_age": max_age},
    ).json()
    assert {f["properties"]["source"] for f in items["features"]} == kept


def test_a_bad_max_age_is_a_problem_that_says_the_form(client: TestClient) -> None:
    r = client.get("/regions/kursk/control", params={"max_age": "a month"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert "P30D" in r.json()["detail"]


def test_qgis_open_start_year_0000_is_accepted(client: TestClient) -> None:
    qgis = client.get(
        "/collections/control/items",
        params={"datetime": "0000-01-01T00:00:00Z/2024-09-15T23:59:59Z"},
    )
    assert qgis.status_code == 200, qgis.text
    open_start = client.get("/collections/control/items", params={"datetime": "../2024-09-15"})
    ids = [f["id"] for f in qgis.json()["features"]]
    assert ids == [f["id"] for f in open_start.json()["features"]]
    assert len(ids) == 4  # three reported figures and the August illustration


def test_a_configured_base_map_reaches_the_viewer(seeded_engine: Engine) -> None:
    url = "https://tiles.example/{z}/{x}/{y}.png"
    settings = Settings(
        database_url=str(seeded_engine.url),
        basemap_url=url,
        basemap_attribution="© Example </script> contributors",
    )
    with TestClient(create_app(settings, engine=seeded_engine)) as client:
        page = client.get("/map").text
    config = re.search(r'<script id="atlas-config" type="application/json">(.*?)</script>', page)
    assert config is not None
    assert json.loads(config.group(1)) == {
        "basemap_url": url,
        "basemap_attribution": "© Example </script> contributors",
    }
