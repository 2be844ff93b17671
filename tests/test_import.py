"""Bulk import of map archives, on a real SQLite file and a real PostGIS.

The archives are built here, at test time: DeepState-style snapshots (bare and wrapped, 3-D
coordinates, trilingual names, every colour, a point and a line), the other formats written
with geopandas, and broken files.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import orjson
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Point, Polygon, box, mapping
from sqlalchemy import Engine, func, select

from app.api.app import create_app
from app.domain import geometry as geo
from app.domain.errors import InvalidInput
from app.domain.model import Source, SourceKind
from app.importer import engine, moments
from app.importer.engine import Importer, ImportOptions, ImportSummary
from app.importer.rules import PROFILES, load_rules
from app.seed import seed
from app.settings import PROJECT_ROOT, Settings
from app.storage.imports import Imports
from app.storage.pieces import PieceFilter
from app.storage.tables import confirmations, import_files, observations, pieces
from tests.conftest import DATA_DIR
from tests.store import Store

UTC = dt.UTC
SOURCE = "deepstate"

UA_A = box(35.2, 51.15, 35.4, 51.25)  # inside Kursk oblast
UA_B = box(35.0, 51.0, 35.6, 51.4)  # Kursk, and a little of Sumy (clipped: UA's colour is RU-only)
GREY_KURSK = box(36.0, 51.5, 36.1, 51.55)
RU_NEW = box(37.6, 48.0, 37.9, 48.2)  # Donetsk
RU_OLD = box(39.0, 48.3, 39.3, 48.5)  # Luhansk
GREY_DONETSK = box(37.9, 48.0, 38.0, 48.2)
LIBERATED = box(36.5, 49.5, 36.7, 49.7)  # Kharkiv
ODD = box(37.0, 47.5, 37.1, 47.6)  # a colour no rule knows

NAMES = {
    "#a52714": "Окуповано /// Occupied /// geoJSON.status.occupied",
    "#880e4f": "ОРДЛО та Крим /// ORDLO and Crimea /// geoJSON.status.ordlo",
    "#bcaaa4": "Невідомо /// Unknown /// geoJSON.status.unknown",
    "#bdbdbd": "Невідомо /// Unknown /// geoJSON.status.unknown",
    "#0f9d58": "Звільнено /// Liberated /// geoJSON.status.liberated",
    "#01579b": "ЗСУ в РФ /// AFU in Russia /// geoJSON.status.ua_in_ru",  # noqa: RUF001
}


# --- building archives ---------------------------------------------------------------------------


def polygon_3d(shape: Polygon, rotate: int = 0) -> dict[str, Any]:
    ring = list(shape.exterior.coords)[:-1]
    ring = ring[rotate:] + ring[:rotate]
    return {"type": "Polygon", "coordinates": [[[x, y, 0] for x, y in [*ring, ring[0]]]]}


def area_feature(shape: Polygon, fill: str, fid: str, rotate: int = 0) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": fid,
        "geometry": polygon_3d(shape, rotate),
        "properties": {"name": NAMES.get(fill.lower(), "?"), "fill": fill, "fill-opacity": 0.5},
    }


def extras() -> list[dict[str, Any]]:
    """What every DeepState map also carries: a polygon no rule knows, units and arrows."""
    return [
        area_feature(LIBERATED, "#0f9d58", "lib"),
        area_feature(ODD, "#123456", "odd"),
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [37.5, 48.1, 0]},
            "properties": {"name": "Unit /// Unit /// unit", "description": "a brigade"},
        },
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[37.4, 48.0, 0], [37.5, 48.1, 0]]},
            "properties": {"name": "Arrow /// Arrow /// arrow"},
        },
    ]


def front(ua: Polygon | None, ua_fill: str = "#01579b", rotate: int = 0) -> list[dict[str, Any]]:
    features = [
        area_feature(RU_NEW, "#a52714", "ru-new"),
        area_feature(RU_OLD, "#880e4f", "ru-old"),
        area_feature(GREY_KURSK, "#bcaaa4", "grey-k"),
        area_feature(GREY_DONETSK, "#BDBDBD", "grey-d"),
        *extras(),
    ]
    if ua is not None:
        features.insert(0, area_feature(ua, ua_fill, "ua", rotate))
    return features


def fc(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def write(path: Path, document: Any) -> Path:
    path.write_bytes(orjson.dumps(document))
    return path


def deepstate_archive(folder: Path) -> Path:
    """Six snapshots: the first map, the same again (wrapped), UA ground grows, the same drawing
    in another order (wrapped, id only), UA ground gone from Kursk and Sumy, the same again."""
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "2024-08-20.geojson", fc(front(UA_A)))
    wrapped_b = {"id": 1724241600, "datetime": "2024-08-21T12:00:00", "map": fc(front(UA_A))}
    write(folder / "snapshot-b.json", wrapped_b)
    write(folder / "2024-08-25T06-00-00.geojson", fc(front(UA_B, ua_fill="#01579B")))
    reordered = list(reversed(front(UA_B, rotate=2)))
    d_moment = int(at("2024-08-26T00:00:00").timestamp())
    write(folder / "snapshot-d.json", {"id": d_moment, "map": fc(reordered)})
    ended_at = int(at("2025-03-20T00:00:00").timestamp())
    write(folder / f"{ended_at}.geojson", fc(front(None)))
    write(folder / "2025-03-21.geojson", fc(front(None)))
    return folder


# --- the database --------------------------------------------------------------------------------


@pytest.fixture
def repo(empty_engine: Engine) -> Store:
    repo = Store(empty_engine)
    seed(repo.db, DATA_DIR)
    repo.save_source(
        Source(SOURCE, "DeepStateMap", SourceKind.OSINT, None, "https://deepstatemap.live")
    )
    return repo


@pytest.fixture(params=["thread", "process"])
def preparing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Files made ready before their transaction by a thread (short runs) or a worker process
    (long runs, from PROCESS_FROM files): the same run either way."""
    monkeypatch.setattr(engine, "PROCESS_FROM", 1 if request.param == "process" else 10**9)
    return str(request.param)


