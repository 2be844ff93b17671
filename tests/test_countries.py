"""Countries are regions too: their figures are the sums over their member regions.

A generated whole-theatre archive (the benchmarks' DeepStateMap-like snapshots, over New Year
2025) is imported with the deepstate profile, on SQLite and on PostGIS; then every country
answer is checked against its member regions, asked one by one over HTTP, and the as-drawn
figure against the drawing measured here straight from the files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy.engine import Engine

from app.api.app import create_app
from app.domain import geometry as geo
from app.domain.model import Source, SourceKind
from app.importer.engine import Importer, ImportOptions
from app.importer.rules import PROFILES, Rule
from app.seed import seed
from app.settings import Settings
from app.storage.database import upgrade
from benchmarks.archive import generate
from tests.conftest import BACKENDS, DATA_DIR, _new_engine, _require_backend
from tests.store import Store

DAYS = 5
START = dt.date(2024, 12, 30)
TOL_KM2 = 0.15  # figures are served to 0.1 km²; a sum of rounded figures may drift a little


@pytest.fixture(scope="module", params=BACKENDS)
def theatre(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_databases: Any,
) -> Iterator[tuple[TestClient, list[Path]]]:
    """A seeded database with five whole-theatre DeepStateMap-like days imported."""
    _require_backend(request.param)
    engine: Engine = _new_engine(request.param, tmp_path_factory, pg_databases)
    upgrade(engine)
    repo = Store(engine)
    seed(repo.db, DATA_DIR)
    repo.save_source(
        Source("deepstate", "DeepStateMap", SourceKind.OSINT, None, "https://deepstatemap.live")
    )
    files = generate(tmp_path_factory.mktemp("archive"), DAYS, START)
    summary = Importer(repo.db, ImportOptions(source="deepstate", rules=PROFILES["deepstate"])).run(
        files
    )
    assert summary.ok, summary.errors
    app = create_app(Settings(database_url=str(engine.url)), engine=engine)
    with TestClient(app) as client:
        yield client, files
    engine.dispose()


def _members(client: TestClient, country: str) -> list[str]:
    members: list[str] = client.get(f"/regions/{country}").json()["properties"]["members"]
    return members


def _member_figure(client: TestClient, region: str, at: str, **params: str) -> float:
    """A member's figure at ``at`` for the deepstate series, asked of the region itself."""
    body = client.get(
        f"/regions/{region}/claims", params={"at": at, "source": "deepstate", **params}
    ).json()
    return sum(c["area_km2"] for c in body["claims"])


