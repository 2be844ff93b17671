"""The HTTP API over the seeded database, through the ASGI app, on SQLite and on PostGIS."""

from __future__ import annotations

import gzip
import inspect
import io
import itertools
import zlib
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import Engine, event

from app.api.routing import route_table
from app.domain import geometry as geo

GEOJSON = "application/geo+json"
PROBLEM = "application/problem+json"


def assert_rfc7946(collection: dict[str, Any]) -> None:
    """Lon/lat in range, exterior rings counter-clockwise and holes clockwise, no crs."""
    assert "crs" not in collection
    for feature in collection.get("features", [collection]):
        assert feature["type"] == "Feature"
        assert "crs" not in feature
        g = feature["geometry"]
        if g is None:
            continue
        polygons = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        for rings in polygons:
            for i, ring in enumerate(rings):
                assert ring[0] == ring[-1]
                assert all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in ring)
                assert shapely.LinearRing(ring).is_ccw == (i == 0)
        assert shape(g).is_valid


def test_regions(client: TestClient) -> None:
    r = client.get("/regions")
    assert r.status_code == 200
    assert r.headers["content-type"] == GEOJSON
    body = r.json()
    assert_rfc7946(body)
    by_id = {f["id"]: f for f in body["features"]}
    assert len(by_id) == 30
    assert {
        "kursk",
        "belgorod",
        "bryansk",
        "sumy",
        "kharkiv",
        "kyiv",
        "crimea",
        "sevastopol",
    } <= set(by_id)
    assert {by_id[s]["properties"]["country"] for s in ("crimea", "sevastopol")} == {"Ukraine"}
    kursk = by_id["kursk"]["properties"]
    assert kursk == {
        "slug": "kursk",
        "name": "Kursk Oblast",
        "country": "Russia",
        "country_code": "RU",
        "area_km2": pytest.approx(30_117, abs=1),
        "level": "admin1",
        "parent": "russia",
    }
    assert by_id["sumy"]["properties"]["country"] == "Ukraine"


def test_regions_by_level(client: TestClient) -> None:
    countries = client.get("/regions", params={"level": "country"}).json()
    assert_rfc7946(countries)
    by_id = {f["id"]: f["properties"] for f in countries["features"]}
    assert set(by_id) == {"ukraine", "russia"}
    assert by_id["russia"]["members"] == ["belgorod", "bryansk", "kursk"]
    assert len(by_id["ukraine"]["members"]) == 27
    assert {"crimea", "sevastopol", "sumy"} <= set(by_id["ukraine"]["members"])
    everything = client.get("/regions", params={"level": "all", "geometry": "false"}).json()
    assert len(everything["features"]) == 32
    # Without geometry, each feature still says where it is.
    assert all(f["geometry"] is None and len(f["bbox"]) == 4 for f in everything["features"])
    admin1 = {
        f["id"]: f["properties"]
        for f in everything["features"]
        if f["properties"]["level"] == "admin1"
    }
    # A country's area is its members' (the union of their boundaries, measured once).
    for _slug, country in by_id.items():
        members = sum(admin1[m]["area_km2"] for m in country["members"])
        assert country["area_km2"] == pytest.approx(members, rel=1e-4)
    one = client.get("/regions/ukraine").json()
    assert one["properties"]["level"] == "country"
    assert one["properties"]["members"] == by_id["ukraine"]["members"]
    assert client.get("/regions", params={"level": "oblast"}).status_code == 400


def test_one_region(client: TestClient) -> None:
    r = client.get("/regions/belgorod")
    assert r.status_code == 200
    assert r.headers["content-type"] == GEOJSON
    feature = r.json()
    assert feature["id"] == "belgorod"
    assert_rfc7946(feature)
    assert geo.geodesic_area_km2(shape(feature["geometry"])) == pytest.approx(27_758, abs=1)