def run(repo: Store, *paths: Path, **options: Any) -> ImportSummary:
    options.setdefault("rules", PROFILES["deepstate"])
    return Importer(repo.db, ImportOptions(source=SOURCE, **options)).run(list(paths))


def counts(repo: Store) -> dict[str, int]:
    """What the imports wrote (the seed timeline is from other sources)."""

    def n(table: Any, *where: Any) -> int:
        query = select(func.count()).select_from(table).where(*where)
        return int(c.execute(query).scalar_one())

    ours = observations.c.source == SOURCE
    with repo.engine.connect() as c:
        return {
            "drawn": n(observations, ours, observations.c.min_lon.is_not(None)),
            "ended": n(
                observations,
                ours,
                observations.c.min_lon.is_(None),
                observations.c.reported_region.is_not(None),
            ),
            "confirmations": n(confirmations),
            "import_files": n(import_files),
            "pieces": n(pieces, pieces.c.source == SOURCE),
        }


FULL_RUN = {"drawn": 4, "ended": 1, "confirmations": 12, "import_files": 6}
SKIPPED_PER_MAP = {
    "liberated (#0f9d58): ground retaken, not the extent of anyone's control": 1,
    "no rule matches (fill='#123456')": 1,
    "not territory (point)": 1,
    "not territory (line)": 1,
}


def kursk_km2(shape: Polygon, repo: Store) -> float:
    boundary = repo.region("kursk").boundary
    assert boundary is not None
    clipped = geo.clip(shape, boundary)
    assert clipped is not None
    return geo.geodesic_area_km2(clipped)


# --- the DeepState archive -----------------------------------------------------------------------


