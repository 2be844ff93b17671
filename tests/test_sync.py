"""``frontline sync``: DeepStateMap's API and an ArcGIS FeatureServer layer, stood in for by
local HTTP servers that speak their exact formats, on a real SQLite file and a real PostGIS.

The fakes serve snapshots generated here (polygons in Donetsk and Kursk, DeepState's colours,
``[lon, lat, 0]`` coordinates, points) and misbehave on request: slow answers, 429s, 500s,
bodies shorter than their Content-Length, invalid JSON, a changed format.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Polygon, box
from sqlalchemy import Engine

from app.api.app import create_app
from app.domain import geometry as geo
from app.domain.timeutil import isoformat
from app.feeds import schedule
from app.feeds.arcgis import ArcGISSync
from app.feeds.deepstate import DeepStateSync
from app.feeds.http import Client, Politeness, user_agent
from app.feeds.run import SyncOptions, SyncReport
from app.importer.rules import PROFILES
from app.seed import seed
from app.settings import PROJECT_ROOT, Settings
from app.storage.pieces import PieceFilter
from tests.conftest import DATA_DIR
from tests.store import Store

UTC = dt.UTC
CONTACT = "sync-tests@frontline.local"
FAST = Politeness(contact=CONTACT, min_interval=0, timeout=0.5, retries=3, backoff=0.01)

RU_1 = box(37.45, 46.85, 37.9, 48.2)  # Donetsk, from the front down into the Sea of Azov
RU_2 = box(37.45, 46.85, 37.9, 48.3)  # grown
UA_KURSK = box(35.2, 51.15, 35.4, 51.25)  # Kursk
GREY = box(37.9, 48.0, 38.0, 48.2)
LIBERATED = box(36.5, 49.5, 36.7, 49.7)
ARROW = box(37.0, 47.5, 37.05, 47.6)  # a #ff5252 polygon: skipped, not ground

DAY = 86400
IDS = [1735689600, 1735689600 + DAY, 1735689600 + 2 * DAY]  # 1, 2 and 3 January 2025


def polygon(shape: Polygon, fill: str, name: str) -> dict[str, Any]:
    ring = list(shape.exterior.coords)
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[x, y, 0] for x, y in ring]]},
        "properties": {"name": name, "fill": fill, "stroke": fill, "fill-opacity": 0.3},
    }


def deepstate_map(ru: Polygon) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            polygon(ru, "#a52714", "Окуповано /// Occupied /// geoJSON.status.occupied"),
            polygon(UA_KURSK, "#01579b", "ЗСУ /// AFU /// geoJSON.status.ua"),  # noqa: RUF001
            polygon(GREY, "#bcaaa4", "Невідомо /// Unknown /// geoJSON.status.unknown"),
            polygon(LIBERATED, "#0f9d58", "Звільнено /// Liberated /// geoJSON.status.liberated"),
            polygon(ARROW, "#ff5252", "arrow"),
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [37.5, 48.1, 0]},
                "properties": {"name": "unit", "description": "a brigade"},
            },
        ],
    }


def published(shapes: dict[str, Polygon], off: dict[str, float] | None = None) -> list[Any]:
    """DeepState's /areas for a map: its own figure per fill (``off`` skews one, in %)."""
    types = {"#a52714": "occupied_after_24_02_2022", "#bcaaa4": "unspecified"}
    out = []
    for fill, shape in shapes.items():
        km2 = geo.geodesic_area_km2(shape) * (1 + (off or {}).get(fill, 0) / 100)
        out.append({"hash": fill, "area": round(km2, 3), "percent": 0.1, "type": types[fill]})
    return out


# --- the fake upstream -----------------------------------------------------------------------


