"""Memory under a long mixed read load: does the server's RSS stay flat? Ours on PostGIS and on
SQLite, and tipg over the same PostGIS data, one after another.

    .venv/bin/python -m benchmarks.memory_soak [--minutes 10] [--days 365] [--workers 2]
                                               [--clients 4] [--keep]

It imports a whole-theatre history of ``--days`` daily snapshots (:mod:`benchmarks.archive`, as
the read-path benchmark does; ``--keep`` keeps the databases under ``var/bench/soak-N.db`` and
``frontline_bench_soak_N`` and reuses them), then for each server in turn: starts it
(``frontline serve --workers N`` for ours, so whatever ``serve`` sets up for its workers is
measured; tipg from ``var/bench-venv``, created by :mod:`benchmarks.read_path` when missing,
with as many uvicorn workers), drives ``--clients`` keep-alive clients for ``--minutes``
through a mixed read load with the in-process cache on, and samples the RSS of the server's
process tree every ``--interval`` seconds. The load, drawn from a seeded generator so every run
and every server gets the same sequence:

- 30 %: a region's control in force at a day of the history (``/regions/R/control?at=D``;
  tipg: the same as a CQL2 filter on the view, as in the read-path benchmark);
- 30 %: ``/collections/control/items`` with a ``limit`` of 10 to 1,000, an ``offset`` of 0 to
  3,000, and sometimes a ``datetime`` and a ``bbox``;
- 15 %: a region's area series for RU, sometimes cut by ``from``/``to`` (tipg has none; it
  gets an as-of request instead);
- 25 %: a vector tile of ``control`` at zoom 4 to 10 on the front, at a day of the history.

Most requests are new (so the cache keeps filling and must evict), a fifth are drawn from a
small set of popular ones (so it also answers). It prints each server's RSS curve, the growth
from the first minute to the last (means of the samples in each), the peak, and the requests
served, and saves the figures in ``var/bench/soak-<time>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import math
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.read_path import (
    END,
    ROOT,
    TIPG_PROBE,
    VAR,
    VIEW,
    Server,
    ensure_venv,
    free_port,
    load,
    rss_mb,
    start,
    stop,
    tipg_env,
    wait_up,
)

REGIONS = ["donetsk", "luhansk", "zaporizhzhia", "kherson", "kharkiv", "kursk", "crimea"]
FRONT = (33.0, 46.0, 39.5, 51.0)  # lon/lat box the tiles and bboxes are drawn from


def _q(params: dict[str, Any]) -> str:
    return "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def _tile(z: int, lon: float, lat: float) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@dataclass
class Requests:
    """The mixed load, as paths for ``kind`` (ours | tipg), drawn from ``rng``."""

    kind: str
    days: int
    rng: random.Random

    def day(self) -> str:
        return (END - dt.timedelta(days=self.rng.randrange(self.days))).isoformat()

    def moment(self) -> str:
        """A ``datetime`` parameter: the end of a day (tipg wants the time written out)."""
        return self.day() if self.kind == "ours" else f"{self.day()}T23:59:59Z"

    def as_of(self) -> str:
        region, day = self.rng.choice(REGIONS), self.day()
        if self.kind == "ours":
            return f"/regions/{region}/control?at={day}"
        at = f"{day}T23:59:59Z"
        cql = (
            f"region='{region}' AND valid_from <= TIMESTAMP('{at}') "
            f"AND valid_until > TIMESTAMP('{at}')"
        )
        return f"/collections/public.{VIEW}/items" + _q(
            {"filter": cql, "filter-lang": "cql2-text", "limit": 1000}
        )

    def items(self) -> str:
        rng = self.rng
        params: dict[str, Any] = {
            "limit": rng.choice([10, 50, 100, 100, 200, 500, 1000]),
            "offset": rng.choice([0, 0, 0, 100, 1000, 3000]),
        }
        if rng.random() < 0.5:
            params["datetime"] = self.moment()
        if rng.random() < 0.3:
            w, s = rng.uniform(FRONT[0], FRONT[2] - 1), rng.uniform(FRONT[1], FRONT[3] - 1)
            size = rng.uniform(0.3, 3)
            params["bbox"] = f"{w:.3f},{s:.3f},{w + size:.3f},{s + size:.3f}"
        collection = "control" if self.kind == "ours" else f"public.{VIEW}"
        return f"/collections/{collection}/items" + _q(params)

    def area(self) -> str:
        if self.kind != "ours":
            return self.as_of()
        params: dict[str, Any] = {"party": "RU"}
        if self.rng.random() < 0.5:
            params["from"], params["to"] = sorted([self.day(), self.day()])
        return f"/regions/{self.rng.choice(REGIONS)}/area" + _q(params)

    def tile(self) -> str:
        z = self.rng.randint(4, 10)
        x, y = _tile(z, self.rng.uniform(FRONT[0], FRONT[2]), self.rng.uniform(FRONT[1], FRONT[3]))
        collection = "control" if self.kind == "ours" else f"public.{VIEW}"
        tile = f"/collections/{collection}/tiles/WebMercatorQuad/{z}/{x}/{y}"
        return f"{tile}?datetime={self.moment()}"

    def next(self) -> str:
        r = self.rng.random()
        if r < 0.30:
            return self.as_of()
        if r < 0.60:
            return self.items()
        if r < 0.75:
            return self.area()
        return self.tile()


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, size: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += size
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status >= 400:
                self.errors += 1


def client(port: int, kind: str, days: int, seed: int, until: float, tally: Tally) -> None:
    """One keep-alive client: a fifth of its requests from a small popular set."""
    rng = random.Random(seed)
    popular_rng = random.Random(0)
    popular = [Requests(kind, days, popular_rng).next() for _ in range(40)]
    requests = Requests(kind, days, rng)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Accept-Encoding": "gzip", "Accept": "application/json"}
    while time.monotonic() < until:
        path = rng.choice(popular) if rng.random() < 0.2 else requests.next()
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            tally.add(response.status, len(body))
        except (OSError, http.client.HTTPException):
            tally.add(599, 0)
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.close()


def soak(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Drive the load on ``server`` for ``--minutes``; its RSS samples and the tally."""
    assert server.process is not None
    pid = server.process.pid
    seconds = args.minutes * 60
    tally = Tally()
    started = time.monotonic()
    until = started + seconds
    clients = [
        threading.Thread(
            target=client,
            args=(server.port, server.kind, args.days, args.seed + n, until, tally),
            daemon=True,
        )
        for n in range(args.clients)
    ]
    samples: list[tuple[float, float, int]] = [(0.0, rss_mb(pid), 0)]
    for thread in clients:
        thread.start()
    next_sample = started + args.interval
    while time.monotonic() < until:
        time.sleep(max(0.0, min(next_sample, until) - time.monotonic()))
        t = time.monotonic() - started
        samples.append((t, rss_mb(pid), tally.requests))
        print(
            f"  {server.name} {t:5.0f} s: {samples[-1][1]:6.0f} MB, "
            f"{tally.requests} requests ({tally.errors} errors)",
            flush=True,
        )
        next_sample += args.interval
    for thread in clients:
        thread.join(timeout=330)
    return {
        "samples": samples,
        "requests": tally.requests,
        "errors": tally.errors,
        "statuses": tally.statuses,
        "bytes": tally.bytes,
        "seconds": time.monotonic() - started,
    }