def test_a_deepstate_archive_becomes_the_kursk_series(
    repo: Store, tmp_path: Path, preparing: str
) -> None:
    archive = deepstate_archive(tmp_path / "archive")
    summary = run(repo, archive)
    assert summary.ok, summary.errors
    assert (summary.files_found, summary.files_read, summary.files_already_imported) == (6, 6, 0)
    assert (summary.observations, summary.confirmations, summary.ended) == (4, 12, 1)
    assert summary.features == 6 * 9 - 2
    assert summary.repaired == 0
    assert dict(summary.skipped) == {k: 6 * v for k, v in SKIPPED_PER_MAP.items()}
    assert {k: v for k, v in counts(repo).items() if k != "pieces"} == FULL_RUN

    # UA ground drawn over the border into Sumy is not UA-held ground in Ukraine: the profile's
    # rule for #01579b applies within Russia only, so Sumy has no piece of it.
    assert repo.history("sumy", PieceFilter(parties=["UA"], sources=[SOURCE])) == []

    # The "done means": the Kursk series out of the API, with a 0 where UA ground ended.
    app = create_app(Settings(database_url=str(repo.engine.url)), engine=repo.engine)
    with TestClient(app) as client:
        r = client.get(f"/regions/kursk/area?party=UA&status=controlled&source={SOURCE}")
    assert r.status_code == 200, r.text
    [series] = r.json()["series"]
    points = [(p["at"], p["area_km2"], p["kind"]) for p in series["points"]]
    assert points == [
        ("2024-08-20T00:00:00Z", pytest.approx(kursk_km2(UA_A, repo), abs=0.01), "measured"),
        ("2024-08-25T06:00:00Z", pytest.approx(kursk_km2(UA_B, repo), abs=0.01), "measured"),
        ("2025-03-20T00:00:00Z", 0, "measured"),
    ]

    # The grey zone and Russia's ground were drawn once and confirmed on every later map.
    with repo.engine.connect() as c:
        per_observation = dict(
            c.execute(
                select(confirmations.c.observation_id, func.count()).group_by(
                    confirmations.c.observation_id
                )
            ).all()
        )
        ru = c.execute(select(observations.c.id).where(observations.c.party == "RU")).scalar_one()
    assert per_observation[ru] == 5
    in_force = repo.in_force("donetsk", at("2025-03-22T00:00:00"), PieceFilter(sources=[SOURCE]))
    assert sorted((p.party or "-", str(p.status)) for p in in_force) == [
        ("-", "contested"),
        ("RU", "controlled"),
    ]

    # Run again: everything is already imported, nothing new is written.
    again = run(repo, archive)
    assert (again.files_already_imported, again.files_read, again.observations) == (6, 0, 0)
    assert {k: v for k, v in counts(repo).items() if k != "pieces"} == FULL_RUN


def test_a_dry_run_computes_everything_and_writes_nothing(repo: Store, tmp_path: Path) -> None:
    archive = deepstate_archive(tmp_path / "archive")
    before = counts(repo)
    summary = run(repo, archive, dry_run=True)
    assert summary.dry_run
    assert summary.ok
    assert (summary.observations, summary.confirmations, summary.ended) == (4, 12, 1)
    assert counts(repo) == before
    assert summary.lines()[0].startswith("dry run, nothing written: 6 files: 6 read")


