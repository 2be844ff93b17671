"""The read path under load: Frontline Atlas against tipg, pygeoapi and nginx, on the same data.

    .venv/bin/python -m benchmarks.read_path [--days 1000] [--seconds 5] [--rounds 2]
                                             [--workers 2] [--keep]

It generates a whole-theatre history of ``--days`` daily snapshots with
:mod:`benchmarks.archive` (ending 2024-12-31, so that 2024-06-01 is inside it at any length;
``--days 365`` for the one-year comparison), imports it into a throwaway PostGIS database and an
SQLite file (in parallel, each in a child process; ``--keep`` keeps both under ``var/bench/``
and reuses them next time), then starts, all on 127.0.0.1:

- our service twice (uvicorn, ``--workers`` processes): on PostGIS and on SQLite;
- tipg and pygeoapi, from a virtual environment the benchmark creates in ``var/bench-venv/``
  (``tipg==1.6.1`` and the newest ``pygeoapi`` the package index offers), both over a view
  ``bench_control`` of our ``pieces`` table (active pieces with ``valid_from`` and
  ``valid_until``, an open end as 9999-12-31), with as many uvicorn workers;
- nginx (the Debian package; installed with apt-get if missing) serving our own response bytes
  from disk: the floor for the same bytes.

For each request of issue 9's table (Donetsk's control in force on 2024-06-01; 100 and 1,000
items of the control collection; Donetsk's area series for RU), and a vector tile of the east
as of that moment (z6, tipg's own tiles over the same view), with 1 and 8 clients, it runs
``wrk`` (installed with apt-get if missing) for ``--seconds`` against each server in turn, in
``--rounds`` interleaved rounds, and prints req/s and p50/p95 latency (the median over rounds),
the ratio of ours to tipg and to nginx, and each server's memory (RSS of the process and its
workers) before and after. tipg and pygeoapi are asked the same question in their own terms:
the in-force rule as a filter ``region='donetsk' AND valid_from <= T AND valid_until > T`` (CQL2
text for tipg, ECQL for pygeoapi).
Before the load, one request to each server checks it answers 200 and how many features it
returns, so the table compares like with like. After each run it waits (at most 30 s) until
the server has stopped using CPU, so work abandoned by departed clients does not spill into
the next measurement, and reports how long that took. The figures are saved as JSON in
``var/bench/read-<time>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.archive import generate
from benchmarks.databases import named_postgis, throwaway_postgis
from benchmarks.import_archive import run_child

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
VENV = ROOT / "var" / "bench-venv"
EXTERNAL = ["tipg==1.6.1", "pygeoapi", "uvicorn", "psycopg2-binary", "geoalchemy2"]
END = dt.date(2024, 12, 31)
AT = "2024-06-01T23:59:59Z"  # ours: at=2024-06-01, a bare date being the end of that day
VIEW = "bench_control"

IN_FORCE_ECQL = (  # pygeoapi's cql-text is ECQL: a quoted moment, which PostgreSQL casts
    f"region='donetsk' AND valid_from <= '{AT}' AND valid_until > '{AT}'"
)
IN_FORCE_ANYWHERE = f"valid_from <= TIMESTAMP('{AT}') AND valid_until > TIMESTAMP('{AT}')"
IN_FORCE = f"region='donetsk' AND {IN_FORCE_ANYWHERE}"
TILE = "6/38/22"  # z/x/y


def _q(**params: Any) -> str:
    return "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


# request -> server -> path
REQUESTS: dict[str, dict[str, str]] = {
    "as-of Donetsk 2024-06-01": {
        "ours": "/regions/donetsk/control?at=2024-06-01",
        "tipg": f"/collections/public.{VIEW}/items"
        + _q(filter=IN_FORCE, limit=1000, **{"filter-lang": "cql2-text"}),
        "pygeoapi": "/collections/control/items"
        + _q(filter=IN_FORCE_ECQL, limit=1000, f="json", **{"filter-lang": "cql-text"}),
    },
    "items limit=100": {
        "ours": "/collections/control/items?limit=100",
        "tipg": f"/collections/public.{VIEW}/items?limit=100",
        "pygeoapi": "/collections/control/items?limit=100&f=json",
    },
    "items limit=1000": {
        "ours": "/collections/control/items?limit=1000",
        "tipg": f"/collections/public.{VIEW}/items?limit=1000",
        "pygeoapi": "/collections/control/items?limit=1000&f=json",
    },
    "area Donetsk RU": {"ours": "/regions/donetsk/area?party=RU"},
    # A vector tile of eastern Ukraine (z6, Donetsk and its neighbours) as of the same moment.
    "tile z6 east 2024-06-01": {
        "ours": f"/collections/control/tiles/WebMercatorQuad/{TILE}" + _q(datetime=AT),
        "tipg": f"/collections/public.{VIEW}/tiles/WebMercatorQuad/{TILE}"
        + _q(filter=IN_FORCE_ANYWHERE, **{"filter-lang": "cql2-text"}),
    },
}

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p95_us":%d,"bytes":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), summary.bytes))
end
"""