def test_control_draws_the_same_polygons_from_database_text_as_from_shapely(
    client: TestClient,
) -> None:
    """The current answer takes each polygon as GeoJSON text from the database (PostGIS writes
    it, SQLite's WKB is encoded in one pass); one pinned by ``known_at`` draws it from a shapely
    polygon. With nothing recorded after ``known_at`` both give the same features, byte for
    byte, in the regions and moments of the seed's timelines, with and without filters."""
    drawn = 0
    moments = ["2024-08-20", "2024-10-01", "2025-03-01", "2025-04-26", "2025-06-01"]
    filters: list[dict[str, str]] = [{}, {"party": "UA"}, {"source": "ua-general-staff"}]
    for region, at, extra in itertools.product(["kursk", "belgorod", "sumy"], moments, filters):
        url, params = f"/regions/{region}/control", {"at": at, **extra}
        current = client.get(url, params=params)
        then = client.get(url, params={**params, "known_at": "2099-01-01"})
        assert current.status_code == then.status_code == 200
        assert_rfc7946(current.json())
        expected = then.json()
        del expected["known_at"]
        assert current.content == orjson.dumps(expected)
        drawn += sum(f["geometry"] is not None for f in expected["features"])
    assert drawn > 0


def test_control_at_late_april_2025(client: TestClient) -> None:
    r = client.get("/regions/kursk/control", params={"at": "2025-04-26"})
    assert r.status_code == 200
    assert r.headers["content-type"] == GEOJSON
    body = r.json()
    assert_rfc7946(body)
    assert body["at"] == "2025-04-26T23:59:59.999999Z"
    by_source = {f["properties"]["source"]: f["properties"] for f in body["features"]}
    assert set(by_source) == {
        "frontline-atlas-illustration",
        "ru-general-staff",
        "ua-officials",
        "ua-general-staff",
        "ua-commander-in-chief",
    }
    drawn = by_source["frontline-atlas-illustration"]
    assert drawn["illustrative"] is True
    assert drawn["area_km2"] == pytest.approx(30, rel=0.02)
    assert body["illustrative"] is True
    assert "not surveyed" in body["notice"]
    assert by_source["ru-general-staff"]["reported_area_km2"] == 0
    assert by_source["ru-general-staff"]["account"] == "RU"
    assert by_source["ua-officials"]["reported_area_km2"] == 30
    for props in by_source.values():
        for key in (
            "party",
            "status",
            "source",
            "account",
            "valid_from",
            "valid_to",
            "area_km2",
            "reported_area_km2",
            "observation_id",
            "illustrative",
        ):
            assert key in props


def test_control_in_august_2024_shows_the_large_polygon(client: TestClient) -> None:
    body = client.get(
        "/regions/kursk/control?at=2024-08-31&source=frontline-atlas-illustration"
    ).json()
    [feature] = body["features"]
    assert feature["properties"]["area_km2"] == pytest.approx(1300, rel=0.02)
    assert shape(feature["geometry"]).contains(shapely.Point(35.27, 51.19))  # Sudzha


def test_control_before_anything_is_empty(client: TestClient) -> None:
    body = client.get("/regions/kursk/control?at=2024-08-01").json()
    assert body["features"] == []
    assert "illustrative" not in body


def test_control_filters_are_repeatable(client: TestClient) -> None:
    url = "/regions/kursk/control?at=2025-04-26&account=RU&account=none"
    sources = {f["properties"]["source"] for f in client.get(url).json()["features"]}
    assert sources == {"ru-general-staff", "frontline-atlas-illustration"}
    url = "/regions/kursk/control?at=2025-04-26&source=ua-officials&source=ru-general-staff"
    assert len(client.get(url).json()["features"]) == 2
    url = "/regions/kursk/control?at=2025-04-26&status=contested"
    assert client.get(url).json()["features"] == []
    url = "/regions/belgorod/control?at=2025-04-26&status=contested&party=UA"
    [presence] = client.get(url).json()["features"]
    assert presence["geometry"] is None
    assert presence["properties"]["reported_area_km2"] is None