def growth(samples: list[tuple[float, float, int]]) -> dict[str, float]:
    """Mean RSS over the first and the last minute of the load (samples after the start)."""
    span = samples[-1][0]
    window = min(60.0, span / 3)
    first = [mb for t, mb, _ in samples if 0 < t <= window] or [samples[0][1]]
    last = [mb for t, mb, _ in samples if t >= span - window]
    a, b = statistics.mean(first), statistics.mean(last)
    return {
        "start_mb": samples[0][1],
        "first_min_mb": a,
        "last_min_mb": b,
        "growth_mb": b - a,
        "growth_pct": 100 * (b - a) / a,
        "peak_mb": max(mb for _, mb, _ in samples),
    }


def start_server(name: str, args: argparse.Namespace, urls: dict[str, str]) -> Server:
    port = free_port()
    if name.startswith("ours-"):
        url = urls[name.removeprefix("ours-")]
        command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
        command += ["--workers", str(args.workers), "--log-level", "warning"]
        env = {"DATABASE_URL": url, "AUTO_SEED": "false", "AUTO_MIGRATE": "false"}
        server = start(Server(name, "ours", port), command, env, ROOT)
        wait_up(server, "/healthz")
        return server
    if name == "tipg":
        python = ensure_venv()
        command = [str(python), "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--workers", str(args.workers), "--no-access-log", "--log-level", "warning"]
        server = start(
            Server(name, "tipg", port), [*command, "tipg.main:app"], tipg_env(urls["postgis"]), VAR
        )
        wait_up(server, TIPG_PROBE)
        return server
    raise SystemExit(f"unknown server {name!r}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--minutes", type=float, default=10, help="load per server (10)")
    parser.add_argument("--days", type=int, default=365, help="daily snapshots (365)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--interval", type=float, default=10, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=1, help="seed of the load (1)")
    parser.add_argument(
        "--servers", nargs="+", default=["ours-postgis", "ours-sqlite", "tipg"], help="in turn"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases and reuse them")
    args = parser.parse_args()
    VAR.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with (
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="frontline-soak-") as tmp,
    ):
        urls = load(args.days, args.keep, Path(tmp), stack, name="soak")
        for name in args.servers:
            print(f"\n{name}: {args.minutes:g} min, {args.clients} clients", flush=True)
            server = start_server(name, args, urls)
            try:
                results[name] = soak(server, args)
            finally:
                stop(server)
            results[name]["growth"] = growth(results[name]["samples"])
    report(args, results)
    return 0


def report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    print(
        f"\n{args.days} daily snapshots; {args.workers} workers per server; {args.clients} "
        f"clients for {args.minutes:g} min each; RSS of the server's process tree, MB"
    )
    print("\ncurve (one sample per minute):")
    for name, r in results.items():
        samples = r["samples"]
        minutes = range(int(samples[-1][0] // 60) + 1)
        per_minute = [min(samples, key=lambda s, m=m: abs(s[0] - 60 * m))[1] for m in minutes]
        print(f"  {name:13} " + " ".join(f"{mb:.0f}" for mb in per_minute))
    print(
        f"\n{'server':13} {'start':>6} {'1st min':>8} {'last min':>9} {'growth':>8} "
        f"{'peak':>6} {'requests':>9} {'req/s':>6} {'errors':>6}"
    )
    for name, r in results.items():
        g = r["growth"]
        print(
            f"{name:13} {g['start_mb']:6.0f} {g['first_min_mb']:8.0f} {g['last_min_mb']:9.0f} "
            f"{g['growth_mb']:+6.0f} ({g['growth_pct']:+.0f} %) {g['peak_mb']:6.0f} "
            f"{r['requests']:9} {r['requests'] / r['seconds']:6.1f} {r['errors']:6}"
        )
    out = VAR / f"soak-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(f"\nsaved {out}")


if __name__ == "__main__":
    raise SystemExit(main())