# --- tools --------------------------------------------------------------------------------------


def ensure_debian(binary: str, package: str) -> str:
    found = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if found:
        return found
    print(f"installing {package} (apt-get) for {binary} ...", flush=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", package], check=True, stdout=subprocess.DEVNULL
    )
    found = shutil.which(binary) or f"/usr/sbin/{binary}"
    if not Path(found).exists():
        raise SystemExit(f"{binary} is not installed and apt-get could not install {package}")
    return found


def ensure_venv() -> Path:
    """var/bench-venv with tipg and pygeoapi (created once; their dependencies stay out of ours)."""
    python = VENV / "bin" / "python"
    marker = VENV / ".bench-ready"
    if marker.exists() and marker.read_text() == "\n".join(EXTERNAL):
        return python
    print(f"creating {VENV} with {', '.join(EXTERNAL)} ...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *EXTERNAL], check=True)
    marker.write_text("\n".join(EXTERNAL))
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """The process and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo += [int(c) for c in children]
    return out


def rss_mb(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def settle(pid: int, limit: float = 30.0) -> float:
    """Wait until the server stops using CPU (work of departed clients); seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        before = cpu_seconds(pid)
        time.sleep(0.3)
        if cpu_seconds(pid) - before < 0.03:
            break
    return time.perf_counter() - started


# --- servers ------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    kind: str  # ours | tipg | pygeoapi | nginx
    port: int
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    rss_before: float = 0.0
    rss_after: float = 0.0
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def path(self, request: str) -> str | None:
        if self.kind == "nginx":
            return f"/{_slug(request)}.json" if request in self.checks else None
        return REQUESTS[request].get(self.kind)


def _slug(request: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in request.lower())


def start(server: Server, command: list[str], env: dict[str, str], cwd: Path) -> Server:
    server.log = VAR / f"{server.name}.log"
    with server.log.open("wb") as log:
        server.process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
    return server


def wait_up(server: Server, probe: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited; see {server.log}")
        try:
            with urllib.request.urlopen(server.base + probe, timeout=30) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(
        f"{server.name} did not answer {probe} within {timeout:.0f} s; see {server.log}"
    )


def stop(server: Server) -> None:
    if server.process is None or server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=300) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _features(body: bytes) -> int | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, dict) and isinstance(document.get("features"), list):
        return len(document["features"])
    return None