def test_area_series_per_source(client: TestClient) -> None:
    r = client.get("/regions/kursk/area", params={"party": "UA"})
    assert r.status_code == 200
    body = r.json()
    series = {s["source"]: s["points"] for s in body["series"]}
    syrskyi = series["ua-commander-in-chief"]
    assert [(p["at"][:10], p["area_km2"], p["kind"]) for p in syrskyi] == [
        ("2024-08-12", 1000, "reported"),
        ("2024-08-20", 1263, "reported"),
        ("2024-08-27", 1294, "reported"),
    ]
    drawn = series["frontline-atlas-illustration"]
    assert [p["kind"] for p in drawn] == ["measured", "measured"]
    assert series["ru-general-staff"][0]["area_km2"] == 0


def test_area_series_per_account_and_range(client: TestClient) -> None:
    body = client.get("/regions/kursk/area?party=UA&account=UA&from=2024-09-01").json()
    assert body["group_by"] == "account"
    [ua] = body["series"]
    assert ua["account"] == "UA"
    assert [(p["at"][:10], p["area_km2"]) for p in ua["points"]] == [
        ("2024-11-23", 800),
        ("2025-04-26", 30),
    ]


def test_an_area_range_holds_both_days_whole(client: TestClient) -> None:
    """from=D keeps figures dated D itself (a range starts at the start of its first day)."""
    body = client.get(
        "/regions/kursk/area",
        params={"party": "UA", "source": "ua-commander-in-chief", "from": "2024-08-20"},
    ).json()
    dates = [p["at"][:10] for s in body["series"] for p in s["points"]]
    assert dates == ["2024-08-20", "2024-08-27"]
    assert body["from"] == "2024-08-20T00:00:00Z"
    to_day = client.get(
        "/regions/kursk/area",
        params={"party": "UA", "source": "ua-commander-in-chief", "to": "2024-08-20"},
    ).json()
    assert [p["at"][:10] for s in to_day["series"] for p in s["points"]] == [
        "2024-08-12",
        "2024-08-20",
    ]


