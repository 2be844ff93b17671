"""How fast ``frontline import`` reads a DeepState-style archive, against the floor of merely
parsing the same files with orjson, on SQLite and on PostGIS.

    .venv/bin/python -m benchmarks.import_archive [--days 300] [--every 10] [--keep DIR]

It generates daily whole-front snapshots (wrapped ``{"id", "datetime", "map"}``, named by Unix
time, about 600 KB and 100 polygons each: a long band of Russian-held ground cut into cells
with jagged front edges, Crimea and the pre-2022 Donbas, grey zones along the front, Ukrainian
ground in Kursk and Belgorod oblasts (gone from Belgorod late in the archive), liberated
patches, units and arrows); the drawing changes every ``--every`` days. Each import runs in a
child process on a fresh database (regions, parties and sources seeded first, not timed), so
its peak memory (maxrss) is its own; it is measured for the first third of the files and for
all of them, to show whether memory grows with the number of files. PostGIS is a throwaway
database on ``FRONTLINE_TEST_POSTGRES_URL`` (as for the tests: default the local server as
postgres), dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from app.storage.database import Database

SOURCE = "deepstate-bench"
START = dt.datetime(2024, 1, 1, 6, 0, tzinfo=dt.UTC)

# --- the archive ---------------------------------------------------------------------------------

# The front, north to south, roughly along the 2024 line (lon, lat).
FRONT = [
    (37.9, 50.25),
    (37.6, 49.75),
    (38.0, 49.2),
    (37.8, 48.7),
    (37.6, 48.2),
    (37.2, 47.9),
    (36.4, 47.7),
    (35.6, 47.5),
    (34.8, 47.45),
    (33.8, 46.9),
    (33.0, 46.6),
]
CELLS = 90  # Russian-held ground along the front, as adjacent cells
POINTS_PER_EDGE = 110  # vertices along each cell's front edge (and as many on its rear edge)


def _along(t: float) -> tuple[float, float]:
    """The point at fraction t of the front polyline (its latitude falls all along)."""
    t = min(max(t, 0.0), 1.0) * (len(FRONT) - 1)
    i = min(int(t), len(FRONT) - 2)
    f = t - i
    (x0, y0), (x1, y1) = FRONT[i], FRONT[i + 1]
    return x0 + (x1 - x0) * f, y0 + (y1 - y0) * f


def _edge(t0: float, t1: float, offset: float, jitter: float) -> list[Any]:
    """The front between fractions t0 and t1, moved ``offset`` degrees east and wavy by up to
    ``jitter``. Moves are east-west only, so the edges of a cell never cross."""
    out = []
    for k in range(POINTS_PER_EDGE):
        x, y = _along(t0 + (t1 - t0) * k / (POINTS_PER_EDGE - 1))
        wave = jitter * math.sin(math.pi * k / (POINTS_PER_EDGE - 1)) * math.sin(k * 0.05)
        out.append([round(x + offset + wave, 7), round(y, 7)])
    return out


def _ring(points: list[Any]) -> list[Any]:
    return [[x, y, 0] for x, y in [*points, points[0]]]


def _feature(ring: list[Any], fill: str, name: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [_ring(ring)]},
        "properties": {"name": name, "fill": fill, "fill-opacity": 0.4, "stroke": fill},
    }


def _blob(cx: float, cy: float, r: float, n: int, rng: random.Random) -> list[Any]:
    """A ragged oval: one radius per angle, so its outline never crosses itself."""
    out = []
    for k in range(n):
        angle, radius = 2 * math.pi * k / n, r * (1 + 0.1 * rng.random())
        out.append(
            [round(cx + radius * math.cos(angle), 7), round(cy + 0.6 * radius * math.sin(angle), 7)]
        )
    return out


OCCUPIED = "Окуповано /// Occupied /// geoJSON.status.occupied"
ORDLO = "ОРДЛО та Крим /// ORDLO and Crimea /// geoJSON.status.ordlo"
UNKNOWN = "Невідомо /// Unknown /// geoJSON.status.unknown"
LIBERATED = "Звільнено /// Liberated /// geoJSON.status.liberated"
UA_IN_RU = "ЗСУ в РФ /// AFU in Russia /// geoJSON.status.ua_in_ru"  # noqa: RUF001


def snapshot(version: int) -> dict[str, Any]:
    """The map as of its ``version``-th change (each change moves part of the front)."""
    rng = random.Random(7)  # the same base map every time; versions differ where they advance
    features = []
    for c in range(CELLS):
        t0, t1 = c / CELLS, (c + 1) / CELLS
        advance = 0.004 * sum(1 for v in range(version) if (v * 37) % CELLS == c)
        front = _edge(t0, t1, -advance, 0.004)
        rear = _edge(t0, t1, 0.45, 0.0)
        features.append(_feature(front + rear[::-1], "#a52714", OCCUPIED))
    features.append(_feature(_blob(34.2, 45.3, 1.2, 900, rng), "#880e4f", ORDLO))  # Crimea
    features.append(_feature(_blob(38.9, 48.2, 0.6, 700, rng), "#880e4f", ORDLO))  # Donbas
    for k in range(4):
        x, y = _along(0.15 + 0.2 * k)
        features.append(_feature(_blob(x - 0.05, y, 0.04, 60, rng), "#bcaaa4", UNKNOWN))
    inside_russia = [(35.3, 51.2), (35.5, 51.25), (35.2, 51.1), (36.6, 50.6)]  # Kursk, Belgorod
    for k, (x, y) in enumerate(inside_russia):
        if version < 20 or k == 0:  # late in the archive: less in Kursk, none in Belgorod
            features.append(_feature(_blob(x, y, 0.05, 80, rng), "#01579b", UA_IN_RU))
    for k in range(2):
        x, y = _along(0.05 + 0.3 * k)
        features.append(_feature(_blob(x - 0.3, y, 0.1, 80, rng), "#0f9d58", LIBERATED))
    for k in range(25):  # units, airfields, arrows
        x, y = _along(rng.random())
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [x - 0.1, y, 0]},
                "properties": {"name": f"Unit {k} /// Unit {k} /// unit", "description": ""},
            }
        )
    for _ in range(10):
        x, y = _along(rng.random())
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[x, y, 0], [x - 0.1, y + 0.05, 0], [x - 0.2, y + 0.05, 0]],
                },
                "properties": {"name": "Arrow /// Arrow /// arrow"},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def generate(folder: Path, days: int, every: int) -> list[Path]:
    """``days`` daily files; the drawing changes every ``every`` days."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    version, current = -1, None
    for day in range(days):
        if current is None or (day % every == 0 and day > 0):
            version += 1
            current = snapshot(version)
        moment = START + dt.timedelta(days=day)
        stamp = int(moment.timestamp())
        document = {"id": stamp, "datetime": moment.isoformat(), "map": current}
        path = folder / f"{stamp}.json"
        path.write_bytes(orjson.dumps(document))
        paths.append(path)
    return paths