def test_an_interrupted_import_resumes_without_duplicates(
    repo: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = deepstate_archive(tmp_path / "archive")
    finish = Imports.finish_file
    calls = {"n": 0}

    def interrupted(self: Imports, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the fourth file
        finish(self, *args, **kwargs)

    monkeypatch.setattr(Imports, "finish_file", interrupted)
    first = run(repo, archive)
    assert first.interrupted
    assert first.files_read == 3
    assert counts(repo)["import_files"] == 3  # the fourth file left nothing
    monkeypatch.setattr(Imports, "finish_file", finish)
    second = run(repo, archive)
    assert second.ok
    assert (second.files_already_imported, second.files_read) == (3, 3)
    assert {k: v for k, v in counts(repo).items() if k != "pieces"} == FULL_RUN


def test_a_boundary_changed_during_an_import_clips_the_maps_after_it_anew(
    repo: Store, tmp_path: Path, preparing: str
) -> None:
    """Maps are clipped to the regions before their transaction opens, against the boundaries
    the run read; when a boundary changes in the middle of the run, a map clipped against the
    old one is clipped again in its transaction, and the run takes the new boundaries for the
    maps after it: every piece is as a rebuild from scratch makes it."""
    kursk = repo.region("kursk")
    assert kursk.boundary is not None
    holed = geo.to_multipolygon(kursk.boundary.difference(box(35.3, 51.0, 35.5, 51.3)))
    written: list[str] = []

    class BoundaryChangedMidRun(Importer):
        def _import_file(self, *args: Any, **kwargs: Any) -> Any:
            result = super()._import_file(*args, **kwargs)
            written.append(args[0].name)
            if len(written) == 2:  # the third map (UA ground grows) is prepared by now
                repo.save_region("kursk", kursk.name, kursk.country, kursk.country_code, holed)
            return result

    options = ImportOptions(source=SOURCE, rules=PROFILES["deepstate"])
    summary = BoundaryChangedMidRun(repo.db, options).run([deepstate_archive(tmp_path / "a")])
    assert summary.ok, summary.errors
    assert written[2] == "2024-08-25T06-00-00.geojson"

    def stored() -> list[tuple[int, str, float]]:
        with repo.engine.connect() as c:
            query = select(pieces.c.observation_id, pieces.c.region, pieces.c.area_km2)
            rows = c.execute(query.where(pieces.c.source == SOURCE)).all()
        return sorted((o, r, round(a, 6)) for o, r, a in rows)

    as_imported = stored()
    repo.rebuild_pieces()
    assert as_imported == stored()
    grown = [a for _, region, a in as_imported if region == "kursk"]
    assert max(grown) == pytest.approx(kursk_km2(UA_B, repo), rel=1e-6)  # the holed Kursk


def test_a_run_whose_worker_dies_goes_on_without_it(repo: Store, tmp_path: Path) -> None:
    """A long run prepares its files in a worker process; if that process dies (killed, out of
    memory), the run prepares the rest itself and imports the same."""
    killed: list[int] = []

    class WorkerKilled(Importer):
        def _import_file(self, *args: Any, **kwargs: Any) -> Any:
            result = super()._import_file(*args, **kwargs)
            if not killed:
                assert self._ahead is not None
                assert self._ahead.process
                for process in self._ahead._pool._processes.values():  # type: ignore[attr-defined]
                    process.kill()
                    killed.append(process.pid)
            return result

    options = ImportOptions(source=SOURCE, rules=PROFILES["deepstate"])
    importer = WorkerKilled(repo.db, options)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "PROCESS_FROM", 1)
        summary = importer.run([deepstate_archive(tmp_path / "a")])
    assert killed
    assert summary.ok, summary.errors
    assert (summary.observations, summary.confirmations, summary.ended) == (4, 12, 1)
    assert {k: v for k, v in counts(repo).items() if k != "pieces"} == FULL_RUN


def test_an_unchanged_map_after_ended_ground_is_drawn_again(repo: Store, tmp_path: Path) -> None:
    """A drawing equal to an older head whose ground has ended since is not a confirmation."""
    write(tmp_path / "2024-08-20.geojson", fc(front(UA_A)))
    write(tmp_path / "2024-08-21.geojson", fc(front(None)))
    write(tmp_path / "2024-08-22.geojson", fc(front(UA_A)))
    run(repo, tmp_path / "2024-08-20.geojson")
    run(repo, tmp_path / "2024-08-21.geojson")
    summary = run(repo, tmp_path / "2024-08-22.geojson")  # a new run: nothing in memory
    assert summary.observations == 1
    kursk = repo.history("kursk", PieceFilter(parties=["UA"], sources=[SOURCE]))
    assert [p.area_km2 == 0 for p in kursk] == [False, True, False]


# --- other formats -------------------------------------------------------------------------------

RULES_TOML = """
[[rules]]
match = { side = ["ua", "ukraine"] }
party = "UA"
status = "controlled"

[[rules]]
match = { side = "grey" }
status = "contested"

[[rules]]
match = { side = "ignore" }
skip = true
reason = "marked ignore"
"""


def frame(shape: Polygon, point: bool = True, **properties: Any) -> gpd.GeoDataFrame:
    rows = [
        {"side": "ua", "name": "ours", **properties, "geometry": shape},
        {"side": "ignore", "name": "note", **properties, "geometry": box(35.3, 51.3, 35.35, 51.32)},
    ]
    if point:  # a Shapefile holds one kind of geometry
        rows.append({"side": "ua", "name": "hq", **properties, "geometry": Point(35.3, 51.2)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")


def widths() -> list[Polygon]:
    return [box(35.2, 51.15, 35.2 + 0.05 * i, 51.25) for i in range(1, 6)]


def test_geopackage_shapefile_kml_and_newline_delimited(repo: Store, tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text(RULES_TOML)
    folder = tmp_path / "maps"
    folder.mkdir()
    shapes = widths()
    frame(shapes[0]).to_file(folder / "a-2024-09-01.gpkg", driver="GPKG")
    frame(shapes[1], point=False).to_file(folder / "b-2024-09-02.shp")
    frame(shapes[2]).to_file(folder / "c-2024-09-03.kml", driver="KML", layer="maps")
    lines = [
        orjson.dumps({"type": "Feature", "geometry": mapping(s), "properties": {"side": side}})
        for s, side in [(shapes[3], "UA"), (GREY_KURSK, "grey"), (LIBERATED, "nobody")]
    ]
    (folder / "d-2024-09-04.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    (folder / "e-2024-09-05.geojsons").write_bytes(b"".join(b"\x1e" + x + b"\n" for x in lines))

    summary = run(repo, folder, rules=load_rules(tmp_path / "rules.toml"))
    assert summary.ok, summary.errors
    assert summary.files_read == 5
    assert summary.skipped["marked ignore"] == 3
    assert summary.skipped["not territory (point)"] == 2
    assert summary.skipped["no rule matches (side='nobody')"] == 2
    ua = repo.history("kursk", PieceFilter(parties=["UA"], sources=[SOURCE]))
    assert [p.valid_from.date().isoformat() for p in ua] == [
        "2024-09-01",
        "2024-09-02",
        "2024-09-03",
        "2024-09-04",
    ]  # the fifth map draws the fourth's ground again: a confirmation
    assert [p.area_km2 for p in ua] == [pytest.approx(kursk_km2(s, repo)) for s in shapes[:4]]
    assert summary.confirmations == 2  # the grey zone and UA ground of the fifth map

    # A moment from a property, in a GeoPackage whose name has none.
    frame(shapes[4], date="2024-10-01").to_file(tmp_path / "undated.gpkg", driver="GPKG")
    by_property = run(
        repo,
        tmp_path / "undated.gpkg",
        rules=load_rules(tmp_path / "rules.toml"),
        time_property="date",
    )
    assert by_property.ok, by_property.errors
    latest = repo.history("kursk", PieceFilter(parties=["UA"], sources=[SOURCE]))[-1]
    assert latest.valid_from == at("2024-10-01T00:00:00")
    assert latest.area_km2 == pytest.approx(kursk_km2(shapes[4], repo))


# --- broken files --------------------------------------------------------------------------------

BOWTIE = {
    "type": "Polygon",
    "coordinates": [[[35.2, 51.15], [35.4, 51.25], [35.4, 51.15], [35.2, 51.25], [35.2, 51.15]]],
}


def broken_archive(folder: Path) -> Path:
    folder.mkdir()
    write(folder / "2024-08-20.geojson", fc(front(UA_A)))
    (folder / "2024-08-21.geojson").write_text('{"type": "FeatureCollection", "features": [')
    bowtie = {
        "type": "Feature",
        "id": "bow",
        "geometry": BOWTIE,
        "properties": {"name": NAMES["#01579b"], "fill": "#01579b"},
    }
    write(folder / "2024-08-22.geojson", fc([bowtie, *front(None)]))
    return folder


def test_a_broken_file_stops_the_run_or_is_skipped_with_keep_going(
    repo: Store, tmp_path: Path, preparing: str
) -> None:
    folder = broken_archive(tmp_path / "maps")
    write(folder / "no-date.geojson", fc(front(UA_A)))
    stopped = run(repo, folder)
    [error] = stopped.errors
    assert error.startswith("no-date.geojson: no moment")
    assert stopped.files_not_reached == 3
    assert counts(repo)["import_files"] == 0  # nothing imported before the plan was sound

    kept = run(repo, folder, keep_going=True)
    assert not kept.ok
    assert (kept.files_read, kept.files_failed) == (2, 2)
    assert any(e.startswith("2024-08-21.geojson: not valid JSON") for e in kept.errors)
    assert kept.repaired == 1  # the bowtie, repaired with make_valid
    assert counts(repo)["import_files"] == 2


def test_strict_refuses_an_invalid_polygon_naming_file_and_feature(
    repo: Store, tmp_path: Path
) -> None:
    folder = broken_archive(tmp_path / "maps")
    (folder / "2024-08-21.geojson").unlink()
    summary = run(repo, folder, strict=True)
    [error] = summary.errors
    assert error.startswith(
        f'2024-08-22.geojson: feature 0 (id "bow", name "{NAMES["#01579b"]}"): '
        "invalid polygon (Self-intersection"
    )
    assert "--strict" in error
    assert counts(repo)["import_files"] == 1  # the good file; nothing of the refused one
    assert counts(repo)["drawn"] == 3


# --- the command line ----------------------------------------------------------------------------


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "import", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def test_the_import_command(repo: Store, tmp_path: Path) -> None:
    url = repo.engine.url.render_as_string(hide_password=False)
    helped = cli("--help", url=url)
    assert helped.returncode == 0
    for option in ("--source", "--profile", "--rules", "--dry-run", "--strict", "--time-property"):
        assert option in helped.stdout

    archive = deepstate_archive(tmp_path / "archive")
    unknown = cli(str(archive), "--source", "nope", "--profile", "deepstate", url=url)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: unknown source 'nope'. Known sources: deepstate, ")

    dry = cli(str(archive), "--source", SOURCE, "--profile", "deepstate", "--dry-run", url=url)
    assert dry.returncode == 0, dry.stderr
    assert "observations written: 4" in dry.stdout
    assert counts(repo)["import_files"] == 0

    done = cli(str(archive), "--source", SOURCE, "--profile", "deepstate", url=url)
    assert done.returncode == 0, done.stderr
    assert "6 files: 6 read, 0 already imported, 0 failed" in done.stdout
    assert "unchanged confirmations: 12" in done.stdout
    assert "ended records: 1" in done.stdout
    assert "import: 100%" in done.stderr  # the progress bar
    assert {k: v for k, v in counts(repo).items() if k != "pieces"} == FULL_RUN


# --- moments and rules, without a database -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2024-08-20.geojson", "2024-08-20T00:00:00+00:00"),
        ("deepstate-2024-08-20T13-45-10.json", "2024-08-20T13:45:10+00:00"),
        ("maps/2024-08-20_0630.gpkg", "2024-08-20T06:30:00+00:00"),
        ("1724241600.json", "2024-08-21T12:00:00+00:00"),
        ("snapshot.json", None),
        ("2024-13-45.json", None),
    ],
)
def test_moments_from_file_names(name: str, expected: str | None) -> None:
    found = moments.from_filename(name)
    assert (found.isoformat() if found else None) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-08-21", "2024-08-21T00:00:00+00:00"),
        ("2024-08-21 12:00:00", "2024-08-21T12:00:00+00:00"),
        ("2024-08-21T15:00:00+03:00", "2024-08-21T12:00:00+00:00"),
        (1724241600, "2024-08-21T12:00:00+00:00"),
        ("1724241600", "2024-08-21T12:00:00+00:00"),
        ("yesterday", None),
    ],
)
def test_moments_from_values(value: object, expected: str | None) -> None:
    found = moments.from_value(value)
    assert (found.isoformat() if found else None) == expected


def test_deepstate_rules_compare_colours_without_case() -> None:
    rules = PROFILES["deepstate"]
    assert rules.classify({"fill": "#A52714"}) == ("RU", "controlled")
    assert rules.classify({"fill": " #880E4F"}) == ("RU", "controlled")
    assert rules.classify({"fill": "#bdbdbd"}) == (None, "contested")
    assert rules.classify({"fill": "#01579b"}) == ("UA", "controlled")


# --- rules scoped by country ---------------------------------------------------------------------

KURSK_SUMY = box(34.9, 50.9, 35.7, 51.5)  # across the Kursk (RU) / Sumy (UA) border
KHARKIV_BELGOROD = box(36.0, 50.2, 36.9, 50.7)  # across the Kharkiv (UA) / Belgorod (RU) border
BELGOROD_ONLY = box(37.0, 50.8, 37.2, 50.9)  # wholly in Belgorod


def country_ground(repo: Store, code: str) -> Any:
    return shapely.union_all([r.boundary for r in repo.regions() if r.country_code == code])


def test_scoped_rules_clip_a_map_that_straddles_the_border(repo: Store, tmp_path: Path) -> None:
    """DeepState's UA colour counts only in Russia, its occupied colours only in Ukraine; the
    colours whose meaning is not established are skipped, each under a reason that says so."""
    folder = tmp_path / "maps"
    folder.mkdir()
    # The day before, the only ground drawn in the RU colour lies in Russia: nothing to store.
    write(folder / "2024-12-31.geojson", fc([area_feature(BELGOROD_ONLY, "#880e4f", "ru")]))
    features = [
        area_feature(KURSK_SUMY, "#01579b", "ua"),
        area_feature(KHARKIV_BELGOROD, "#a52714", "ru"),
        area_feature(box(37.0, 48.5, 37.1, 48.6), "#ff5252", "red"),
        area_feature(box(37.2, 48.5, 37.3, 48.6), "#0288d1", "blue"),
    ]
    write(folder / "2025-01-01.geojson", fc(features))
    summary = run(repo, folder)
    assert summary.ok, summary.errors
    assert summary.observations == 2
    assert dict(summary.skipped) == {
        "outside UA (the rule applies within UA only)": 1,
        "#ff5252: meaning not established (likely Russian attack arrows), not counted as ground": 1,
        "#0288d1: meaning not established (likely Ukrainian attack arrows), "
        "not counted as ground": 1,
    }
    moment = at("2025-01-01T00:00:00")
    where = {}
    for region in ("kursk", "sumy", "kharkiv", "belgorod"):
        where[region] = {
            p.party: p.area_km2
            for p in repo.in_force(region, moment, PieceFilter(sources=[SOURCE]))
        }
    assert where["sumy"] == {}  # the UA colour over the border: not UA ground in Ukraine
    assert set(where["belgorod"]) == {"UA"}  # the Kursk salient's tip reaches Belgorod; RU: none
    assert where["kursk"] == {"UA": pytest.approx(kursk_km2(KURSK_SUMY, repo), abs=0.01)}
    kharkiv = repo.region("kharkiv").boundary
    assert kharkiv is not None
    expected = geo.geodesic_area_km2(geo.clip(KHARKIV_BELGOROD, kharkiv))
    assert where["kharkiv"] == {"RU": pytest.approx(expected, abs=0.01)}

    # The observations themselves hold the clipped ground, not the drawing over the border.
    with repo.engine.connect() as c:
        query = select(observations.c.party, observations.c.geometry)
        stored = dict(c.execute(query.where(observations.c.source == SOURCE)).all())
    for party, drawn, country in (("UA", KURSK_SUMY, "RU"), ("RU", KHARKIV_BELGOROD, "UA")):
        geometry = stored[party]
        inside = geo.clip(drawn, country_ground(repo, country))
        assert geo.geodesic_area_km2(geometry) == pytest.approx(
            geo.geodesic_area_km2(inside), rel=1e-6
        )
        assert geo.geodesic_area_km2(geometry) < geo.geodesic_area_km2(drawn) - 100


def test_a_rule_scoped_to_a_country_without_regions_is_refused(repo: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "rules.json",
        [{"match": {"fill": "#a52714"}, "party": "RU", "within": {"country": "BY"}}],
    )
    with pytest.raises(InvalidInput, match=r"scoped to countries without regions \['by'\]"):
        run(repo, tmp_path, rules=load_rules(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "a non-empty list of rules"),
        ('[{"party": "UA"}]', "rule 0: 'match' must be an object"),
        ('[{"match": {"a": 1}, "status": "held"}]', "rule 0: status must be one of"),
        ('[{"match": {"a": 1}, "colour": "red"}]', "rule 0: unknown keys ['colour']"),
        ("[{", "not valid JSON"),
        ('[{"match": {"a": 1}, "within": "RU"}]', "rule 0: 'within' must be {\"country\""),
        ('[{"match": {"a": 1}, "within": {"oblast": "x"}}]', "rule 0: 'within' must be"),
        ('[{"match": {"a": 1}, "within": {"country": [""]}}]', "must be non-empty strings"),
    ],
)
def test_a_bad_rules_file_is_refused_with_where(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "rules.json"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        load_rules(path)