def test_country_area_is_the_sum_of_its_members(theatre: tuple[TestClient, list[Path]]) -> None:
    client, _ = theatre
    r = client.get("/regions/ukraine/area", params={"party": "RU", "source": "deepstate"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["level"] == "country"
    members = body["members"]
    assert len(members) == 27
    assert "crimea" in members
    [series] = body["series"]
    assert (series["source"], series["status"]) == ("deepstate", "controlled")
    points = series["points"]
    assert len(points) >= 2  # the generated map changes (almost) every day
    for point in points:
        expected = sum(_member_figure(client, m, point["at"], party="RU") for m in members)
        assert point["area_km2"] == pytest.approx(expected, abs=TOL_KM2 * len(point["regions"]))
        assert set(point["regions"]) <= set(members)
        assert point["kind"] == "measured"
        # As drawn: the whole drawing, before clipping to Ukraine's regions; more ground.
        assert point["drawn_area_km2"] >= point["area_km2"] - TOL_KM2
    # Crimea counts: the ground occupied since 2014 is in the total.
    assert "crimea" in points[-1]["regions"]


def test_as_drawn_is_the_whole_drawing_measured_from_the_file(
    theatre: tuple[TestClient, list[Path]],
) -> None:
    client, files = theatre
    last = files[-1]
    document = orjson.loads(last.read_bytes())
    rules = PROFILES["deepstate"]
    drawn = [
        shape(f["geometry"])
        for f in document["map"]["features"]
        if f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        and isinstance(rule := rules.rule_for(f["properties"]), Rule)
        and (rule.party, str(rule.status)) == ("RU", "controlled")
    ]
    whole = geo.geodesic_area_km2(shapely.union_all(shapely.make_valid(drawn)))
    body = client.get(
        "/regions/ukraine/claims", params={"party": "RU", "source": "deepstate", "at": "2025-12-31"}
    ).json()
    [claim] = body["claims"]
    assert claim["drawn_area_km2"] == pytest.approx(whole, rel=1e-3)
    assert claim["area_km2"] < claim["drawn_area_km2"]  # some drawn ground is outside the regions
    assert claim["source"] == "deepstate"
    assert claim["source_name"] == "DeepStateMap"


def test_country_change_pairs_the_totals_at_two_moments(
    theatre: tuple[TestClient, list[Path]],
) -> None:
    client, _ = theatre
    params = {"party": "RU", "source": "deepstate"}
    points = client.get("/regions/ukraine/area", params=params).json()["series"][0]["points"]
    first, last = points[0], points[-1]
    r = client.get(
        "/regions/ukraine/change", params={**params, "from": first["at"], "to": last["at"]}
    )
    assert r.status_code == 200, r.text
    [change] = r.json()["changes"]
    assert change["from"]["area_km2"] == first["area_km2"]
    assert change["to"]["area_km2"] == last["area_km2"]
    assert change["delta_km2"] == pytest.approx(last["area_km2"] - first["area_km2"], abs=0.2)
    geometry = client.get(
        "/regions/ukraine/change/geometry", params={**params, "from": first["at"], "to": last["at"]}
    ).json()
    kinds = {f["properties"]["change"]: f for f in geometry["features"]}
    assert set(kinds) == {"gained", "lost"}
    # What was gained minus what was lost is the change in the total (clipped ground).
    net = (kinds["gained"]["properties"]["area_km2"] or 0) - (
        kinds["lost"]["properties"]["area_km2"] or 0
    )
    assert net == pytest.approx(change["delta_km2"], abs=1.0)


def test_country_control_is_the_union_of_member_pieces(
    theatre: tuple[TestClient, list[Path]],
) -> None:
    client, _ = theatre
    at = (START + dt.timedelta(days=DAYS - 1)).isoformat()
    r = client.get("/regions/ukraine/control", params={"at": at, "source": "deepstate"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    features = {
        (f["properties"]["party"], f["properties"]["status"]): f for f in r.json()["features"]
    }
    ru = features[("RU", "controlled")]
    members = _members(client, "ukraine")
    expected = sum(_member_figure(client, m, at, party="RU") for m in members)
    assert ru["properties"]["area_km2"] == pytest.approx(expected, abs=TOL_KM2 * 27)
    union = shape(ru["geometry"])
    assert union.is_valid
    # The union of the clipped pieces measures what their sum says (they do not overlap).
    assert geo.geodesic_area_km2(union) == pytest.approx(ru["properties"]["area_km2"], rel=1e-3)
    # RFC 7946: exterior rings counter-clockwise.
    for polygon in getattr(union, "geoms", [union]):
        assert polygon.exterior.is_ccw
    assert (None, "contested") in features


def test_country_area_as_csv(theatre: tuple[TestClient, list[Path]]) -> None:
    client, _ = theatre
    params = {"party": "RU", "source": "deepstate"}
    points = client.get("/regions/ukraine/area", params=params).json()["series"][0]["points"]
    r = client.get("/regions/ukraine/area", params={**params, "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [float(row["area_km2"]) for row in rows] == [p["area_km2"] for p in points]
    assert [float(row["drawn_area_km2"]) for row in rows] == [p["drawn_area_km2"] for p in points]
    assert {row["region"] for row in rows} == {"ukraine"}


def test_russia_by_kyivs_account_is_kursk_on_the_seed(client: TestClient) -> None:
    """Only Kursk has Ukrainian-held ground in the seed: Russia's total is Kursk's figure, and
    the answer says which member it comes from."""
    params = {"party": "UA", "from": "2024-08-31", "to": "2025-04-26", "account": "UA"}
    kursk = client.get("/regions/kursk/change", params=params).json()["changes"]
    russia = client.get("/regions/russia/change", params=params).json()
    assert russia["members"] == ["belgorod", "bryansk", "kursk"]
    [k] = [c for c in kursk if c["status"] == "controlled"]
    [r] = [c for c in russia["changes"] if c["status"] == "controlled"]
    assert (r["from"]["area_km2"], r["to"]["area_km2"]) == (1294.0, 30.0)
    assert (k["from"]["area_km2"], k["to"]["area_km2"]) == (1294.0, 30.0)
    assert list(r["to"]["regions"]) == ["kursk"]
    assert r["to"]["kind"] == "reported"


def test_a_country_stands_for_its_members_in_region_filters(
    theatre: tuple[TestClient, list[Path]],
) -> None:
    client, _ = theatre
    r = client.get(
        "/collections/control/items",
        params={"region": "russia", "limit": 1000, "datetime": "2025-01-02T00:00:00Z"},
    )
    assert r.status_code == 200, r.text
    regions = {f["properties"]["region"] for f in r.json()["features"]}
    assert regions
    assert regions <= {"kursk", "belgorod", "bryansk"}
