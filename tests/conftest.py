"""Test fixtures: every storage and API test runs on a real SQLite file AND a real PostGIS.

PostGIS comes from ``FRONTLINE_TEST_POSTGRES_URL`` (default: the local server as user
``postgres``); each test session creates throwaway databases there and drops them after.
Without a reachable PostGIS the PostGIS tests are skipped, unless ``FRONTLINE_REQUIRE_POSTGIS=1``
(set by CI), in which case they fail, and the session fails if none of them ran.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from app.api.app import create_app
from app.seed import seed
from app.settings import PROJECT_ROOT, Settings
from app.storage.database import Database, create_db_engine, upgrade
from tests.store import Store

ADMIN_URL = os.environ.get(
    "FRONTLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGIS = os.environ.get("FRONTLINE_REQUIRE_POSTGIS", "") not in ("", "0", "false")
DATA_DIR = PROJECT_ROOT / "data"
BACKENDS = ["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)]

_postgis_problem: str | None = None
_postgis_checked = False
_postgis_tests_run = 0


def _check_postgis() -> str | None:
    """None when PostGIS is usable, else why not."""
    global _postgis_checked, _postgis_problem
    if not _postgis_checked:
        _postgis_checked = True
        try:
            engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
            with engine.connect() as c:
                available = c.execute(
                    text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
                ).first()
            engine.dispose()
            if available is None:
                _postgis_problem = "the PostgreSQL server has no PostGIS extension installed"
        except Exception as e:
            _postgis_problem = f"cannot connect to {ADMIN_URL}: {e.__class__.__name__}: {e}"
    return _postgis_problem


class PostgresDatabases:
    """Creates throwaway databases on the test server and drops them at the end."""

    def __init__(self) -> None:
        self.admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def create(self) -> str:
        name = f"frontline_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as c:
            for name in self.names:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases | None]:
    if _check_postgis() is not None:
        yield None
        return
    dbs = PostgresDatabases()
    yield dbs
    dbs.drop_all()


def _require_backend(backend: str) -> None:
    if backend != "postgis":
        return
    problem = _check_postgis()
    if problem is not None:
        if REQUIRE_POSTGIS:
            pytest.fail(f"PostGIS is required (FRONTLINE_REQUIRE_POSTGIS=1) but {problem}")
        pytest.skip(f"PostGIS tests skipped: {problem}")


def _new_engine(
    backend: str, tmp_path_factory: pytest.TempPathFactory, pg: PostgresDatabases | None
) -> Engine:
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "frontline.db"
        return create_db_engine(f"sqlite:///{path}")
    assert pg is not None
    return create_db_engine(pg.create())


def _seeded(backend: str, tmp: pytest.TempPathFactory, pg: PostgresDatabases | None) -> Engine:
    _require_backend(backend)
    engine = _new_engine(backend, tmp, pg)
    upgrade(engine)
    seed(Database(engine), DATA_DIR)
    return engine


@pytest.fixture(scope="session", params=BACKENDS)
def seeded_engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_databases: PostgresDatabases | None,
) -> Iterator[Engine]:
    """A migrated database with the shipped seed, shared by read-only tests."""
    engine = _seeded(request.param, tmp_path_factory, pg_databases)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgis_engine(
    tmp_path_factory: pytest.TempPathFactory, pg_databases: PostgresDatabases | None
) -> Iterator[Engine]:
    """The seeded PostGIS database alone, for tests that compare with PostGIS itself."""
    engine = _seeded("postgis", tmp_path_factory, pg_databases)
    yield engine
    engine.dispose()


@pytest.fixture
def postgis_empty_engine(
    tmp_path_factory: pytest.TempPathFactory, pg_databases: PostgresDatabases | None
) -> Iterator[Engine]:
    """A migrated, empty PostGIS database of its own, for PostGIS-only behaviour."""
    _require_backend("postgis")
    engine = _new_engine("postgis", tmp_path_factory, pg_databases)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_databases: PostgresDatabases | None,
) -> Iterator[Engine]:
    """A migrated, empty database of its own, for tests that write."""
    _require_backend(request.param)
    engine = _new_engine(request.param, tmp_path_factory, pg_databases)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def seeded_repo(seeded_engine: Engine) -> Store:
    return Store(seeded_engine)


@pytest.fixture
def client(seeded_engine: Engine) -> Iterator[TestClient]:
    """Real HTTP through the ASGI app, on the seeded database."""
    app = create_app(Settings(database_url=str(seeded_engine.url)), engine=seeded_engine)
    with TestClient(app) as c:
        yield c


@dataclass(frozen=True)
class LiveServer:
    """The service on a real port, for clients that speak HTTP themselves (GDAL, OWSLib)."""

    url: str  # e.g. http://127.0.0.1:54321, no trailing slash
    backend: str  # "sqlite" or "postgis"
    engine: Engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_healthy(url: str, process: subprocess.Popen[Any], seconds: float = 60) -> None:
    """Wait for ``url``/healthz to answer 200; fail with the server's output if it exits."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"the service exited with code {process.returncode}: {output}")
        if time.monotonic() > deadline:
            pytest.fail(f"the service did not come up in {seconds:.0f} s")
        time.sleep(0.1)


@contextmanager
def serve(
    engine: Engine, backend: str, workers: int = 1, log: Path | None = None, **settings: Any
) -> Iterator[LiveServer]:
    """Run ``uvicorn`` in its own process on the engine's database for the duration of the
    block. A process, not a thread: clients that run inside the test process (pyogrio's GDAL)
    may hold the GIL while they wait for the server. ``settings`` become environment variables
    (``items_max_limit=3`` -> ``ITEMS_MAX_LIMIT=3``); ``workers`` > 1 runs that many server
    processes on one port, as a deployment would. With ``log``, the server logs at level
    info, access log included, into that file."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "AUTO_MIGRATE": "false",
        "AUTO_SEED": "false",
        **{name.upper(): str(value) for name, value in settings.items()},
    }
    command = [sys.executable, "-m", "uvicorn", "app.api.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning" if log is None else "info"]
    if workers > 1:
        command += ["--workers", str(workers)]
    output = None if log is None else log.open("w")
    process = subprocess.Popen(
        command,
        env=env,
        cwd=PROJECT_ROOT,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield LiveServer(url, backend, engine)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if output is not None:
            output.close()


@pytest.fixture(scope="session")
def live_server(seeded_engine: Engine) -> Iterator[LiveServer]:
    """The seeded service on a real port (uvicorn), once on SQLite and once on PostGIS.
    Read-only: tests that write start their own with :func:`serve`."""
    backend = "postgis" if seeded_engine.dialect.name == "postgresql" else "sqlite"
    with serve(seeded_engine, backend) as live:
        yield live


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _postgis_tests_run
    if report.when == "call" and report.passed and "postgis" in report.keywords:
        _postgis_tests_run += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f"PostGIS tests passed: {_postgis_tests_run}")
    if REQUIRE_POSTGIS and _postgis_tests_run == 0:
        terminalreporter.write_line(
            "FAILED: FRONTLINE_REQUIRE_POSTGIS=1 but no PostGIS test passed", red=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With FRONTLINE_REQUIRE_POSTGIS=1, a session in which no PostGIS test passed fails."""
    if REQUIRE_POSTGIS and _postgis_tests_run == 0 and session.testscollected:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