def floor(paths: list[Path]) -> float:
    """Seconds merely to read and parse the files with orjson (best of three)."""
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        for path in paths:
            orjson.loads(path.read_bytes())
        best = min(best, time.perf_counter() - started)
    return best


# --- one import, in a child process --------------------------------------------------------------


def prepare(db: Database) -> None:
    """Migrate ``db`` and give it what the archive needs: the regions, UA and RU, the source."""
    from app.domain.model import Party, Source, SourceKind
    from app.seed import load_regions
    from app.settings import PROJECT_ROOT

    db.upgrade()
    with db.write("bench") as unit:
        load_regions(unit, PROJECT_ROOT / "data" / "regions" / "boundaries.geojson")
        unit.reference.save_party(Party("UA", "Ukraine", "#0057b7"))
        unit.reference.save_party(Party("RU", "Russia", "#d52b1e"))
        unit.reference.save_source(
            Source(SOURCE, "DeepStateMap (generated)", SourceKind.OSINT, None)
        )


def child(url: str, paths: list[Path]) -> dict[str, Any]:
    from sqlalchemy import text

    from app.importer.engine import Importer, ImportOptions
    from app.importer.rules import PROFILES
    from app.storage.database import Database, create_db_engine

    engine = create_db_engine(url)
    db = Database(engine)
    prepare(db)

    def size() -> int:
        if engine.dialect.name == "sqlite":
            engine.dispose()  # checkpoints the WAL into the file
            return Path(engine.url.database or "").stat().st_size
        with engine.connect() as c:
            return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one())

    before = size()
    options = ImportOptions(source=SOURCE, rules=PROFILES["deepstate"], recorded_by="bench")
    started = time.perf_counter()
    summary = Importer(db, options).run(paths)
    seconds = time.perf_counter() - started
    assert summary.ok, summary.errors
    after = size()
    return {
        "files": summary.files_read,
        "seconds": seconds,
        "observations": summary.observations,
        "confirmations": summary.confirmations,
        "ended": summary.ended,
        "db_bytes": after,
        "db_growth_bytes": after - before,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def run_child(url: str, paths: list[Path], workdir: Path) -> dict[str, Any]:
    listing = workdir / f"files-{uuid.uuid4().hex[:6]}.txt"
    listing.write_text("\n".join(str(p) for p in paths))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.import_archive", "--child", url, str(listing)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the import failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=300, help="daily snapshots (default 300)")
    parser.add_argument("--every", type=int, default=10, help="days between changes (10)")
    parser.add_argument("--keep", type=Path, help="write the archive here and keep it")
    parser.add_argument("--child", nargs=2, metavar=("URL", "LIST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, listing = args.child
        paths = [Path(p) for p in Path(listing).read_text().splitlines()]
        print(json.dumps(child(url, paths)))
        return 0

    with tempfile.TemporaryDirectory(prefix="frontline-bench-") as tmp:
        work = Path(tmp)
        folder = args.keep or work / "archive"
        started = time.perf_counter()
        paths = generate(folder, args.days, args.every)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(
            f"archive: {len(paths)} daily snapshots, {megabytes:.0f} MB "
            f"({megabytes * 1000 / len(paths):.0f} KB each), a change every {args.every} days "
            f"(generated in {time.perf_counter() - started:.1f} s)"
        )
        first = paths[: max(1, len(paths) // 3)]
        floors = {len(first): floor(first), len(paths): floor(paths)}
        for n, seconds in floors.items():
            print(f"floor (read + orjson.loads, best of 3), {n} files: {seconds:.2f} s")
        with warnings.catch_warnings():  # the test fixtures' imports warn about test clients
            warnings.simplefilter("ignore")
            from tests.conftest import PostgresDatabases  # throwaway databases, as in the tests

        pg = PostgresDatabases()
        rows = []
        try:
            for db in ("sqlite", "postgis"):
                for subset in (first, paths):
                    url = (
                        f"sqlite:///{work / f'bench-{len(subset)}.db'}"
                        if db == "sqlite"
                        else pg.create()
                    )
                    rows.append((db, len(subset), run_child(url, subset, work)))
        finally:
            pg.drop_all()
        print()
        header = (
            f"{'db':8} {'files':>5} {'seconds':>8} {'files/s':>8} {'floor s':>8} {'ratio':>6} "
            f"{'peak MB':>8} {'db MB':>7} {'+import MB':>10} {'obs':>5} {'confirm':>8} "
            f"{'ended':>5}"
        )
        print(header)
        for db, n, r in rows:
            ratio = r["seconds"] / floors[n]
            print(
                f"{db:8} {n:>5} {r['seconds']:>8.2f} {r['files'] / r['seconds']:>8.1f} "
                f"{floors[n]:>8.2f} {ratio:>6.2f} {r['maxrss_kb'] / 1024:>8.0f} "
                f"{r['db_bytes'] / 1e6:>7.1f} {r['db_growth_bytes'] / 1e6:>10.1f} "
                f"{r['observations']:>5} {r['confirmations']:>8} {r['ended']:>5}"
            )
        print("\nratio = import seconds / floor seconds (target: at most 8)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