def pygeoapi_config(
    folder: Path, port: int, pg: dict[str, Any]
) -> tuple[Path, Path, dict[str, str]]:
    config = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "language": "en-US",
            "limit": 1000,
            "limits": {"default_items": 10, "max_items": 1000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OSM"},
            "pretty_print": False,
            "cors": False,
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "bench",
                "description": "bench",
                "keywords": ["bench"],
                "keywords_type": "theme",
                "terms_of_service": "none",
                "url": "http://127.0.0.1",
            },
            "license": {"name": "MIT", "url": "http://127.0.0.1"},
            "provider": {"name": "bench", "url": "http://127.0.0.1"},
            "contact": {"name": "bench", "email": "bench@localhost"},
        },
        "resources": {
            "control": {
                "type": "collection",
                "title": "control",
                "description": "pieces in force",
                "keywords": ["control"],
                "extents": {
                    "spatial": {
                        "bbox": [22, 44, 41, 53],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                    }
                },
                "providers": [
                    {
                        "type": "feature",
                        "name": "PostgreSQL",
                        "data": pg,
                        "id_field": "id",
                        "table": VIEW,
                        "geom_field": "geometry",
                        "time_field": "valid_from",
                    }
                ],
            }
        },
    }
    path = folder / "pygeoapi.json"  # YAML is a superset of JSON
    path.write_text(json.dumps(config))
    openapi = folder / "pygeoapi-openapi.yml"
    env = {"PYGEOAPI_CONFIG": str(path), "PYGEOAPI_OPENAPI": str(openapi)}
    return path, openapi, env


TIPG_PROBE = f"/collections/public.{VIEW}"


def tipg_env(postgis: str) -> dict[str, str]:
    """tipg's settings: the view of our pieces (``create_view``) in the database ``postgis``."""
    return {
        "DATABASE_URL": postgis.replace("postgresql+psycopg", "postgresql"),
        "TIPG_DB_SCHEMAS": '["public"]',
        f"TIPG_TABLE_CONFIG__public_{VIEW}__PK": "id",
        f"TIPG_TABLE_CONFIG__public_{VIEW}__DATETIMECOL": "valid_from",
        "TIPG_MAX_FEATURES_PER_QUERY": "10000",
    }