@dataclass
class Fake:
    """What the fake server answers, how it misbehaves, and what it was asked."""

    routes: dict[str, Callable[[dict[str, list[str]]], tuple[int, bytes]]] = field(
        default_factory=dict
    )
    faults: dict[str, list[str]] = field(default_factory=dict)  # path -> faults, in turn
    log: list[tuple[float, str, str]] = field(default_factory=list)  # (time, path, user agent)
    slow_seconds: float = 1.5

    def asked(self, path: str) -> int:
        return sum(1 for _, p, _ in self.log if urlsplit(p).path == path)


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        fake.log.append((time.monotonic(), self.path, self.headers.get("User-Agent", "")))
        pending = fake.faults.get(parts.path) or []
        fault = pending.pop(0) if pending else None
        if fault == "slow":
            time.sleep(fake.slow_seconds)
        if fault in ("429", "500", "503"):
            return self._send(int(fault), b'{"message": "not now"}', {"Retry-After": "0"})
        route = fake.routes.get(parts.path)
        status, body = route(parse_qs(parts.query)) if route else (404, b'{"error":"not found"}')
        if fault == "truncate":  # announce the whole body, send half, hang up
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        if fault == "badjson":
            body = body[: len(body) // 2]
        return self._send(status, body)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: Fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left: expected here


@pytest.fixture
def fake() -> Iterator[tuple[Fake, str]]:
    server = Server(("127.0.0.1", 0), Handler)
    server.fake = Fake()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def json_route(document: Any) -> Callable[[dict[str, list[str]]], tuple[int, bytes]]:
    body = orjson.dumps(document)
    return lambda query: (200, body)


def serve_deepstate(fake: Fake, snapshots: dict[int, tuple[Any, Any]]) -> None:
    """/api/history/public, and each snapshot's /geojson and /areas (None: 404)."""
    fake.routes["/api/history/public"] = json_route(
        [
            {
                "id": sid,
                "datetime": dt.datetime.fromtimestamp(sid, UTC).strftime("%d.%m.%Y %H:%M"),
                "description": "Оновлення мапи",
                "descriptionEn": "Map update",
                "updatedAt": "2025-01-01T00:00:00.000Z",
                "createdAt": "2025-01-01T00:00:00.000Z",
                "status": True,
            }
            for sid in snapshots
        ]
    )
    for sid, (document, areas) in snapshots.items():
        fake.routes[f"/api/history/{sid}/geojson"] = json_route(document)
        if areas is not None:
            fake.routes[f"/api/history/{sid}/areas"] = json_route(areas)


def three_snapshots(fake: Fake) -> None:
    """1 Jan: areas published; 2 Jan: RU ground grows, /areas is 404; 3 Jan: the same map,
    but DeepState's figure for #a52714 is 10 % above the drawing (a corrupt download, say)."""
    serve_deepstate(
        fake,
        {
            IDS[0]: (deepstate_map(RU_1), published({"#a52714": RU_1, "#bcaaa4": GREY})),
            IDS[1]: (deepstate_map(RU_2), None),
            IDS[2]: (
                deepstate_map(RU_2),
                published({"#a52714": RU_2, "#bcaaa4": GREY}, off={"#a52714": 10}),
            ),
        },
    )


@pytest.fixture
def repo(empty_engine: Engine) -> Store:
    repo = Store(empty_engine)
    seed(repo.db, DATA_DIR)
    return repo


def sync_deepstate(
    repo: Store, url: str, archive: Path, politeness: Politeness = FAST, **kw: Any
) -> tuple[SyncReport, Client]:
    with Client(politeness) as client:
        options = SyncOptions(archive=archive, **kw)
        report = DeepStateSync(repo.db, client, f"{url}/api", options, tolerance_pct=2.0).run()
    return report, client


def archived(archive: Path) -> list[str]:
    return sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())


