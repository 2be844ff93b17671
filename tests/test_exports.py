"""Research exports: the files load in pandas, geopandas and DuckDB, with the seed's real values,
on SQLite and on PostGIS; filters, known_at, revisions and file names hold."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import geopandas as gpd
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.routes import exports as export_routes
from app.domain import geometry as geo
from app.storage.exports import REVISION_FIELDS
from tests.test_api import PROBLEM, assert_rfc7946
from tests.test_write_api import Api, feature, make_api, time_now

UTC = dt.UTC
SYRSKYI = "ua-commander-in-chief"
DRAWN = "frontline-atlas-illustration"
PIECE_COLUMNS = list(export_routes.PIECE_COLUMNS)
MOMENTS = ["valid_from", "valid_to", "valid_until", "citation_published_at", "recorded_at"]
SMALL_BOX = [[35.2, 51.15], [35.3, 51.15], [35.3, 51.25], [35.2, 51.25], [35.2, 51.15]]


def day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def get(client: TestClient, url: str, **params: Any) -> Any:
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    return r


def seq(r: Any) -> list[dict[str, Any]]:
    """The Features of a GeoJSON text sequence (RFC 8142), checking its framing."""
    assert r.headers["content-type"] == "application/geo+json-seq"
    assert r.content.endswith(b"\n") or not r.content
    lines = r.content.split(b"\n")[:-1]
    assert all(line.startswith(b"\x1e") for line in lines)
    return [json.loads(line[1:]) for line in lines]


def filename(r: Any) -> str:
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    return str(disposition.split("filename=")[1].strip('"'))


def reported(frame: pd.DataFrame) -> list[tuple[str, dt.datetime, float]]:
    rows = frame[frame.reported_area_km2.notna()]
    return [
        (r.source, r.valid_from.to_pydatetime(), r.reported_area_km2) for r in rows.itertuples()
    ]


SEED_REPORTED = [
    (SYRSKYI, day("2024-08-12"), 1000.0),
    (SYRSKYI, day("2024-08-20"), 1263.0),
    (SYRSKYI, day("2024-08-27"), 1294.0),
    ("ua-general-staff", day("2024-11-23"), 800.0),
    ("ru-general-staff", day("2025-04-26"), 0.0),
    ("ua-officials", day("2025-04-26"), 30.0),
]


# --- the region timeline, in each format --------------------------------------------------------


def test_timeline_csv_loads_in_pandas(client: TestClient) -> None:
    r = get(client, "/regions/kursk/timeline")  # csv is the default
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert filename(r) == "kursk-timeline-all.csv"
    df = pd.read_csv(io.BytesIO(r.content), parse_dates=MOMENTS)
    assert list(df.columns) == [*PIECE_COLUMNS, "geometry"]
    assert len(df) == 9
    assert df.valid_from.is_monotonic_increasing
    assert str(df.valid_from.dt.tz) == "UTC"
    assert reported(df) == SEED_REPORTED
    drawn = df[df.source == DRAWN]
    assert drawn.area_km2.tolist() == pytest.approx([1299.995, 29.999], abs=0.001)
    assert drawn.illustrative.tolist() == [True, True]
    assert drawn.valid_until.iloc[0] == pd.Timestamp("2025-04-26", tz="UTC")
    shapes = [shapely.from_wkt(text) for text in drawn.geometry]
    areas = [geo.geodesic_area_km2(s) for s in shapes]
    assert areas == pytest.approx([1300.0, 30.0], abs=0.01)  # WKT keeps 7 decimals
    assert shapes[0].contains(shapely.Point(35.27, 51.19))  # Sudzha
    assert df[df.source != DRAWN].geometry.isna().all()  # figures without a polygon


def test_timeline_has_the_properties_every_endpoint_serves(client: TestClient) -> None:
    features = get(client, "/regions/kursk/timeline", format="geojson").json()["features"]
    control = get(client, "/regions/kursk/control", at="2025-04-26").json()["features"]
    by_id = {f["id"]: f for f in features}
    assert len(control) == 5
    for shown in control:
        mine = by_id[f"{shown['id']}-kursk"]
        # age_days is the age at the moment asked for; a timeline has no such moment
        at_the_moment = {k: v for k, v in shown["properties"].items() if k != "age_days"}
        assert shown["properties"]["age_days"] >= 0
        assert mine["properties"] == at_the_moment
        assert mine["geometry"] == shown["geometry"]
    assert [k for k in control[0]["properties"] if k != "age_days"] == PIECE_COLUMNS


def test_timeline_geojson_loads_in_geopandas(client: TestClient) -> None:
    r = get(client, "/regions/kursk/timeline", format="geojson")
    assert r.headers["content-type"] == "application/geo+json"
    assert filename(r) == "kursk-timeline-all.geojson"
    body = r.json()
    assert_rfc7946(body)
    assert (body["region"], body["numberReturned"], body["illustrative"]) == ("kursk", 9, True)
    assert "not surveyed" in body["notice"]
    gdf = gpd.read_file(io.BytesIO(r.content))
    assert gdf.crs == "EPSG:4326"
    assert len(gdf) == 9
    drawn = gdf[gdf.source == DRAWN]
    assert [geo.geodesic_area_km2(g) for g in drawn.geometry] == pytest.approx(
        [1300.0, 30.0], abs=0.01
    )
    one = gdf[(gdf.source == "ua-officials")].iloc[0]
    assert (one.reported_area_km2, one.reported_qualifier) == (30.0, "about")


def test_timeline_geojsonseq_line_by_line(client: TestClient) -> None:
    r = get(client, "/regions/kursk/timeline", format="geojsonseq", source=SYRSKYI)
    assert filename(r) == "kursk-timeline-all.geojsons"
    features = seq(r)
    assert [f["properties"]["reported_area_km2"] for f in features] == [1000, 1263, 1294]
    assert [f["id"] for f in features] == [
        f"{f['properties']['observation_id']}-kursk" for f in features
    ]
    last = features[-1]["properties"]
    assert (last["valid_from"], last["valid_until"]) == ("2024-08-27T00:00:00Z", None)
    assert last["citation_publisher"] == "The Kyiv Independent"


def test_timeline_parquet_loads_in_geopandas_and_duckdb(client: TestClient, tmp_path: Path) -> None:
    r = get(client, "/regions/kursk/timeline", format="parquet")
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    assert filename(r) == "kursk-timeline-all.parquet"
    path = tmp_path / filename(r)
    path.write_bytes(r.content)

    gdf = gpd.read_parquet(path)
    assert gdf.crs == "EPSG:4326"
    assert list(gdf.columns) == [*PIECE_COLUMNS, "geometry"]
    for column in MOMENTS:
        assert str(gdf[column].dtype) == "datetime64[us, UTC]", column
    assert reported(gdf) == SEED_REPORTED
    drawn = gdf[gdf.source == DRAWN]
    assert drawn.area_km2.tolist() == pytest.approx([1299.995, 29.999], abs=0.001)
    assert [geo.geodesic_area_km2(g) for g in drawn.geometry] == pytest.approx(
        drawn.area_km2.tolist(), abs=0.001
    )
    assert gdf.geometry.isna().sum() == 7

    described = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    types = {name: kind for name, kind, *_ in described}
    assert types["valid_from"] == "TIMESTAMP WITH TIME ZONE"
    assert (types["observation_id"], types["illustrative"]) == ("BIGINT", "BOOLEAN")
    rows = duckdb.sql(
        f"SELECT source, strftime(valid_from AT TIME ZONE 'UTC', '%Y-%m-%d'), reported_area_km2 "
        f"FROM read_parquet('{path}') WHERE reported_area_km2 IS NOT NULL "
        f"ORDER BY valid_from, observation_id"
    ).fetchall()
    assert rows == [(s, f"{t:%Y-%m-%d}", a) for s, t, a in SEED_REPORTED]
    total = duckdb.sql(
        f"SELECT round(sum(area_km2), 3) FROM read_parquet('{path}') WHERE illustrative"
    ).fetchall()
    assert total == [(pytest.approx(1329.994, abs=0.002),)]


def test_parquet_and_csv_without_geometry(client: TestClient) -> None:
    r = get(client, "/regions/kursk/timeline", format="parquet", geometry="none")
    frame = pd.read_parquet(io.BytesIO(r.content))
    assert list(frame.columns) == PIECE_COLUMNS
    assert len(frame) == 9
    r = get(client, "/regions/kursk/timeline", format="csv", geometry="none")
    assert list(pd.read_csv(io.BytesIO(r.content)).columns) == PIECE_COLUMNS
    r = get(client, "/regions/kursk/timeline", format="geojson", geometry="none")
    assert {f["geometry"] for f in r.json()["features"]} == {None}
    explicit = get(client, "/regions/kursk/timeline", geometry="wkt")
    assert explicit.content == get(client, "/regions/kursk/timeline").content


def test_format_from_the_accept_header(client: TestClient) -> None:
    r = client.get("/regions/kursk/timeline", headers={"Accept": "application/geo+json-seq"})
    assert len(seq(r)) == 9
    r = client.get("/regions/kursk/timeline", headers={"Accept": "application/vnd.apache.parquet"})
    assert r.content[:4] == b"PAR1"
    r = client.get("/regions/kursk/timeline", headers={"Accept": "*/*"})
    assert r.headers["content-type"].startswith("text/csv")


def test_text_formats_stream_in_batches(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = {
        f: get(client, "/regions/kursk/timeline", format=f).content for f in ("csv", "geojson")
    }
    monkeypatch.setattr(export_routes, "BATCH", 2)
    for format_, content in whole.items():
        assert get(client, "/regions/kursk/timeline", format=format_).content == content
    assert len(get(client, "/regions/kursk/timeline", format="geojson").json()["features"]) == 9


def test_timeline_filters_and_file_names(client: TestClient) -> None:
    def rows(**params: Any) -> pd.DataFrame:
        r = get(client, "/regions/kursk/timeline", geometry="none", **params)
        frame = pd.read_csv(io.BytesIO(r.content), parse_dates=MOMENTS)
        frame.attrs["filename"] = filename(r)
        return frame

    assert rows(source=SYRSKYI).reported_area_km2.tolist() == [1000, 1263, 1294]
    assert set(rows(account="RU").source) == {"ru-general-staff"}
    assert set(rows(account="none").source) == {DRAWN}
    assert set(rows(source=["ua-officials", "ru-general-staff"]).source) == {
        "ua-officials",
        "ru-general-staff",
    }
    assert rows(status="contested").empty
    ranged = rows(**{"from": "2024-09-01", "to": "2025-04-25"})
    assert ranged.reported_area_km2.tolist() == [800]
    assert ranged.attrs["filename"] == "kursk-timeline-2024-09-01_2025-04-25.csv"
    assert rows(**{"from": "2025-01-01"}).attrs["filename"] == "kursk-timeline-from-2025-01-01.csv"
    assert rows(to="2024-08-20").reported_area_km2.tolist() == [1000, 1263]
    assert rows(to="2024-08-20").attrs["filename"] == "kursk-timeline-to-2024-08-20.csv"
    belgorod = get(client, "/regions/belgorod/timeline", format="geojson", status="contested")
    [presence] = belgorod.json()["features"]
    assert (presence["geometry"], presence["properties"]["source"]) == (None, "ua-officials")
    assert filename(belgorod) == "belgorod-timeline-all.geojson"


def test_file_name_says_range_and_known_at(client: TestClient) -> None:
    params = {"from": "2024-08-01", "to": "2025-05-01", "known_at": "2099-01-01T03:00:00+03:00"}
    r = get(client, "/regions/kursk/timeline", format="parquet", **params)
    assert filename(r) == "kursk-timeline-2024-08-01_2025-05-01-known-2099-01-01T000000Z.parquet"
    assert len(gpd.read_parquet(io.BytesIO(r.content))) == 9
    r = get(client, "/exports/observations", format="geojson", region="kursk", **params)
    assert (
        filename(r) == "observations-kursk-2024-08-01_2025-05-01-known-2099-01-01T000000Z.geojson"
    )
    assert r.json()["known_at"] == "2099-01-01T00:00:00Z"


def test_bad_parameters_are_problems(client: TestClient) -> None:
    for url, params, parameter in (
        ("/regions/kursk/timeline", {"format": "xlsx"}, "format"),
        ("/exports/observations", {"format": "shp"}, "format"),
        ("/regions/kursk/timeline", {"geometry": "svg"}, "geometry"),
        ("/exports/observations", {"revisions": "some"}, "revisions"),
        ("/exports/observations", {"region": "narnia"}, "region"),
        ("/regions/kursk/timeline", {"party": "XX"}, "party"),
        ("/regions/kursk/timeline", {"from": "2025-01-01", "to": "2024-01-01"}, "from"),
        ("/exports/observations", {"known_at": "yesterday"}, "known_at"),
    ):
        r = client.get(url, params=params)
        assert r.status_code == 400, (url, params)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["parameter"] == parameter
    r = client.get("/exports/observations", params={"format": "xlsx"})
    assert "csv, geojson, geojsonseq, parquet" in r.json()["detail"]
    assert client.get("/regions/narnia/timeline").status_code == 404


# --- the whole dataset --------------------------------------------------------------------------


def test_observations_export_is_every_piece_with_revision_fields(
    client: TestClient, tmp_path: Path
) -> None:
    r = get(client, "/exports/observations", format="parquet")
    assert filename(r) == "observations-all.parquet"
    path = tmp_path / "observations.parquet"
    path.write_bytes(r.content)
    gdf = gpd.read_parquet(path)
    assert list(gdf.columns) == [*PIECE_COLUMNS, *REVISION_FIELDS, "geometry"]
    assert len(gdf) == 10
    assert sorted(gdf.region.unique()) == ["belgorod", "kursk"]
    assert gdf.active.all()
    assert set(gdf.recorded_by) == {"seed"}
    assert gdf.supersedes.isna().all()
    assert str(gdf.retracted_at.dtype) == "datetime64[us, UTC]"
    kursk = gdf[gdf.region == "kursk"].reset_index(drop=True)
    timeline = gpd.read_parquet(
        io.BytesIO(get(client, "/regions/kursk/timeline", format="parquet").content)
    )
    pd.testing.assert_frame_equal(
        pd.DataFrame(kursk[PIECE_COLUMNS]), pd.DataFrame(timeline[PIECE_COLUMNS])
    )
    count = duckdb.sql(
        f"SELECT region, count(*) FROM read_parquet('{path}') WHERE active GROUP BY region "
        f"ORDER BY region"
    ).fetchall()
    assert count == [("belgorod", 1), ("kursk", 9)]


def test_observations_export_filters(client: TestClient) -> None:
    def features(**params: Any) -> list[dict[str, Any]]:
        return seq(get(client, "/exports/observations", format="geojsonseq", **params))

    assert [f["properties"]["region"] for f in features(region="belgorod")] == ["belgorod"]
    assert len(features(region=["kursk", "belgorod"])) == 10
    assert len(features(region="kursk,belgorod")) == 10
    assert features(region="sumy") == []
    assert {f["properties"]["source"] for f in features(account="RU")} == {"ru-general-staff"}
    assert [f["properties"]["reported_area_km2"] for f in features(source=SYRSKYI)] == [
        1000,
        1263,
        1294,
    ]
    assert len(features(status="contested", party="UA")) == 1
    csv = get(client, "/exports/observations", geometry="none", region="belgorod")
    assert filename(csv) == "observations-belgorod-all.csv"
    frame = pd.read_csv(io.BytesIO(csv.content))
    assert list(frame.columns) == [*PIECE_COLUMNS, *REVISION_FIELDS]
    assert frame.active.tolist() == [True]


# --- known_at and revisions, after writes -------------------------------------------------------


@pytest.fixture
def api(empty_engine: Engine) -> Iterator[Api]:
    yield from make_api(empty_engine)


def by_id(api: Api, url: str, **params: Any) -> dict[int, dict[str, Any]]:
    r = get(api.client, url, format="geojsonseq", source=DRAWN, **params)
    return {f["properties"]["observation_id"]: f["properties"] for f in seq(r)}


def test_known_at_and_revisions(api: Api) -> None:
    """One line of testimony: first (10 Aug), then second (20 Aug) which is then corrected
    (to 15 Aug) and the correction retracted; the seed's drawing of 27 Aug follows."""
    seeded = set(by_id(api, "/regions/kursk/timeline"))  # the two drawings of the seed
    assert len(seeded) == 2
    first = api.post(feature()).json()["id"]
    second = api.post(feature(valid_from="2024-08-20")).json()["id"]
    after_second = time_now()
    correction = api.client.post(
        f"/observations/{second}/corrections",
        json=feature(
            valid_from="2024-08-15", geometry={"type": "Polygon", "coordinates": [SMALL_BOX]}
        ),
        headers=api.write,
    ).json()["id"]
    after_correction = time_now()
    api.client.delete(
        f"/observations/{correction}", params={"reason": "wrong map"}, headers=api.write
    )

    # now: second is superseded and the correction retracted, first runs until the seed's 27 Aug
    now = by_id(api, "/regions/kursk/timeline")
    assert set(now) == {first, *seeded}
    assert now[first]["valid_until"] == "2024-08-27T00:00:00Z"
    assert set(by_id(api, "/exports/observations")) == {first, *seeded}

    # as it stood after the second was written: first ran until 20 Aug
    then = by_id(api, "/regions/kursk/timeline", known_at=after_second)
    assert set(then) == {first, second, *seeded}
    assert then[first]["valid_until"] == "2024-08-20T00:00:00Z"
    assert then[second]["valid_until"] == "2024-08-27T00:00:00Z"
    exported = by_id(api, "/exports/observations", known_at=after_second)
    assert {k: v["valid_until"] for k, v in exported.items()} == {
        k: v["valid_until"] for k, v in then.items()
    }
    assert all(v["active"] and v["superseded_by"] is None for v in exported.values())

    # after the correction, before its retraction: the retraction has not happened yet
    then = by_id(api, "/exports/observations", known_at=after_correction)
    assert set(then) == {first, correction, *seeded}
    assert then[first]["valid_until"] == "2024-08-15T00:00:00Z"
    assert then[correction]["supersedes"] == second
    assert then[correction]["retracted_at"] is None
    assert then[correction]["active"] is True

    # every revision, as of now: flagged, each with the interval it had when last in force
    every = by_id(api, "/exports/observations", revisions="all")
    assert set(every) == {first, second, correction, *seeded}
    assert every[second]["superseded_by"] == correction
    assert every[second]["active"] is False
    assert every[second]["valid_until"] == "2024-08-27T00:00:00Z"
    assert every[correction]["retraction_reason"] == "wrong map"
    assert every[correction]["retracted_at"] is not None
    assert every[correction]["active"] is False
    assert every[correction]["valid_until"] == "2024-08-27T00:00:00Z"
    assert every[first]["active"] is True
    assert every[first]["valid_until"] == "2024-08-27T00:00:00Z"
    assert every[first]["recorded_by"] == "desk"
    assert {every[k]["recorded_by"] for k in seeded} == {"seed"}
    assert [v["valid_from"][:10] for v in every.values()] == sorted(
        v["valid_from"][:10] for v in every.values()
    )

    # every revision as of after the correction: second superseded, correction not yet retracted
    then = by_id(api, "/exports/observations", revisions="all", known_at=after_correction)
    assert set(then) == {first, second, correction, *seeded}
    assert (then[second]["active"], then[correction]["active"]) == (False, True)
    assert then[correction]["retraction_reason"] is None
    assert then[correction]["valid_until"] == "2024-08-27T00:00:00Z"
    assert then[second]["valid_until"] == "2024-08-27T00:00:00Z"
    early = by_id(api, "/exports/observations", revisions="all", known_at=after_second)
    assert set(early) == {first, second, *seeded}
    assert early[second]["superseded_by"] is None

    r = get(api.client, "/exports/observations", revisions="all", known_at=after_correction)
    stamp = after_correction.replace(":", "")
    assert filename(r) == f"observations-and-revisions-all-known-{stamp}.csv"
    frame = pd.read_csv(io.BytesIO(r.content), parse_dates=MOMENTS)
    assert frame.active.sum() == len(frame) - 1
    assert frame.superseded_by.dropna().astype(int).tolist() == [correction]
