"""How fast ``frontline import`` reads a DeepStateMap-like archive, against the floor of merely
parsing the same files with orjson, on SQLite and on PostGIS.

    .venv/bin/python -m benchmarks.import_archive [--sizes 100 300] [--history] [--keep DIR]

The archive is :mod:`benchmarks.archive`'s: daily whole-theatre snapshots shaped like the real
DeepStateMap history (about 600 KB, 480 features, 104 polygons and 15,000 vertices each; a
median of 14 polygons changed from one day to the next). The runs import the first 100 and
300 days from 2024-08-01 and, with ``--history``, a whole history of 1,400 days from
2022-04-01. Each import runs in a child process on a fresh database (regions, parties and the
source seeded first, not timed), so its peak memory (maxrss, its own plus that of the worker
process that prepares the files of a long run) is the import's. Per run it prints
files/s, the ratio to the orjson floor (the target in issue 11: at most 6, aim 4), the cost
per file over the first and the last 100 files (flat, or growing with the history), peak
memory, the database's size, and on PostGIS the dead rows the import left in ``pieces`` and
``observations`` (``pg_stat_user_tables.n_dead_tup``, with the rows updated, which autovacuum
cannot hide). PostGIS is a throwaway database on ``FRONTLINE_TEST_POSTGRES_URL`` (as for the
tests: default the local server as postgres), dropped afterwards. ``--json FILE`` saves the
figures (default ``var/bench/import-<time>.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.archive import DEFAULT_START, generate
from benchmarks.databases import SOURCE, dead_tuples, prepare, size_bytes, throwaway_postgis

HISTORY_START, HISTORY_DAYS = dt.date(2022, 4, 1), 1400
WINDOW = 100  # files in the first and last windows whose cost per file is compared


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


def child(url: str, paths: list[Path]) -> dict[str, Any]:
    from app.importer.engine import Importer, ImportOptions
    from app.importer.rules import PROFILES
    from app.storage.database import Database

    db = Database.from_url(url)
    prepare(db)
    db.dispose()
    before = size_bytes(url)
    db = Database.from_url(url)
    options = ImportOptions(source=SOURCE, rules=PROFILES["deepstate"], recorded_by="bench")
    per_file: list[float] = []

    class Timed(Importer):
        """The importer as it is, with a stopwatch around each file (measuring, not tuning)."""

        def _import_file(self, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return super()._import_file(*args, **kwargs)  # type: ignore[misc]
            finally:
                per_file.append(time.perf_counter() - started)

    importer = Timed(db, options) if hasattr(Importer, "_import_file") else Importer(db, options)
    started = time.perf_counter()
    summary = importer.run(paths)
    seconds = time.perf_counter() - started
    db.dispose()  # closes the connections, which flushes PostgreSQL's statistics
    assert summary.ok, summary.errors
    after = size_bytes(url)
    return {
        "files": summary.files_read,
        "seconds": seconds,
        "per_file": per_file,
        "observations": summary.observations,
        "confirmations": summary.confirmations,
        "ended": summary.ended,
        "db_bytes": after,
        "db_growth_bytes": after - before,
        # The run's own peak, plus its worker's (the process that prepares the files of a long
        # run): both at once, at worst.
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "tables": dead_tuples(url),
    }


def run_child(url: str, paths: list[Path], workdir: Path) -> dict[str, Any]:
    listing = workdir / f"files-{len(paths)}-{time.monotonic_ns()}.txt"
    listing.write_text("\n".join(str(p) for p in paths))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.import_archive", "--child", url, str(listing)],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the import of {len(paths)} files into {url} failed (see above)")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _ms(values: list[float]) -> float:
    return 1000 * statistics.mean(values) if values else math.nan


def table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        f"{'db':8} {'files':>5} {'s':>7} {'files/s':>7} {'floor s':>7} {'ratio':>6} "
        f"{'first100':>8} {'last100':>8} {'growth':>6} {'peak MB':>7} {'db MB':>6} "
        f"{'obs':>5} {'conf':>5} {'ended':>5} {'dead pieces':>11} {'dead obs':>9} "
        f"{'upd pieces':>10}"
    ]
    for row in rows:
        r, n = row["result"], row["files"]
        first, last = r["per_file"][:WINDOW], r["per_file"][-WINDOW:]
        tables = r["tables"]

        def stat(name: str, key: str, tables: dict[str, Any] = tables) -> str:
            return str(tables[name][key]) if name in tables else "-"

        out.append(
            f"{row['db']:8} {n:>5} {r['seconds']:>7.1f} {r['files'] / r['seconds']:>7.1f} "
            f"{row['floor']:>7.2f} {r['seconds'] / row['floor']:>6.1f} "
            f"{_ms(first):>6.0f}ms {_ms(last):>6.0f}ms {_ms(last) / _ms(first):>6.2f} "
            f"{r['maxrss_kb'] / 1024:>7.0f} {r['db_bytes'] / 1e6:>6.1f} "
            f"{r['observations']:>5} {r['confirmations']:>5} {r['ended']:>5} "
            f"{stat('pieces', 'dead'):>11} {stat('observations', 'dead'):>9} "
            f"{stat('pieces', 'updated'):>10}"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100, 300], help="files per run (100 300)"
    )
    parser.add_argument(
        "--history", action="store_true", help=f"also a whole history of {HISTORY_DAYS} files"
    )
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgis"])
    parser.add_argument("--keep", type=Path, help="write the archives here and keep them")
    parser.add_argument("--json", type=Path, help="save the figures here")
    parser.add_argument("--child", nargs=2, metavar=("URL", "LIST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, listing = args.child
        paths = [Path(p) for p in Path(listing).read_text().splitlines()]
        print(json.dumps(child(url, paths)))
        return 0

    runs: list[tuple[str, list[Path]]] = []
    with tempfile.TemporaryDirectory(prefix="frontline-bench-") as tmp:
        work = Path(tmp)
        root = args.keep or work
        started = time.perf_counter()
        window = generate(root / "window", max(args.sizes), DEFAULT_START)
        runs += [(f"{n}", window[:n]) for n in args.sizes]
        if args.history:
            history = generate(root / "history", HISTORY_DAYS, HISTORY_START)
            runs.append((f"{HISTORY_DAYS} (history)", history))
        total = sum(p.stat().st_size for _, paths in runs for p in paths) / 1e6
        print(
            f"archives generated in {time.perf_counter() - started:.1f} s: the first "
            f"{max(args.sizes)} days from {DEFAULT_START}"
            + (f", and {HISTORY_DAYS} days from {HISTORY_START}" if args.history else "")
            + f" ({total:.0f} MB read in all runs)",
            flush=True,
        )
        floors = {len(paths): floor(paths) for _, paths in runs}
        for n, seconds in floors.items():
            print(f"floor (read + orjson.loads, best of 3), {n} files: {seconds:.2f} s", flush=True)

        rows: list[dict[str, Any]] = []
        with throwaway_postgis() as new_postgis:
            for db in args.databases:
                for label, paths in runs:
                    url = (
                        f"sqlite:///{work / f'bench-{len(paths)}.db'}"
                        if db == "sqlite"
                        else new_postgis()
                    )
                    print(f"importing {label} files into {db} ...", flush=True)
                    result = run_child(url, paths, work)
                    rows.append(
                        {
                            "db": db,
                            "files": len(paths),
                            "floor": floors[len(paths)],
                            "result": result,
                        }
                    )
        print()
        for line in table(rows):
            print(line)
        print(
            "\nratio = import seconds / floor seconds (issue 11: at most 6, aim 4); first100 and"
            " last100 = mean cost per file over the first and the last 100 files, growth ="
            " last/first (1.0 = flat); dead/upd = pg_stat_user_tables.n_dead_tup / n_tup_upd"
            " after the import (PostGIS)"
        )
        out = (
            args.json or Path("var/bench") / f"import-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1))
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