def at(sid: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(sid, UTC)


def clipped_km2(repo: Store, shape: Polygon, region: str) -> float:
    boundary = repo.region(region).boundary
    assert boundary is not None
    part = geo.clip(shape, boundary)
    assert part is not None
    return geo.geodesic_area_km2(part)


# --- DeepStateMap ----------------------------------------------------------------------------


def test_sync_downloads_imports_and_checks_areas(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    three_snapshots(server)
    archive = tmp_path / "deepstate"
    report, client = sync_deepstate(repo, url, archive)
    assert report.ok, report.lines()
    assert (report.listed, report.downloaded, report.already) == (3, 3, 0)
    assert archived(archive) == [
        f"areas/{IDS[0]}.json",
        f"areas/{IDS[1]}.missing",
        f"areas/{IDS[2]}.json",
        "history.json",
        *(f"maps/{sid}.geojson" for sid in IDS),
    ]
    # Raw files exactly as served.
    assert (archive / f"maps/{IDS[0]}.geojson").read_bytes() == orjson.dumps(deepstate_map(RU_1))
    # Polite: one request per resource, each naming the project and the contact.
    assert client.requests == 1 + 3 * 2
    assert client.retried == 0
    assert {ua for _, _, ua in server.log} == {user_agent(CONTACT)}
    assert "frontline-atlas/" in user_agent(CONTACT)
    assert CONTACT in user_agent(CONTACT)

    # Imported with the deepstate profile: RU ground in Donetsk grew on 2 Jan.
    assert report.imported is not None
    assert (report.imported.files_read, report.imported.observations) == (3, 4)
    skipped = report.imported.skipped
    assert skipped[PROFILES["deepstate"].rule_for({"fill": "#ff5252"}).reason] == 3  # type: ignore[union-attr]
    donetsk = repo.history("donetsk", PieceFilter(parties=["RU"], sources=["deepstate"]))
    assert [(p.valid_from, round(p.area_km2 or 0, 6)) for p in donetsk] == [
        (at(IDS[0]), round(clipped_km2(repo, RU_1, "donetsk"), 6)),
        (at(IDS[1]), round(clipped_km2(repo, RU_2, "donetsk"), 6)),
    ]
    [kursk] = repo.in_force("kursk", at(IDS[2]), PieceFilter(sources=["deepstate"]))
    assert kursk.party == "UA"
    assert kursk.area_km2 == pytest.approx(clipped_km2(repo, UA_KURSK, "kursk"))

    # DeepState's own figures next to ours: 1 Jan agrees, 2 Jan had none, 3 Jan is flagged.
    stored = {s.snapshot: s for s in repo.published_of("deepstate")}
    assert list(stored) == [str(sid) for sid in IDS]
    first = {a.fill: a for a in stored[str(IDS[0])].areas}
    assert set(first) == {"#a52714", "#bcaaa4"}
    assert first["#a52714"].measured_km2 == pytest.approx(geo.geodesic_area_km2(RU_1), rel=1e-9)
    # Measured as drawn, like DeepState's figure: the sea is in it, not in Donetsk's piece.
    assert first["#a52714"].measured_km2 > clipped_km2(repo, RU_1, "donetsk") + 800
    assert abs(first["#a52714"].difference_pct or 0) < 0.01
    assert first["#a52714"].kind == "occupied_after_24_02_2022"
    assert not stored[str(IDS[0])].flagged
    assert not stored[str(IDS[1])].published
    [flagged] = stored[str(IDS[2])].flagged
    assert flagged.fill == "#a52714"
    assert flagged.difference_pct == pytest.approx(100 / 1.1 - 100, abs=0.01)
    [note] = report.notes
    assert f"snapshot {IDS[1]}" in note
    assert "(404)" in note
    assert "without the cross-check" in note
    [warning] = report.warnings
    assert f"snapshot {IDS[2]}" in warning
    assert "DeepState says" in warning
    assert "measured here" in warning
    assert "beyond the 2 % tolerance" in warning

    # Ukraine's total after the sync: the clipped sum over its regions, and the drawing as
    # drawn, which is what DeepState publishes (the sea is in it).
    app = create_app(Settings(database_url=str(repo.engine.url)), engine=repo.engine)
    with TestClient(app) as http:
        body = http.get(
            "/regions/ukraine/area", params={"party": "RU", "source": "deepstate"}
        ).json()
    [series] = body["series"]
    first_total = series["points"][0]
    assert first_total["at"] == isoformat(at(IDS[0]))
    assert first_total["area_km2"] == pytest.approx(clipped_km2(repo, RU_1, "donetsk"), abs=0.1)
    assert first_total["drawn_area_km2"] == pytest.approx(first["#a52714"].published_km2, abs=0.1)
    assert list(first_total["regions"]) == ["donetsk"]

    # Run again: only the list is asked for; nothing is downloaded or written again.
    server.log.clear()
    again, client = sync_deepstate(repo, url, archive)
    assert again.ok, again.lines()
    assert (again.downloaded, again.already, client.requests) == (0, 3, 1)
    assert again.imported is not None
    assert (again.imported.files_already_imported, again.imported.observations) == (3, 0)
    assert again.warnings == []
    assert again.notes == []


def test_since_takes_only_later_snapshots(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    three_snapshots(server)
    report, _ = sync_deepstate(repo, url, tmp_path / "a", since=at(IDS[1]))
    assert (report.listed, report.downloaded) == (2, 2)
    assert server.asked(f"/api/history/{IDS[0]}/geojson") == 0


def test_slow_answers_429_500_and_truncated_bodies_are_retried(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    three_snapshots(server)
    server.faults = {
        "/api/history/public": ["slow"],  # no answer within the 0.5 s timeout, then fine
        f"/api/history/{IDS[0]}/geojson": ["429", "500"],
        f"/api/history/{IDS[1]}/geojson": ["truncate"],  # Content-Length larger than the body
        f"/api/history/{IDS[2]}/areas": ["badjson"],  # half a JSON document
    }
    report, client = sync_deepstate(repo, url, tmp_path / "archive")
    assert report.ok, report.lines()
    assert report.downloaded == 3
    assert server.asked("/api/history/public") == 2
    assert server.asked(f"/api/history/{IDS[0]}/geojson") == 3
    assert server.asked(f"/api/history/{IDS[1]}/geojson") == 2
    assert server.asked(f"/api/history/{IDS[2]}/areas") == 2
    assert client.retried == 5
    for sid in IDS:  # every file whole, as served
        path = tmp_path / "archive" / "maps" / f"{sid}.geojson"
        assert orjson.loads(path.read_bytes())["type"] == "FeatureCollection"
    assert report.imported is not None
    assert report.imported.files_read == 3


def test_backoff_doubles_and_honours_the_interval(fake: tuple[Fake, str]) -> None:
    server, url = fake
    server.routes["/x"] = json_route({"ok": True})
    server.faults["/x"] = ["503", "503"]
    polite = Politeness(contact=CONTACT, min_interval=0.3, timeout=2, retries=2, backoff=0.2)
    with Client(polite) as client:
        assert client.get_json(f"{url}/x", what="x") == {"ok": True}
        assert client.get_json(f"{url}/x", what="x") == {"ok": True}
    times = [t for t, _, _ in server.log]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4
    slack = 0.02  # times are taken as the server reads each request, not as the client sends it
    assert gaps[0] >= 0.3 - slack  # the first backoff (0.2 s) is shorter than the interval
    assert gaps[1] >= 0.4 - slack  # the second is doubled
    assert gaps[2] >= 0.3 - slack  # never faster than one request per interval


def test_an_upstream_that_stays_down_is_one_clear_error_and_a_rerun_resumes(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    three_snapshots(server)
    broken = f"/api/history/{IDS[1]}/geojson"
    server.faults[broken] = ["500"] * 4  # every attempt (1 + 3 retries)
    archive = tmp_path / "archive"
    report, _ = sync_deepstate(repo, url, archive)
    assert not report.ok
    assert report.error is not None
    assert "\n" not in report.error
    assert f"{url}{broken} gave HTTP 500 on each of 4 attempts" in report.error
    assert "the feed looks down" in report.error
    assert server.asked(broken) == 4
    # The first snapshot was complete and is imported; nothing of the second or third.
    assert archived(archive) == [
        f"areas/{IDS[0]}.json",
        "history.json",
        f"maps/{IDS[0]}.geojson",
    ]
    assert report.imported is not None
    assert report.imported.files_read == 1
    assert repo.published_snapshots("deepstate") == {str(IDS[0])}

    again, _ = sync_deepstate(repo, url, archive)
    assert again.ok, again.lines()
    assert (again.downloaded, again.already) == (2, 1)
    assert again.imported is not None
    assert (again.imported.files_read, again.imported.files_already_imported) == (2, 1)
    assert repo.published_snapshots("deepstate") == {str(s) for s in IDS}


def test_a_body_always_cut_short_leaves_nothing_half_written(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    three_snapshots(server)
    server.faults[f"/api/history/{IDS[0]}/geojson"] = ["truncate"] * 4
    archive = tmp_path / "archive"
    (archive / "maps").mkdir(parents=True)
    (archive / "maps" / f".{IDS[0]}.geojson.x.part").write_bytes(b'{"type": "Feat')  # a crash
    report, _ = sync_deepstate(repo, url, archive)
    assert report.error is not None
    assert "network error (RemoteProtocolError" in report.error
    assert report.partial_removed == 1
    assert archived(archive) == ["history.json"]
    assert report.imported is None
    assert repo.history("donetsk", PieceFilter(sources=["deepstate"])) == []


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([{"datetime": "01.01.2025 00:00", "status": True}], "entry 0 has no usable 'id'"),
        ({"items": []}, "expected a JSON array of {id, datetime, ...}"),
    ],
)
def test_a_changed_format_is_named_and_not_retried(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path, history: Any, message: str
) -> None:
    server, url = fake
    server.routes["/api/history/public"] = json_route(history)
    report, client = sync_deepstate(repo, url, tmp_path / "archive")
    assert report.error is not None
    assert "DeepStateMap /history/public changed its format" in report.error
    assert message in report.error
    assert client.requests == 1
    assert not (tmp_path / "archive" / "maps").exists()


def test_a_changed_snapshot_format_stops_before_writing_it(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    three_snapshots(server)
    server.routes[f"/api/history/{IDS[0]}/geojson"] = json_route({"map": deepstate_map(RU_1)})
    report, _ = sync_deepstate(repo, url, tmp_path / "archive")
    assert report.error is not None
    assert f"/history/{IDS[0]}/geojson changed its format" in report.error
    assert not (tmp_path / "archive" / "maps").exists()


def test_a_map_the_importer_refuses_is_reported_not_cross_checked(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    broken = {"type": "FeatureCollection", "features": [42]}
    serve_deepstate(server, {IDS[0]: (broken, published({"#a52714": RU_1}))})
    report, _ = sync_deepstate(repo, url, tmp_path / "archive")
    assert report.downloaded == 1
    assert report.imported is not None
    [error] = report.imported.errors
    assert error.startswith(f"{IDS[0]}.geojson: ")
    [warning] = report.warnings
    assert warning.startswith(f"snapshot {IDS[0]}: not cross-checked: {IDS[0]}.geojson: ")
    assert not report.ok


# --- the command -----------------------------------------------------------------------------


def _env(repo: Store, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": repo.engine.url.render_as_string(hide_password=False),
        "ARCHIVE_DIR": str(tmp_path / "archive"),
        "SYNC_CONTACT": CONTACT,
        "SYNC_MIN_INTERVAL": "0",
        "SYNC_BACKOFF": "0.01",
        "SYNC_TIMEOUT": "2",
        **extra,
    }


def frontline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def test_the_command_says_what_went_wrong_in_one_line(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    server.routes["/api/history/public"] = json_route([{"when": "today"}])
    done = frontline(
        "sync", "deepstate", "--api-url", f"{url}/api", "--no-progress", env=_env(repo, tmp_path)
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    [error] = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert "changed its format: entry 0 has no usable 'id'" in error

    three_snapshots(server)
    done = frontline(
        "sync", "deepstate", "--api-url", f"{url}/api", "--no-progress", env=_env(repo, tmp_path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deepstate: 3 snapshots offered, 3 downloaded, 0 already in the archive" in done.stdout
    assert f"snapshot {IDS[2]}" in done.stdout
    assert "beyond the 2 % tolerance" in done.stdout
    assert (tmp_path / "archive" / "deepstate" / "maps" / f"{IDS[0]}.geojson").exists()


def test_every_runs_until_sigterm_and_stops_cleanly(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    three_snapshots(server)
    args = ["sync", "deepstate", "--api-url", f"{url}/api", "--every", "1h", "--no-progress"]
    process = subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(repo, tmp_path),
        cwd=PROJECT_ROOT,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # the first run's report, then it waits an hour
        assert first.startswith("deepstate: 3 snapshots offered, 3 downloaded"), first
        deadline = time.monotonic() + 60
        while server.asked("/api/history/public") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "stopped: what was downloaded and imported stays" in out
    assert "Traceback" not in err
    assert server.asked("/api/history/public") == 1  # one run, not a busy loop


def test_every_reports_a_failed_run_and_tries_again_at_its_time() -> None:
    """The feed down for one run is a line in the log, not the end of the service."""
    stop = threading.Event()
    reports = [
        SyncReport("deepstate", error="… gave HTTP 500 on each of 5 attempts"),
        SyncReport("deepstate", listed=2, already=2),
    ]
    calls: list[float] = []

    def once() -> SyncReport:
        calls.append(time.monotonic())
        if len(calls) == 2:
            stop.set()  # as SIGTERM does, once the second run is under way
        return reports[len(calls) - 1]

    out = io.StringIO()
    before = signal.getsignal(signal.SIGINT)
    assert schedule.run(once, 0.2, stop, out) == 0
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are given back
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.2 - 0.02
    lines = out.getvalue().splitlines()
    assert lines[1] == "error: … gave HTTP 500 on each of 5 attempts"
    assert lines[2].startswith("deepstate: 2 snapshots offered, 0 downloaded, 2 already")
    assert lines[-1].startswith("stopped:")
    assert schedule.run(lambda: reports[0], None, threading.Event(), io.StringIO()) == 1


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("2", 2)])
def test_every_durations(text: str, seconds: float) -> None:
    assert schedule.parse_every(text) == seconds
    with pytest.raises(ValueError, match="is not a duration"):
        schedule.parse_every("hourly")


# --- ArcGIS ----------------------------------------------------------------------------------

ISW_LAYER = "Assessed Russian-controlled Ukrainian Territory"


def arcgis_features(shapes: list[Polygon]) -> list[dict[str, Any]]:
    return [
        {
            "type": "Feature",
            "id": i + 1,
            "geometry": shapely.geometry.mapping(shape),
            "properties": {"OBJECTID": i + 1, "Date": "2025-01-01"},
        }
        for i, shape in enumerate(shapes)
    ]


def serve_arcgis(fake: Fake, edited_ms: int | None, features: list[dict[str, Any]]) -> None:
    info: dict[str, Any] = {"name": ISW_LAYER, "type": "Feature Layer", "maxRecordCount": 2}
    info["fields"] = [{"name": "OBJECTID", "type": "esriFieldTypeOID"}]
    if edited_ms is not None:
        info["editingInfo"] = {"lastEditDate": edited_ms}
    fake.routes["/arcgis/rest/services/isw/FeatureServer/0"] = json_route(info)

    def query(q: dict[str, list[str]]) -> tuple[int, bytes]:
        assert q["where"] == ["1=1"]
        assert q["outFields"] == ["*"]
        assert q["f"] == ["geojson"]
        assert q["outSR"] == ["4326"]
        offset, count = int(q["resultOffset"][0]), int(q["resultRecordCount"][0])
        page = features[offset : offset + count]
        body: dict[str, Any] = {"type": "FeatureCollection", "features": page}
        if offset + count < len(features):
            body["properties"] = {"exceededTransferLimit": True}
        return 200, orjson.dumps(body)

    fake.routes["/arcgis/rest/services/isw/FeatureServer/0/query"] = query


def sync_arcgis(repo: Store, url: str, archive: Path) -> tuple[SyncReport, Client]:
    layer = f"{url}/arcgis/rest/services/isw/FeatureServer/0"
    with Client(FAST) as client:
        options = SyncOptions(archive=archive)
        report = ArcGISSync(repo.db, client, layer, "isw", PROFILES["isw"], options).run()
    return report, client


def test_arcgis_pages_skips_unchanged_layers_and_imports_changes(
    repo: Store, fake: tuple[Fake, str], tmp_path: Path
) -> None:
    server, url = fake
    shapes = [box(37.5 + i * 0.05, 48.0, 37.54 + i * 0.05, 48.1) for i in range(5)]  # Donetsk
    edited = 1735689600_000
    serve_arcgis(server, edited, arcgis_features(shapes))
    query = "/arcgis/rest/services/isw/FeatureServer/0/query"
    rate_limited = orjson.dumps({"error": {"code": 429, "message": "Too many requests"}})
    server.faults[query] = []
    real = server.routes[query]
    calls = {"n": 0}

    def limited_once(q: dict[str, list[str]]) -> tuple[int, bytes]:
        calls["n"] += 1
        return (200, rate_limited) if calls["n"] == 1 else real(q)

    server.routes[query] = limited_once
    archive = tmp_path / "isw"
    report, client = sync_arcgis(repo, url, archive)
    assert report.ok, report.lines()
    assert report.downloaded == 1
    assert server.asked(query) == 1 + 3  # the 200 that said 429, then 3 pages of 2
    assert client.retried == 1
    [snapshot] = archived(archive)
    assert snapshot == f"maps/{edited // 1000}.geojson"
    stored = orjson.loads((archive / snapshot).read_bytes())
    assert len(stored["features"]) == 5
    assert {f["properties"]["_layer"] for f in stored["features"]} == {ISW_LAYER}
    assert report.imported is not None
    assert report.imported.observations == 1
    [piece] = repo.in_force("donetsk", at(edited // 1000), PieceFilter(sources=["isw"]))
    assert (piece.party, str(piece.status)) == ("RU", "controlled")
    assert piece.area_km2 == pytest.approx(
        clipped_km2(repo, shapely.union_all(shapes), "donetsk"), rel=1e-6
    )

    # Unchanged (same lastEditDate): one request, nothing fetched.
    server.log.clear()
    again, client = sync_arcgis(repo, url, archive)
    assert again.ok
    assert again.downloaded == 0
    assert client.requests == 1
    assert "layer unchanged since 2025-01-01T00:00:00Z" in again.notes[0]

    # Edited: a new snapshot, imported.
    serve_arcgis(server, edited + DAY * 1000, arcgis_features(shapes[:2]))
    third, _ = sync_arcgis(repo, url, archive)
    assert third.downloaded == 1
    assert len(archived(archive)) == 2
    assert third.imported is not None
    assert third.imported.observations == 1


def test_arcgis_errors_in_the_body(repo: Store, fake: tuple[Fake, str], tmp_path: Path) -> None:
    server, url = fake
    serve_arcgis(server, 1735689600_000, arcgis_features([box(37.5, 48.0, 37.6, 48.1)]))
    query = "/arcgis/rest/services/isw/FeatureServer/0/query"
    server.routes[query] = json_route({"error": {"code": 400, "message": "Invalid query"}})
    report, client = sync_arcgis(repo, url, tmp_path / "isw")
    assert report.error == "the ArcGIS server answered error 400: Invalid query"
    assert client.retried == 0
    server.routes[query] = json_route({"error": {"code": 429, "message": "Too many requests"}})
    report, client = sync_arcgis(repo, url, tmp_path / "isw")
    assert report.error is not None
    assert "a rate limit in the body" in report.error
    assert client.requests == 1 + 4
    assert archived(tmp_path / "isw") == []