@pytest.mark.parametrize("how", ["format", "accept"])
def test_area_csv_loads_in_pandas(client: TestClient, how: str) -> None:
    if how == "format":
        r = client.get("/regions/kursk/area?party=UA&format=csv")
    else:
        r = client.get("/regions/kursk/area?party=UA", headers={"Accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    df = pd.read_csv(io.StringIO(r.text), parse_dates=["at"])
    assert {
        "region",
        "series",
        "source",
        "account",
        "at",
        "area_km2",
        "kind",
        "observation_id",
    } <= set(df.columns)
    assert len(df) == 8
    syrskyi = df[df.source == "ua-commander-in-chief"].sort_values("at")
    assert syrskyi.area_km2.tolist() == [1000, 1263, 1294]
    assert str(df["at"].dt.tz) == "UTC"


def test_kursk_change_by_kyivs_account(client: TestClient) -> None:
    r = client.get(
        "/regions/kursk/change",
        params={"party": "UA", "from": "2024-08-31", "to": "2025-04-26", "account": "UA"},
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["region"], body["party"]) == ("kursk", "UA")
    [change] = body["changes"]
    assert change["account"] == "UA"
    assert change["from"]["area_km2"] == 1294
    assert change["from"]["at"].startswith("2024-08-27")
    assert change["to"]["area_km2"] == 30
    assert change["to"]["at"].startswith("2025-04-26")
    assert change["delta_km2"] == -1264
    assert change["pct_change"] == pytest.approx(-97.7, abs=0.05)


def test_kursk_change_by_moscows_account_ends_at_zero(client: TestClient) -> None:
    r = client.get("/regions/kursk/change?party=UA&from=2024-08-31&to=2025-04-26&account=RU")
    [change] = r.json()["changes"]
    assert change["account"] == "RU"
    assert change["from"] is None  # Moscow gave no figure for August 2024
    assert change["to"]["area_km2"] == 0
    assert change["delta_km2"] is None


def test_kursk_change_per_source(client: TestClient) -> None:
    body = client.get("/regions/kursk/change?party=UA&from=2024-08-31&to=2025-04-26").json()
    by_source = {c["source"]: c for c in body["changes"]}
    drawn = by_source["frontline-atlas-illustration"]
    assert drawn["from"]["area_km2"] == pytest.approx(1300, rel=0.02)
    assert drawn["to"]["area_km2"] == pytest.approx(30, rel=0.02)
    assert drawn["from"]["kind"] == "measured"
    assert drawn["from"]["illustrative"] is True
    assert drawn["pct_change"] == pytest.approx(-97.7, abs=0.1)


def test_change_geometry(client: TestClient) -> None:
    r = client.get(
        "/regions/kursk/change/geometry?party=UA&from=2024-08-31&to=2025-04-26"
        "&source=frontline-atlas-illustration"
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == GEOJSON
    body = r.json()
    assert_rfc7946(body)
    by_change = {f["properties"]["change"]: f for f in body["features"]}
    lost, gained = by_change["lost"]["properties"], by_change["gained"]["properties"]
    # the April shape is not inside the August one: some ground is "gained" in the drawing
    big, small = 1300, 30
    assert lost["area_km2"] - gained["area_km2"] == pytest.approx(big - small, rel=0.02)
    assert 0 <= gained["area_km2"] <= small * 1.02
    assert lost["illustrative"] is True
    assert geo.geodesic_area_km2(shape(by_change["lost"]["geometry"])) == pytest.approx(
        lost["area_km2"], abs=0.01
    )


def test_change_geometry_lists_series_without_polygons(client: TestClient) -> None:
    body = client.get(
        "/regions/kursk/change/geometry?party=UA&from=2024-08-31&to=2025-04-26"
    ).json()
    skipped = {s["source"] for s in body["skipped"]}
    assert "ua-officials" in skipped
    assert "ru-general-staff" in skipped


def test_claims_side_by_side(client: TestClient) -> None:
    r = client.get("/regions/kursk/claims?at=2025-04-26&party=UA")
    assert r.status_code == 200
    body = r.json()
    figures = {c["source"]: c["area_km2"] for c in body["claims"]}
    assert figures["ua-officials"] == 30
    assert figures["ru-general-staff"] == 0
    assert figures["ua-general-staff"] is None  # its latest word gives no figure
    areas = [c["area_km2"] for c in body["claims"] if c["area_km2"] is not None]
    assert areas == sorted(areas, reverse=True)
    officials = next(c for c in body["claims"] if c["source"] == "ua-officials")
    assert officials["citation_publisher"] == "Financial Times"
    assert officials["kind"] == "reported"
    assert officials["qualifier"] == "about"
    spread = body["spread"]
    assert spread["low"]["source"] == "ru-general-staff"
    assert spread["spread_km2"] == spread["high"]["area_km2"] - 0


@pytest.mark.parametrize(
    ("url", "status", "needle"),
    [
        ("/regions/kurks", 404, "Did you mean 'kursk'"),
        ("/regions/kurks/control", 404, "no region 'kurks'"),
        ("/regions/kursk/control?at=2025-13-01", 400, "'at' must be an RFC 3339"),
        ("/regions/kursk/control?at=last%20week", 400, "'at' must be an RFC 3339"),
        ("/regions/kursk/area?party=UA&from=2025-02-30", 400, "'from' must be an RFC 3339"),
        ("/regions/kursk/change?party=UA&from=2025-04-26&to=2024-08-31", 400, "is after 'to'"),
        ("/regions/kursk/change?party=UA&from=2024-08-31", 400, "'to'"),
        ("/regions/kursk/area?party=XX", 400, "Unknown party 'XX'"),
        ("/regions/kursk/area", 400, "'party'"),
        ("/regions/kursk/control?party=US", 400, "Known: RU, UA, none"),
        ("/regions/kursk/control?account=NATO", 400, "Unknown party 'NATO' in 'account'"),
        ("/regions/kursk/control?source=tass", 400, "Unknown source 'tass'"),
        ("/regions/kursk/control?status=held", 400, "Unknown status 'held'"),
        ("/regions/kursk/area?party=UA&format=xlsx", 400, "format"),
        ("/nowhere", 404, "/docs"),
    ],
)
def test_bad_requests_are_problem_details(
    client: TestClient, url: str, status: int, needle: str
) -> None:
    r = client.get(url)
    assert r.status_code == status
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status
    assert needle in body["detail"]
    assert body["title"]
    assert body["type"].startswith("http")
    assert client.get(body["type"]).status_code == 200  # the problem type is documented


def test_reference_lists(client: TestClient) -> None:
    parties = {p["code"] for p in client.get("/parties").json()}
    assert parties == {"UA", "RU"}
    sources = {s["slug"]: s for s in client.get("/sources").json()}
    assert sources["ru-general-staff"]["account"] == "RU"
    assert sources["frontline-atlas-illustration"]["kind"] == "illustration"


def test_openapi_documents_every_parameter(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, item in spec["paths"].items():
        for operation in item.values():
            for param in operation.get("parameters", []):
                assert param.get("description"), f"{path} {param['name']} has no description"
    change = spec["paths"]["/regions/{slug}/change"]["get"]
    names = {p["name"] for p in change["parameters"]}
    assert {"party", "from", "to", "source", "account", "status"} <= names
    assert client.get("/docs").status_code == 200


# The dependencies that read the database: the only ones that may run in a worker thread
# (see app.api.deps). Any other plain ``def`` dependency costs every request using it a hop.
READ_THE_DATABASE = {"Require", "series_query", "export_query"}


def _runs_in_a_thread(call: Any) -> bool:
    """Whether FastAPI runs the dependency ``call`` in a worker thread: a class (its
    constructor), or a function or callable object that is not ``async``."""
    if inspect.isclass(call):
        return True
    function = call if inspect.isfunction(call) or inspect.ismethod(call) else call.__call__
    return not (inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function))


def test_only_dependencies_that_read_the_database_run_in_a_worker_thread(
    client: TestClient,
) -> None:
    threaded: dict[str, set[str]] = {}

    def walk(dependant: Any, path: str) -> None:
        for sub in dependant.dependencies:
            if sub.call is not None and _runs_in_a_thread(sub.call):
                name = getattr(sub.call, "__qualname__", type(sub.call).__qualname__)
                threaded.setdefault(name, set()).add(path)
            walk(sub, path)

    routes = [r for r in route_table(client.app.routes) if hasattr(r, "dependant")]
    for route in routes:
        walk(route.dependant, route.path_format)
    assert set(threaded) == READ_THE_DATABASE, threaded
    assert "/regions/{slug}/control" not in set().union(*threaded.values())


def _commits_during(client: TestClient, engine: Engine, url: str) -> list[str]:
    """Where each commit ran while ``url`` was answered: in the endpoint's own worker thread,
    in the wrapper around it (``app.api.routing.ending_read_units``: "route"), or at the end
    of the read unit's block (``Database.read``), from the dependency's exit ("dependency").
    The HTTP cache's own reads of the data version (``VersionClock``) are left out."""
    seen: list[str] = []

    def committed(connection: Any) -> None:
        frames = {(Path(f.filename).name, f.function) for f in inspect.stack()}
        if ("caching.py", "_read") in frames:
            return
        seen.append(
            "route"
            if ("routing.py", "run") in frames
            else "dependency"
            if ("database.py", "read") in frames  # the end of the unit's block
            else "elsewhere"
        )

    _answer_listened(client, engine, url, "commit", committed)
    return seen


def _answer_listened(
    client: TestClient, engine: Engine, url: str, name: str, listener: Any
) -> None:
    """GET ``url`` (not a server error) with ``listener`` on the engine's event ``name``."""
    event.listen(engine, name, listener)
    try:
        answer = client.get(url)
    finally:
        event.remove(engine, name, listener)
    assert answer.status_code < 500, answer.text


def test_a_read_unit_ends_in_its_routes_thread_unless_the_answer_is_streamed(
    client: TestClient, seeded_engine: Engine
) -> None:
    """A plain endpoint's read unit commits (and frees its connection) inside the endpoint's
    own call, in its worker thread, not in a second hop from the dependency's exit; a streamed
    export reads on after its endpoint returned, so its unit ends after it; a 404 leaves its
    unit to the dependency (rolled back, no commit) and the pool stays usable."""
    control = "/regions/kursk/control?at=2024-08-31"
    assert _commits_during(client, seeded_engine, control) == ["route"]
    assert _commits_during(client, seeded_engine, "/regions/kursk/area?party=UA") == ["route"]
    streamed = "/exports/observations?region=kursk&format=csv"
    assert _commits_during(client, seeded_engine, streamed) == ["dependency"]
    for _ in range(20):  # more than the pool holds: each unit gave its connection back
        assert _commits_during(client, seeded_engine, "/regions/nowhere/control") == []
    assert client.get("/regions/kursk/control").status_code == 200


def _reads_during(client: TestClient, engine: Engine, url: str) -> list[tuple[str, bool]]:
    """Each statement run while ``url`` was answered (the HTTP cache's reads of the data
    version left out), and whether its connection was inside a transaction once it ran."""
    seen: list[tuple[str, bool]] = []

    def ran(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "data_version" in statement:
            return
        raw = connection.connection.dbapi_connection
        if engine.dialect.name == "postgresql":
            in_transaction = raw.info.transaction_status != raw.info.transaction_status.IDLE
        else:
            in_transaction = raw.in_transaction
        seen.append((statement.split(None, 1)[0].upper(), in_transaction))

    _answer_listened(client, engine, url, "after_cursor_execute", ran)
    return seen


def test_a_regions_control_is_read_in_one_statement(
    client: TestClient, seeded_engine: Engine
) -> None:
    """The most asked question, a region's control at a moment, reads the region and its
    pieces in one statement. On PostgreSQL that is the one round trip of the answer: a read
    unit sends no BEGIN and no COMMIT (app.storage.dialect.read_options); on SQLite it reads
    in one deferred transaction. A country reads its members and their pieces after it; an
    unknown region is looked up once more for its 404, which says how many there are."""
    postgres = seeded_engine.dialect.name == "postgresql"
    url = "/regions/kursk/control?at="  # a new moment each time: not answered from memory
    assert client.get(url + "2024-08-30").json()["features"]  # the statement built, as later
    reads = _reads_during(client, seeded_engine, url + "2024-08-31")
    assert reads == ([("SELECT", False)] if postgres else [("BEGIN", True), ("SELECT", True)])
    country = _reads_during(client, seeded_engine, "/regions/russia/control?at=2024-08-31")
    assert [kind for kind, _ in country if kind == "SELECT"] == ["SELECT"] * 3
    assert all(in_transaction is not postgres for _, in_transaction in country)
    unknown = client.get("/regions/nowhere/control?at=2024-08-31")
    assert unknown.status_code == 404
    assert "lists the 32 regions" in unknown.json()["detail"]


def test_gzip_costs_little_cpu(client: TestClient) -> None:
    """What browsers and GIS clients ask for comes gzipped at level 4 (app.api.app.GZIP_LEVEL):
    the very deflate stream zlib makes at that level, not Starlette's level 9."""
    url = "/regions/kursk/control?at=2024-08-31"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as packed:
        assert packed.headers["content-encoding"] == "gzip"
        raw = b"".join(packed.iter_raw())
    assert gzip.decompress(raw) == plain.content
    deflate = zlib.compressobj(4, zlib.DEFLATED, -zlib.MAX_WBITS)
    header = 10  # RFC 1952: no name, no comment; then the stream, then CRC32 and size
    assert raw[header:-8] == deflate.compress(plain.content) + deflate.flush()


def test_cors_lets_browser_maps_read(client: TestClient) -> None:
    r = client.get("/regions/kursk", headers={"Origin": "https://maps.example.org"})
    assert r.headers["access-control-allow-origin"] == "*"


def test_health(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] in {"sqlite", "postgresql"}


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    get = client.get("/regions/kursk/control?at=2025-04-26")
    head = client.head("/regions/kursk/control?at=2025-04-26")
    assert head.status_code == 200
    assert head.headers["content-type"] == GEOJSON
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.content == b""
