"""The OGC API - Features read by the clients people use, against the service on a real port
(uvicorn), on SQLite and on PostGIS: GDAL's OAPIF driver (Debian's ``ogrinfo``/``ogr2ogr``),
OWSLib's ``ogcapi.features`` and ``geopandas.read_file`` (pyogrio, with its own GDAL).

Each test checks what came back (every feature, by id, and known areas from the seed), not only
that the call succeeded. A missing tool fails the test with how to install it; nothing is skipped.

What the clients were seen to do (GDAL 3.6.2 from Debian, pyogrio's GDAL 3.12):

- Query parameters in the connection string are kept, but only on the landing page or collection
  URL: ``OAPIF:{url}/collections/control?datetime=2025-04-26&region=kursk``. GDAL appends them
  to every request it makes (3.12 also to ``/`` and ``/api``, which ignore them) and follows the
  ``next`` links, which keep them. An ``…/items?…`` URL does not open at all.
- Neither version sends ``filter``: GDAL speaks only the draft ``cql-text``, found through a
  ``filter-lang`` enum in the API definition, not CQL2. A ``-where`` on a property the API
  definition lists as a parameter (``source = '…'``) becomes that parameter; the rest is
  evaluated by GDAL itself.
- A ``-where`` comparison on any DateTime field (``valid_from = '2025/04/26 23:59:59'``, ``>=``,
  ``<=``) is sent as ``datetime=`` and, when that is all the filter says, not evaluated again
  by GDAL: here it therefore means "in force at", not "valid_from equal to" (tested below).
  A date without a time (``valid_from >= '2025-01-01'``) is sent as ``datetime=2025-01-01T/..``,
  which is not RFC 3339, so the service answers 400 and GDAL fails: give a full time.
- Paging: GDAL 3.6 asks ``limit=10`` unless ``-oo PAGE_SIZE=N``; GDAL 3.12 asks ``limit=1000``
  (it looks for the limit's maximum under the literal path ``/collections/control/items`` of
  the API definition, not under ``/collections/{collectionId}/items``). Either is clamped to
  the service's maximum, and both follow ``next`` to the end.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import geopandas
import httpx
import pytest
from owslib.ogcapi.features import Features
from shapely.geometry import shape

from app.domain import geometry as geo
from tests.conftest import LiveServer, serve

GDAL_INSTALL = "install Debian's gdal-bin (apt-get install gdal-bin; .ci/run does)"
ILLUSTRATION = "frontline-atlas-illustration"
COLLECTIONS = ("regions", "control", "observations")


# --- helpers ----------------------------------------------------------------------------------


def _gdal(tool: str, *args: str) -> str:
    """Run ``ogrinfo`` or ``ogr2ogr``; its stdout. Fails, saying why, if it is missing or fails."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not on PATH: {GDAL_INSTALL}")
    done = subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{tool} {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def _gdal_geojson(source: str, layer: str, *options: str) -> list[dict[str, Any]]:
    """Every feature GDAL reads from the layer, through ``ogr2ogr -f GeoJSON /vsistdout/``."""
    out = _gdal("ogr2ogr", "-f", "GeoJSON", "/vsistdout/", *options, source, layer)
    features: list[dict[str, Any]] = json.loads(out)["features"]
    return features


def _items(live: LiveServer, collection: str, **params: Any) -> dict[str, Any]:
    """One page of items straight from the HTTP API."""
    r = httpx.get(f"{live.url}/collections/{collection}/items", params=params, timeout=30)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _all_ids(live: LiveServer, collection: str, **params: Any) -> list[str]:
    """The ids of every feature that matches, from the HTTP API on one page."""
    body = _items(live, collection, limit=1000, **params)
    assert body["numberReturned"] == body["numberMatched"] <= 1000
    return [f["id"] for f in body["features"]]


def _ids(features: list[dict[str, Any]]) -> list[str]:
    return [str(f["properties"]["id"]) for f in features]  # observations' ids are integers


def _kursk_control(live: LiveServer, at: str) -> dict[int, dict[str, Any]]:
    """``/regions/kursk/control?at=…``: properties by observation id."""
    r = httpx.get(f"{live.url}/regions/kursk/control", params={"at": at}, timeout=30)
    assert r.status_code == 200, r.text
    return {f["properties"]["observation_id"]: f["properties"] for f in r.json()["features"]}


def _by_source(features: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["properties"]["source"]: f for f in features}


@pytest.fixture(scope="module")
def small_pages(live_server: LiveServer) -> Iterator[LiveServer]:
    """The same seeded database served with at most 3 features a page."""
    with serve(live_server.engine, live_server.backend, items_max_limit=3) as live:
        yield live


# --- GDAL (Debian's ogrinfo and ogr2ogr) ------------------------------------------------------


def test_ogrinfo_lists_the_collections_and_summarises_control(live_server: LiveServer) -> None:
    landing = _gdal("ogrinfo", "-ro", f"OAPIF:{live_server.url}")
    layers = dict(re.findall(r"^\d+: (\S+) \(title: [^)]*\) \(([^)]*)\)$", landing, re.M))
    assert layers == dict.fromkeys(COLLECTIONS, "Multi Polygon")

    summary = _gdal(
        "ogrinfo", "-ro", "-so", f"OAPIF:{live_server.url}/collections/control", "control"
    )
    count = re.search(r"^Feature Count: (\d+)$", summary, re.M)
    assert count is not None, summary
    assert int(count.group(1)) == _items(live_server, "control", limit=1)["numberMatched"] == 10
    assert "Layer name: control" in summary
    assert "TITLE=Control pieces" in summary
    assert "TEMPORAL_INTERVAL_MIN=2024-08-12T00:00:00Z" in summary
    assert 'ID["EPSG",4326]' in summary or 'ID["OGC","CRS84"]' in summary  # 3.6 or later
    for field in (
        "id: String",
        "observation_id: Integer",
        "region: String",
        "source: String",
        "valid_from: DateTime",
        "valid_until: DateTime",
        "area_km2: Real",
        "reported_area_km2: Real",
        "illustrative: Integer(Boolean)",
    ):
        assert f"\n{field} " in summary, field


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_gdal_reads_every_feature_three_at_a_time(live_server: LiveServer, collection: str) -> None:
    expected = _all_ids(live_server, collection)
    assert len(expected) > 3  # more than one page
    got = _gdal_geojson(
        f"OAPIF:{live_server.url}/collections/{collection}", collection, "-oo", "PAGE_SIZE=3"
    )
    assert _ids(got) == expected  # every feature, once, in the service's order


def test_gdal_limit_is_clamped_to_the_maximum_not_refused(small_pages: LiveServer) -> None:
    page = _items(small_pages, "control", limit=1000)
    assert page["numberReturned"] == 3
    assert page["numberMatched"] == 10
    assert any(link["rel"] == "next" for link in page["links"])

    # The three collections through the landing page at GDAL's own page size (10 in GDAL 3.6,
    # 1000 from 3.8): 30 regions, 10 pieces and 10 observations come back in pages of 3.
    listing = _gdal("ogrinfo", "-ro", "-al", "-q", f"OAPIF:{small_pages.url}", *COLLECTIONS)
    ids = re.findall(r"^  id \(\w+\) = (\S+)$", listing, re.M)
    counts = {c: _items(small_pages, c, limit=1)["numberMatched"] for c in COLLECTIONS}
    assert counts == {"regions": 30, "control": 10, "observations": 10}
    assert len(ids) == len(set(ids)) == sum(counts.values())
    assert {"kursk", "belgorod", "8-kursk", "1-kursk", "8"} <= set(ids)

    # GDAL asking for 1000 a page, as QGIS does.
    got = _gdal_geojson(
        f"OAPIF:{small_pages.url}/collections/control", "control", "-oo", "PAGE_SIZE=1000"
    )
    assert len(got) == 10
    assert len(set(_ids(got))) == 10


def test_gdal_keeps_the_datetime_filter_of_the_connection_url(live_server: LiveServer) -> None:
    url = f"OAPIF:{live_server.url}/collections/control"
    got = _gdal_geojson(f"{url}?datetime=2025-04-26&region=kursk", "control", "-oo", "PAGE_SIZE=2")
    expected = _kursk_control(live_server, "2025-04-26")
    assert sorted(f["properties"]["observation_id"] for f in got) == sorted(expected)
    assert len(got) == 5
    sources = _by_source(got)
    drawn = sources[ILLUSTRATION]
    assert drawn["properties"]["area_km2"] == pytest.approx(29.999, abs=1e-3)
    assert geo.geodesic_area_km2(shape(drawn["geometry"])) == pytest.approx(29.999, abs=0.01)
    assert sources["ua-officials"]["properties"]["reported_area_km2"] == 30
    assert sources["ru-general-staff"]["properties"]["reported_area_km2"] == 0

    [august] = _gdal_geojson(f"{url}?datetime=2024-08-31&source={ILLUSTRATION}", "control")
    assert august["properties"]["id"] == "1-kursk"
    assert august["properties"]["area_km2"] == pytest.approx(1299.995, abs=1e-3)
    assert geo.geodesic_area_km2(shape(august["geometry"])) == pytest.approx(1299.995, abs=0.01)


def test_gdal_where_on_a_datetime_field_is_sent_as_datetime(live_server: LiveServer) -> None:
    """GDAL turns ``-where "valid_from = T"`` into ``datetime=T`` and trusts the answer, so
    through GDAL it selects what is in force at T (see the module docstring)."""
    got = _gdal_geojson(
        f"OAPIF:{live_server.url}/collections/control",
        "control",
        "-where",
        "valid_from = '2025/04/26 23:59:59'",
    )
    assert _ids(got) == _all_ids(live_server, "control", datetime="2025-04-26T23:59:59Z")
    assert "5-kursk" in _ids(got)  # in force since 2024-08-27
    assert any(f["properties"]["valid_from"] < "2025" for f in got)


# --- OWSLib -----------------------------------------------------------------------------------


def test_owslib_landing_conformance_and_collections(live_server: LiveServer) -> None:
    api = Features(live_server.url)
    rels = {(link["rel"], link["type"]) for link in api.links}
    assert ("service-desc", "application/vnd.oai.openapi+json;version=3.0") in rels
    assert ("conformance", "application/json") in rels
    assert ("data", "application/json") in rels

    conforms = api.conformance()["conformsTo"]
    for cls in ("core", "geojson", "oas30", "html"):
        assert f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{cls}" in conforms
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter" in conforms
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in conforms

    collections = api.collections()["collections"]
    assert [c["id"] for c in collections] == list(COLLECTIONS)
    assert all(c["itemType"] == "feature" for c in collections)

    control = api.collection("control")
    assert control["id"] == "control"
    assert control["extent"]["temporal"]["interval"] == [["2024-08-12T00:00:00Z", None]]
    [[min_lon, min_lat, max_lon, max_lat]] = control["extent"]["spatial"]["bbox"]
    assert 34.9 < min_lon < max_lon < 35.7  # the Kursk salient around Sudzha
    assert 51.0 < min_lat < max_lat < 51.5

    queryables = api.collection_queryables("control")["properties"]
    for name in ("region", "party", "status", "source", "account", "valid_from", "area_km2"):
        assert name in queryables, name
    assert queryables["geometry"]["x-ogc-role"] == "primary-geometry"
    assert queryables["valid_from"]["format"] == "date-time"


def test_owslib_items_paged_filtered_and_one_by_one(live_server: LiveServer) -> None:
    api = Features(live_server.url)
    expected = _all_ids(live_server, "control")
    pages, offset = [], 0
    while True:
        page = api.collection_items("control", limit=3, offset=offset)
        assert page["numberMatched"] == len(expected)
        pages += [f["id"] for f in page["features"]]
        offset += 3
        if not any(link["rel"] == "next" for link in page["links"]):
            break
    assert pages == expected
    assert offset == 12  # four pages of at most 3

    kursk = api.collection_items("control", datetime_="2025-04-26", region="kursk")
    at = _kursk_control(live_server, "2025-04-26")
    assert kursk["numberMatched"] == kursk["numberReturned"] == len(at) == 5
    assert sorted(f["properties"]["observation_id"] for f in kursk["features"]) == sorted(at)
    sources = _by_source(kursk["features"])
    assert sources[ILLUSTRATION]["properties"]["area_km2"] == pytest.approx(29.999, abs=1e-3)
    assert sources["ua-officials"]["properties"]["reported_area_km2"] == 30

    large = api.collection_items("control", filter="party = 'UA' AND area_km2 > 1000")
    assert [f["id"] for f in large["features"]] == ["1-kursk"]
    assert large["features"][0]["properties"]["area_km2"] == pytest.approx(1299.995, abs=1e-3)

    one = api.collection_item("control", "8-kursk")
    assert one["id"] == "8-kursk"
    assert one["properties"]["source"] == "ua-officials"
    assert one["properties"]["reported_area_km2"] == 30


# --- geopandas (pyogrio) ----------------------------------------------------------------------

# geopandas.read_file runs in a child process, as a researcher's Python would. In this process
# one run hung for good: GDAL (inside pyogrio) waited on a request the test server, a thread of
# this same process, never read. That fits a GDAL call made without releasing the GIL (pyogrio
# releases it around many calls, not all). It did not happen again in later runs, but a client
# in another process cannot stall the server.
READ_FILE = """
import pickle, sys
import geopandas, pyogrio
if "OAPIF" not in pyogrio.list_drivers():
    sys.exit(f"pyogrio's GDAL {pyogrio.__gdal_version_string__} has no OAPIF driver")
kwargs = {"layer": sys.argv[2]} if len(sys.argv) > 2 else {}
sys.stdout.buffer.write(pickle.dumps(geopandas.read_file(sys.argv[1], **kwargs)))
"""


def _read_file(source: str, layer: str | None = None) -> geopandas.GeoDataFrame:
    """``geopandas.read_file(source, layer=layer)``, run in a child process."""
    args = [sys.executable, "-c", READ_FILE, source, *([layer] if layer else [])]
    done = subprocess.run(args, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, f"geopandas.read_file({source!r}) failed:\n{done.stderr.decode()}"
    df: geopandas.GeoDataFrame = pickle.loads(done.stdout)  # our own child's output
    return df


def test_geopandas_reads_control_as_of_a_date(live_server: LiveServer) -> None:
    df = _read_file(
        f"OAPIF:{live_server.url}/collections/control?datetime=2025-04-26&region=kursk", "control"
    )
    expected = _kursk_control(live_server, "2025-04-26")
    assert len(df) == 5
    assert sorted(df["observation_id"]) == sorted(expected)
    assert set(df["region"]) == {"kursk"}
    for row in df.itertuples():
        want = expected[row.observation_id]
        for column in ("area_km2", "reported_area_km2"):
            value = getattr(row, column)
            if want[column] is None:
                assert math.isnan(value), (row.observation_id, column)
            else:
                assert value == pytest.approx(want[column]), (row.observation_id, column)

    drawn = df[df["source"] == ILLUSTRATION].iloc[0]
    assert drawn["area_km2"] == pytest.approx(29.999, abs=1e-3)
    assert geo.geodesic_area_km2(drawn.geometry) == pytest.approx(29.999, abs=0.01)
    assert df.crs is not None
    assert df.crs.is_geographic
    centre = drawn.geometry.centroid
    assert 35.0 < centre.x < 35.7  # lon first: not swapped
    assert 51.0 < centre.y < 51.5
    officials = df[df["source"] == "ua-officials"].iloc[0]
    assert officials["reported_area_km2"] == 30
    assert str(df["valid_from"].dtype).startswith("datetime64")


def test_geopandas_reads_every_feature_from_small_pages(small_pages: LiveServer) -> None:
    """pyogrio's GDAL asks for 1000 a page; the service clamps that to 3; GDAL follows next."""
    df = _read_file(f"OAPIF:{small_pages.url}/collections/regions")
    matched = _items(small_pages, "regions", limit=1)["numberMatched"]
    assert matched == 30
    assert len(df) == df["id"].nunique() == matched
    kursk = df[df["id"] == "kursk"].iloc[0]
    assert geo.geodesic_area_km2(kursk.geometry) == pytest.approx(kursk["area_km2"], rel=1e-3)
