"""How big and how fast the vector tiles are, on a generated whole-theatre history, on SQLite and
on PostGIS.

    .venv/bin/python -m benchmarks.tiles [--days 60] [--scan-zoom 8]

It generates daily whole-front snapshots with the generator of ``benchmarks.import_archive``
(about 100 polygons and 600 KB each, a long jagged front from Kharkiv oblast to Kherson
oblast), imports them into a fresh SQLite file and a throwaway PostGIS database
(``FRONTLINE_TEST_POSTGRES_URL``, as for the tests), then asks the API (in process, no HTTP
server, no cache) for:

- every z5 tile of Ukraine, cold (the first time each is drawn, after one request elsewhere has
  opened the connection), then again, as of the last day and for the whole history (no
  ``datetime``): milliseconds each, and bytes;
- every tile of the data's extent at zooms 0 to ``--scan-zoom``, and the tiles along the front
  line at every zoom above it up to 14, as of the last day: the largest tile per zoom and the
  median and slowest time.

Goals (issue 9): every tile under 500 KB, z5 of Ukraine under 250 ms cold.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import morecantile

from app.storage.database import Database

UKRAINE = (22.1, 44.3, 40.3, 52.4)  # lon/lat box of Ukraine's oblasts
LIMIT_BYTES = 500_000
Z5_GOAL_MS = 250.0
TMS = morecantile.tms.get("WebMercatorQuad")


def load_theatre(db: Database, folder: Path, days: int) -> dt.datetime:
    """A database with the regions, UA and RU, the generated source and ``days`` daily maps of
    the whole front imported (benchmarks.archive: shaped like DeepStateMap's). Returns the
    moment of the last map. Shared by the benchmark and tests/test_tiles.py."""
    from app.importer.engine import Importer, ImportOptions
    from app.importer.rules import PROFILES
    from benchmarks.archive import DEFAULT_START, SNAPSHOT_TIME, generate
    from benchmarks.databases import SOURCE, prepare

    prepare(db)
    paths = generate(folder, days)
    options = ImportOptions(source=SOURCE, rules=PROFILES["deepstate"], recorded_by="bench")
    summary = Importer(db, options).run(paths)
    assert summary.ok, summary.errors
    return dt.datetime.combine(DEFAULT_START + dt.timedelta(days=days - 1), SNAPSHOT_TIME)


def tiles_of(box: tuple[float, float, float, float], zoom: int) -> list[morecantile.Tile]:
    return list(TMS.tiles(*box, [zoom]))


def front_tiles(zoom: int) -> list[morecantile.Tile]:
    """The tiles the generated front line passes through at ``zoom``."""
    from benchmarks.archive import FRONT_POINTS

    found: dict[tuple[int, int], morecantile.Tile] = {}
    for (lon0, lat0), (lon1, lat1) in itertools.pairwise(FRONT_POINTS):
        for i in range(50):
            t = i / 50
            tile = TMS.tile(lon0 + (lon1 - lon0) * t, lat0 + (lat1 - lat0) * t, zoom)
            found[(tile.x, tile.y)] = tile
    return list(found.values())


@contextmanager
def _client(url: str) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from app.api.app import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings(database_url=url))) as client:
        yield client


def _get(client: Any, tile: morecantile.Tile, query: str) -> tuple[float, int]:
    """Milliseconds and bytes of one control tile."""
    path = f"/collections/control/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}{query}"
    started = time.perf_counter()
    r = client.get(path)
    ms = (time.perf_counter() - started) * 1000
    if r.status_code != 200:
        raise SystemExit(f"{path}: {r.status_code} {r.text}")
    return ms, len(r.content)


def measure(url: str, last: dt.datetime, scan_zoom: int) -> list[str]:
    at = f"?datetime={last.date().isoformat()}"
    lines = []
    with _client(url) as client:
        _get(client, morecantile.Tile(0, 0, 0), "?datetime=1999-01-01")  # connect, load PostGIS
        for label, query in (("as of the last day", at), ("whole history", "")):
            tiles = tiles_of(UKRAINE, 5)
            cold = [_get(client, t, query) for t in tiles]
            warm = [_get(client, t, query) for t in tiles]
            lines.append(
                f"  z5 of Ukraine, {label}: {len(tiles)} tiles, "
                f"{max(b for _, b in cold) / 1000:.1f} KB largest; cold "
                f"{', '.join(f'{ms:.0f}' for ms, _ in cold)} ms (slowest "
                f"{max(ms for ms, _ in cold):.0f}, all {sum(ms for ms, _ in cold):.0f}; goal "
                f"{Z5_GOAL_MS:.0f} each); again {', '.join(f'{ms:.0f}' for ms, _ in warm)} ms"
            )
        lines.append(f"  {'zoom':>4} {'tiles':>6} {'largest KB':>10} {'p50 ms':>7} {'max ms':>7}")
        for zoom in range(0, 15):
            tiles = tiles_of(UKRAINE, zoom) if zoom <= scan_zoom else front_tiles(zoom)
            figures = [_get(client, t, at) for t in tiles]
            largest = max(b for _, b in figures)
            times = [ms for ms, _ in figures]
            flag = "" if largest < LIMIT_BYTES else "  OVER 500 KB"
            lines.append(
                f"  {zoom:>4} {len(tiles):>6} {largest / 1000:>10.1f} "
                f"{statistics.median(times):>7.1f} {max(times):>7.1f}{flag}"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=60, help="daily snapshots (default 60)")
    parser.add_argument(
        "--scan-zoom", type=int, default=8, help="scan every tile of Ukraine up to this zoom (8)"
    )
    args = parser.parse_args()
    with warnings.catch_warnings():  # the test fixtures' imports warn about test clients
        warnings.simplefilter("ignore")
        from tests.conftest import PostgresDatabases  # throwaway databases, as in the tests

    from app.storage.database import create_db_engine

    pg = PostgresDatabases()
    try:
        with tempfile.TemporaryDirectory(prefix="frontline-tiles-") as tmp:
            work = Path(tmp)
            for backend in ("sqlite", "postgis"):
                url = f"sqlite:///{work / 'tiles.db'}" if backend == "sqlite" else pg.create()
                engine = create_db_engine(url)
                started = time.perf_counter()
                last = load_theatre(Database(engine), work / "archive", args.days)
                engine.dispose()
                print(
                    f"{backend}: {args.days} daily maps (benchmarks.archive), "
                    f"imported in {time.perf_counter() - started:.1f} s; load average "
                    f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
                )
                for line in measure(url, last, args.scan_zoom):
                    print(line, flush=True)
    finally:
        pg.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