def nginx_config(folder: Path, port: int, root: Path) -> Path:
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""daemon off;
user root;
worker_processes 2;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  sendfile on;
  keepalive_requests 1000000;
  types {{ application/geo+json json; }}
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
}}
"""
    )
    return conf


# --- the data -----------------------------------------------------------------------------------


def _import_done(url: str, days: int) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM import_files")).scalar_one()) >= days
    except Exception:
        return False
    finally:
        engine.dispose()


def create_view(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text(f"DROP VIEW IF EXISTS {VIEW}"))
        c.execute(
            text(
                f"""CREATE VIEW {VIEW} AS
                SELECT observation_id::text || ':' || region AS id, observation_id, region, source,
                       party, status, basis, valid_from,
                       coalesce(valid_until, '9999-12-31T00:00:00Z'::timestamptz) AS valid_until,
                       area_km2, reported_area_km2, geometry
                FROM pieces WHERE active"""
            )
        )
    engine.dispose()


def load(
    days: int, keep: bool, work: Path, stack: contextlib.ExitStack, name: str = "read"
) -> dict[str, str]:
    """The two databases holding the imported history; their URLs. ``name`` tells a
    benchmark's kept databases from another's (``var/bench/NAME-DAYS.db``)."""
    if keep:
        sqlite = f"sqlite:///{VAR / f'{name}-{days}.db'}"
        postgis = named_postgis(f"frontline_bench_{name}_{days}")
    else:
        sqlite = f"sqlite:///{work / f'{name}.db'}"
        postgis = stack.enter_context(throwaway_postgis())()
    urls = {"postgis": postgis, "sqlite": sqlite}
    todo = {db: url for db, url in urls.items() if not (keep and _import_done(url, days))}
    if todo:
        start_day = END - dt.timedelta(days=days - 1)
        started = time.perf_counter()
        paths = generate(work / "archive", days, start_day)
        print(
            f"generated {days} snapshots from {start_day} in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        results: dict[str, Any] = {}

        def one(db: str, url: str) -> None:
            if keep and db == "postgis":
                named_postgis(url.rsplit("/", 1)[1], fresh=True)
            if keep and db == "sqlite":
                Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
            results[db] = run_child(url, paths, work)

        print(f"importing into {', '.join(todo)} (in parallel) ...", flush=True)
        threads = [threading.Thread(target=one, args=item) for item in todo.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for db, r in results.items():
            print(
                f"  {db}: {r['files']} files in {r['seconds']:.0f} s "
                f"({r['files'] / r['seconds']:.1f} files/s), {r['observations']} observations, "
                f"{r['db_bytes'] / 1e6:.0f} MB",
                flush=True,
            )
        if len(results) < len(todo):
            raise SystemExit("an import failed (see above)")
    else:
        print(f"reusing the imported databases of {days} days (--keep)", flush=True)
    create_view(postgis)
    return urls


# --- load ---------------------------------------------------------------------------------------


def wrk(binary: str, url: str, clients: int, seconds: float, script: Path) -> dict[str, Any]:
    threads = min(clients, 2)
    done = subprocess.run(
        [
            binary,
            f"-t{threads}",
            f"-c{clients}",
            f"-d{seconds:.0f}s",
            "--timeout",
            "60s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("{")), None)
    if line is None:
        raise SystemExit(f"wrk failed on {url}: {done.stdout}{done.stderr}")
    r: dict[str, Any] = json.loads(line)
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def _fmt_rps(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def _fmt_ms(us: float) -> str:
    if not us:
        return "-"
    return (
        f"{us / 1000:,.0f}"
        if us >= 10_000
        else f"{us / 1000:.1f}"
        if us >= 1000
        else f"{us / 1000:.2f}"
    )


def _cell(c: dict[str, Any]) -> str:
    latency = f"{_fmt_ms(c['p50_ms'] * 1000)}/{_fmt_ms(c['p95_ms'] * 1000)}"
    return f"{_fmt_rps(c['rps']):>7} ({latency})".rjust(22)


def _ratio_label(name: str, peer: str) -> str:
    short = {"ours-postgis": "pg", "ours-sqlite": "sqlite"}.get(name, name)
    return f"{short}/{peer}"


def _ratio(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument(
        "--days", type=int, default=1000, help="daily snapshots in the history (1000)"
    )
    parser.add_argument("--seconds", type=float, default=5, help="seconds per measurement (5)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (2)")
    parser.add_argument(
        "--workers", type=int, default=2, help="uvicorn workers per Python server (2)"
    )
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1, 8], help="concurrent clients (1 8)"
    )
    parser.add_argument(
        "--servers", nargs="+", default=["ours-postgis", "ours-sqlite", "tipg", "pygeoapi", "nginx"]
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the imported databases and reuse them"
    )
    args = parser.parse_args()
    VAR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    wrk_binary = ensure_debian("wrk", "wrk")
    nginx_binary = ensure_debian("nginx", "nginx")
    bench_python = ensure_venv() if {"tipg", "pygeoapi"} & set(args.servers) else None

    with (
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="frontline-read-") as tmp,
    ):
        work = Path(tmp)
        urls = load(args.days, args.keep, work, stack)
        servers = run_servers(args, urls, bench_python, nginx_binary, stack)
        results = measure(args, servers, wrk_binary, work)
        report = print_table(args, servers, results)
        out = VAR / f"read-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(report, indent=1))
        print(f"\nsaved {out} ({time.perf_counter() - started:.0f} s in all)")
    return 0


def run_servers(
    args: argparse.Namespace,
    urls: dict[str, str],
    bench_python: Path | None,
    nginx: str,
    stack: contextlib.ExitStack,
) -> list[Server]:
    servers: list[Server] = []
    pg = urllib.parse.urlsplit(urls["postgis"].replace("postgresql+psycopg", "postgresql"))
    uvicorn = [
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--workers",
        str(args.workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    for name in args.servers:
        port = free_port()
        if name.startswith("ours-"):
            db = name.removeprefix("ours-")
            server = start(
                Server(name, "ours", port),
                [
                    sys.executable,
                    *uvicorn,
                    "--port",
                    str(port),
                    "--factory",
                    "app.api.app:create_app",
                ],
                {"DATABASE_URL": urls[db], "AUTO_SEED": "false", "AUTO_MIGRATE": "false"},
                ROOT,
            )
            probe = "/healthz"
        elif name == "tipg":
            assert bench_python is not None
            server = start(
                Server(name, "tipg", port),
                [str(bench_python), *uvicorn, "--port", str(port), "tipg.main:app"],
                tipg_env(urls["postgis"]),
                VAR,
            )
            probe = TIPG_PROBE
        elif name == "pygeoapi":
            assert bench_python is not None
            connection = {
                "host": pg.hostname or "127.0.0.1",
                "port": pg.port or 5432,
                "dbname": pg.path.lstrip("/"),
                "user": pg.username or "postgres",
                "password": pg.password or "",
                "search_path": ["public"],
            }
            config, openapi, env = pygeoapi_config(VAR, port, connection)
            subprocess.run(
                [
                    str(bench_python.parent / "pygeoapi"),
                    "openapi",
                    "generate",
                    str(config),
                    "--output-file",
                    str(openapi),
                ],
                env={**os.environ, **env},
                check=True,
                capture_output=True,
            )
            server = start(
                Server(name, "pygeoapi", port),
                [str(bench_python), *uvicorn, "--port", str(port), "pygeoapi.starlette_app:APP"],
                env,
                VAR,
            )
            probe = "/collections/control"
        elif name == "nginx":
            continue  # started below, once our responses are on disk
        else:
            raise SystemExit(f"unknown server {name!r}")
        stack.callback(stop, server)
        servers.append(server)
        wait_up(server, probe)

    ours = next((s for s in servers if s.kind == "ours"), None)
    if "nginx" in args.servers and ours is not None:
        root = VAR / "nginx-root"
        root.mkdir(exist_ok=True)
        nginx_server = Server("nginx", "nginx", free_port())
        for request, paths in REQUESTS.items():
            status, body = fetch(ours.base + paths["ours"])
            if status == 200:
                (root / f"{_slug(request)}.json").write_bytes(body)
                nginx_server.checks[request] = {
                    "status": 200,
                    "bytes": len(body),
                    "features": _features(body),
                }
        conf = nginx_config(VAR, nginx_server.port, root)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (VAR / sub).mkdir(exist_ok=True)
        start(nginx_server, [nginx, "-c", str(conf), "-p", str(VAR)], {}, VAR)
        stack.callback(stop, nginx_server)
        wait_up(nginx_server, f"/{_slug(next(iter(nginx_server.checks)))}.json")
        servers.append(nginx_server)

    for server in servers:  # one request each: status, size, features
        for request in REQUESTS:
            path = server.path(request)
            if path is None or server.kind == "nginx":
                continue
            t = time.perf_counter()
            status, body = fetch(server.base + path)
            server.checks[request] = {
                "status": status,
                "bytes": len(body),
                "features": _features(body),
                "first_ms": 1000 * (time.perf_counter() - t),
            }
            if status != 200:
                print(f"  {server.name} {request}: HTTP {status}: {body[:300]!r}", flush=True)
        assert server.process is not None
        server.rss_before = rss_mb(server.process.pid)
    return servers


def measure(
    args: argparse.Namespace, servers: list[Server], wrk_binary: str, work: Path
) -> dict[str, Any]:
    script = work / "report.lua"
    script.write_text(WRK_SCRIPT)
    results: dict[str, Any] = {}
    cells = [
        (request, clients, server)
        for request in REQUESTS
        for clients in args.clients
        for server in servers
        if server.path(request) is not None and server.checks.get(request, {}).get("status") == 200
    ]
    estimate = len(cells) * args.rounds * (args.seconds + 1)
    print(
        f"\nmeasuring: {len(cells)} cells x {args.rounds} rounds x {args.seconds:.0f} s "
        f"(about {estimate / 60:.0f} min)",
        flush=True,
    )
    for round_ in range(args.rounds):
        for n, (request, clients, server) in enumerate(cells, start=1):
            path = server.path(request)
            assert path is not None
            assert server.process is not None
            r = wrk(wrk_binary, server.base + path, clients, args.seconds, script)
            r["settle_s"] = settle(server.process.pid)
            results.setdefault(request, {}).setdefault(str(clients), {}).setdefault(
                server.name, []
            ).append(r)
            print(
                f"  round {round_ + 1}/{args.rounds} [{n}/{len(cells)}] {request}, "
                f"{clients} client(s), {server.name}: {_fmt_rps(r['rps'])} req/s, "
                f"p50 {_fmt_ms(r['p50_us'])} ms"
                + (f", busy {r['settle_s']:.1f} s after" if r["settle_s"] > 1 else ""),
                flush=True,
            )
    for server in servers:
        assert server.process is not None
        server.rss_after = rss_mb(server.process.pid)
    return results


def print_table(
    args: argparse.Namespace, servers: list[Server], results: dict[str, Any]
) -> dict[str, Any]:
    names = [s.name for s in servers]
    print(
        f"\n{args.days} daily snapshots; {args.workers} uvicorn worker(s) per Python server; "
        f"{args.seconds:.0f} s x {args.rounds} rounds; median over rounds"
    )
    print("\nanswers (HTTP status, KB, features) before the load:")
    for request in REQUESTS:
        cells = []
        for s in servers:
            c = s.checks.get(request)
            cells.append(
                f"{s.name}: "
                + (
                    "-"
                    if c is None
                    else f"{c['status']}, {c['bytes'] / 1000:.0f} KB, {c['features']} features"
                )
            )
        print(f"  {request}: " + "; ".join(cells))
    ours_names = [n for n in names if n.startswith("ours-")]
    ratio_columns = [
        (name, peer) for peer in ("tipg", "nginx") if peer in names for name in ours_names
    ]
    header = (
        f"\n{'request':26} {'clients':>7} "
        + " ".join(f"{n:>22}" for n in names)
        + "".join(f" {_ratio_label(name, peer):>12}" for name, peer in ratio_columns)
    )
    print(header)
    print(" " * 35 + " ".join(f"{'req/s (p50/p95 ms)':>22}" for _ in names))
    summary: dict[str, Any] = {}
    for request, by_clients in results.items():
        for clients, by_server in by_clients.items():
            row = {}
            for name in names:
                runs = by_server.get(name)
                if runs:
                    row[name] = {
                        "rps": statistics.median(r["rps"] for r in runs),
                        "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
                        "p95_ms": statistics.median(r["p95_us"] for r in runs) / 1000,
                        "rps_range": [min(r["rps"] for r in runs), max(r["rps"] for r in runs)],
                        "errors": sum(
                            r["errors"] + r["status_errors"] + r["timeouts"] for r in runs
                        ),
                    }
            ratios = {
                (name, peer): row[name]["rps"] / row[peer]["rps"]
                if name in row and peer in row and row[peer]["rps"]
                else None
                for name, peer in ratio_columns
            }
            cells = []
            for name in names:
                c = row.get(name)
                cells.append(f"{'-':>22}" if c is None else _cell(c))
            print(
                f"{request:26} {clients:>7} "
                + " ".join(cells)
                + "".join(
                    f" {_ratio(ratios[key], 2 if key[1] == 'tipg' else 4):>12}"
                    for key in ratio_columns
                )
            )
            summary.setdefault(request, {})[clients] = {
                "servers": row,
                **{f"{name}_over_{peer}": ratios[name, peer] for name, peer in ratio_columns},
            }
    print(
        "\nratios: each of our servers' req/s over tipg's and nginx's (1.00 = as fast), "
        f"pg = ours-postgis, sqlite = ours-sqlite; 0.00 (-/-) = no request completed within "
        f"{args.seconds:.0f} s"
    )
    print(
        "\nmemory (RSS of the server and its workers, MB): "
        + "; ".join(f"{s.name} {s.rss_before:.0f} -> {s.rss_after:.0f}" for s in servers)
    )
    return {
        "days": args.days,
        "workers": args.workers,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "requests": dict(REQUESTS.items()),
        "checks": {s.name: s.checks for s in servers},
        "rss_mb": {s.name: [s.rss_before, s.rss_after] for s in servers},
        "summary": summary,
        "runs": results,
    }


if __name__ == "__main__":
    raise SystemExit(main())
