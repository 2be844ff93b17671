"""Generated DeepStateMap-like archives: daily whole-theatre snapshots shaped like the real ones.

    .venv/bin/python -m benchmarks.archive OUT_DIR [--days 300] [--start 2024-08-01] [--seed 1]

The real archive may not be redistributed, so the benchmarks use this one. Its shape was
measured on the real DeepStateMap history (Aug 2024 - Jun 2025, 311 snapshots; see
/work/shared/design/patterns.md and issue 11):

- each snapshot about 600 KB, about 480 features: about 104 polygons with about 15,000
  vertices in all, the rest unit points and a few arrow lines;
- polygon fills in the measured proportions (``FILL_COUNTS``: features over the 311 snapshots),
  so ``#0f9d58`` > ``#bcaaa4`` > ``#ff5252`` > ``#a52714`` > ``#880e4f`` > ``#0288d1`` >
  ``#bdbdbd`` > ``#01579b``;
- between consecutive snapshots a median of 14 polygon features change (up to 140), counted
  as the symmetric difference (a redrawn polygon counts twice: the old and the new drawing),
  touching on average the bounding boxes of about 8 regions; about 1 snapshot in 310 is
  unchanged.

How it is drawn: a front line runs through Kharkiv, Luhansk, Donetsk, Zaporizhzhia and Kherson
oblasts. Occupied ground (``#a52714``) is a band of cells east and south of it whose front
edges move a little each time a cell is redrawn (mostly west: the front advances); grey zones
(``#bcaaa4``) and ``#ff5252`` patches sit on the front and grow, shrink and move with it;
liberated ground (``#0f9d58``) lies behind it on the Ukrainian side; Crimea and the pre-2022
Donbas are ``#880e4f``; a Ukrainian salient in Kursk oblast (``#01579b``) exists from
2024-08-06 to 2025-04-26, growing in August 2024 and shrinking from November. Each day a few
polygons are redrawn (chosen at random, weighted towards the front), a few units move, and
on about 2 % of days a large redraw touches many polygons at once.

It is deterministic by seed, and fast: a feature is serialised once per drawing and a file is
the join of its features' bytes, so a day costs only its changes (1,400 files in a few
seconds). Files are named by moment (``2024-08-20T06-00-00.json``) and hold the wrapper the
importer reads: ``{"id": <unix time>, "datetime": "...", "map": FeatureCollection}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

# Polygon features over the 311 measured snapshots, by fill.
FILL_COUNTS = {
    "#0f9d58": 17_596,  # liberated
    "#bcaaa4": 4_899,  # grey zone
    "#ff5252": 3_732,
    "#a52714": 3_129,  # occupied since 2022
    "#880e4f": 933,  # occupied before 2022 (Crimea, ORDLO)
    "#0288d1": 744,
    "#bdbdbd": 668,
    "#01579b": 659,  # Ukrainian control inside Russia
}
MEASURED_SNAPSHOTS = 311
TARGET = {"bytes": 600_000, "features": 480, "polygons": 104, "vertices": 15_000}
TARGET_CHANGES = {"median": 14, "max": 140, "regions": 8, "unchanged_one_in": 310}

DEFAULT_START = dt.date(2024, 8, 1)
SNAPSHOT_TIME = dt.time(6, 0, tzinfo=dt.UTC)
KURSK_FROM, KURSK_UNTIL = dt.date(2024, 8, 6), dt.date(2025, 4, 26)

NAMES = {  # as the real archive names them: Ukrainian /// English /// key
    "#0f9d58": "Звільнено /// Liberated /// geoJSON.status.liberated",
    "#bcaaa4": "Сіра зона /// Grey zone /// geoJSON.status.unknown",  # noqa: RUF001
    "#ff5252": "Ймовірно окуповано /// Probably occupied /// geoJSON.status.probably",
    "#a52714": "Окуповано /// Occupied /// geoJSON.status.occupied",
    "#880e4f": "ОРДЛО та Крим /// ORDLO and Crimea /// geoJSON.status.ordlo",
    "#0288d1": "Звільнено від окупації /// Freed /// geoJSON.status.freed",
    "#bdbdbd": "Невідомо /// Unknown /// geoJSON.status.unknown_other",
    "#01579b": "ЗСУ в РФ /// AFU in Russia /// geoJSON.status.ua_in_ru",  # noqa: RUF001
}

# --- the front ------------------------------------------------------------------------------------

# Roughly the 2024 line, north to south then west (lon, lat): Vovchansk, Kupiansk, Lyman,
# Siversk, Chasiv Yar, Toretsk, Pokrovsk, Kurakhove, Vuhledar, Velyka Novosilka, Huliaipole,
# Robotyne, Kamianske, the Dnipro (Enerhodar, Nova Kakhovka, Kherson), Kinburn.
FRONT_POINTS = [
    (36.95, 50.30),
    (37.60, 49.85),
    (37.85, 49.45),
    (38.05, 49.05),
    (38.10, 48.80),
    (37.90, 48.58),
    (37.80, 48.38),
    (37.30, 48.25),
    (37.25, 47.98),
    (37.20, 47.78),
    (36.80, 47.78),
    (36.20, 47.62),
    (35.80, 47.45),
    (35.30, 47.48),
    (34.60, 47.45),
    (33.60, 46.85),
    (32.70, 46.62),
    (31.80, 46.50),
]
SAMPLES = 4000  # the front resampled by arc length, then smoothed
SMOOTHING = 250  # samples either side: the curve bends gently enough for the band's depth

Curve = tuple[np.ndarray, np.ndarray]  # points (SAMPLES x 2) and unit normals to the RU side


def _front(window: int) -> Curve:
    """The front resampled by arc length and smoothed over ``window`` samples either side,
    with its normals towards the Russian-held side (left of the way south: east, then south)."""
    vertices = np.array(FRONT_POINTS)
    lengths = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(vertices, axis=0).T))])
    d = np.linspace(0.0, lengths[-1], SAMPLES)
    raw = np.column_stack(
        [np.interp(d, lengths, vertices[:, 0]), np.interp(d, lengths, vertices[:, 1])]
    )
    padded = np.concatenate([np.repeat(raw[:1], window, 0), raw, np.repeat(raw[-1:], window, 0)])
    kernel = np.ones(2 * window + 1) / (2 * window + 1)
    points = np.column_stack([np.convolve(padded[:, i], kernel, mode="valid") for i in (0, 1)])
    tangent = np.gradient(points, axis=0)
    tangent /= np.hypot(tangent[:, 0], tangent[:, 1])[:, None]
    return points, np.column_stack([-tangent[:, 1], tangent[:, 0]])


_FRONT = _front(SMOOTHING)


def _at(t: np.ndarray, s: np.ndarray | float) -> np.ndarray:
    """Points at fractions ``t`` along the front, ``s`` degrees towards the Russian side."""
    k = np.clip(np.rint(np.asarray(t) * (SAMPLES - 1)).astype(int), 0, SAMPLES - 1)
    points, normals = _FRONT
    return points[k] + normals[k] * np.asarray(s, dtype=float).reshape(-1, 1)


def _point(t: float, s: float) -> tuple[float, float]:
    x, y = _at(np.array([t]), s)[0]
    return float(x), float(y)


def _ring(points: np.ndarray, digits: int = 8) -> np.ndarray:
    """A closed ring as the real archive gives it: [lon, lat, 0]."""
    closed = np.vstack([points, points[:1]])
    return np.round(np.column_stack([closed, np.zeros(len(closed))]), digits)


# --- polygons -----------------------------------------------------------------------------------


@dataclass
class Slot:
    """One polygon feature of the map: its kind, where it is, and its current drawing."""

    fill: str
    kind: str  # cell | patch | blob | salient
    t0: float = 0.0
    t1: float = 0.0
    s0: float = 0.0
    s1: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    r: float = 0.0
    n: int = 60
    weight: float = 0.05  # how likely it is to be redrawn on a given day
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))  # a cell's front edge
    version: int = 0
    index: int = 0  # its place in the map
    drawn_size: float = 0.0  # a salient's radius when last drawn
    bytes: bytes = b""
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


CELLS = 10
CELL_FRONT_VERTICES, CELL_REAR_VERTICES = 400, 100
CELL_DEPTH = 0.45


def _ragged(rng: np.random.Generator, n: int, amount: float) -> np.ndarray:
    """Smooth-ish noise: a few sines plus a little per-vertex jitter."""
    k = np.arange(n)
    phase = rng.uniform(0, 2 * math.pi, 3)
    wave = (
        0.5 * np.sin(phase[0] + k * 0.07)
        + 0.3 * np.sin(phase[1] + k * 0.23)
        + 0.2 * np.sin(phase[2] + k * 0.61)
    )
    return amount * (wave + 0.3 * rng.uniform(-1, 1, n))


def _hump(n: int, power: float = 1.0) -> np.ndarray:
    """0 at both ends, 1 in the middle."""
    return np.sin(np.pi * np.arange(n) / (n - 1)) ** power


def _cell_ring(slot: Slot, rng: np.random.Generator) -> np.ndarray:
    n = CELL_FRONT_VERTICES
    front_s = slot.offsets + _ragged(rng, n, 0.003) * _hump(n)  # ends fixed: neighbours join
    front = _at(np.linspace(slot.t0, slot.t1, n), front_s)
    rear = _at(np.linspace(slot.t1, slot.t0, CELL_REAR_VERTICES), CELL_DEPTH)
    return np.vstack([front, rear])


def _patch_ring(slot: Slot, rng: np.random.Generator, base: float) -> np.ndarray:
    """A patch on the front: between s0 and s1 (from the local front ``base``), ragged."""
    half = slot.n // 2
    bulge = _hump(half, 0.5)
    t = np.linspace(slot.t0, slot.t1, half)
    near = _at(t, base + (slot.s0 + _ragged(rng, half, 0.004)) * bulge)
    far = _at(t[::-1], base + (slot.s1 + _ragged(rng, half, 0.004)) * bulge)
    return np.vstack([near, far])


def _blob_ring(cx: float, cy: float, r: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """A ragged oval, one radius per angle (so it never crosses itself), counter-clockwise."""
    radius = r * (1 + _ragged(rng, n, 0.08))
    angle = 2 * np.pi * np.arange(n) / n
    return np.column_stack([cx + radius * np.cos(angle), cy + 0.65 * radius * np.sin(angle)])


def _kursk_size(day: dt.date) -> float:
    """The salient's radius in degrees: grows in August 2024, shrinks from November."""
    if not KURSK_FROM <= day <= KURSK_UNTIL:
        return 0.0

    def ramp(a: dt.date, b: dt.date, x0: float, x1: float) -> float:
        f = (day - a).days / max((b - a).days, 1)
        return x0 + (x1 - x0) * min(max(f, 0.0), 1.0)

    if day < dt.date(2024, 8, 20):
        return ramp(KURSK_FROM, dt.date(2024, 8, 20), 0.06, 0.3)
    if day < dt.date(2024, 11, 1):
        return 0.3
    if day < dt.date(2025, 2, 1):
        return ramp(dt.date(2024, 11, 1), dt.date(2025, 2, 1), 0.3, 0.16)
    return ramp(dt.date(2025, 2, 1), dt.date(2025, 3, 20), 0.16, 0.04)


class Theatre:
    """The map's polygons and points; :func:`snapshots` decides what changes each day and
    :meth:`redraw` changes one polygon."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.slots: list[Slot] = []
        self._build()
        self.points = self._build_points()

    # the layout: how many polygons of each fill, and where
    def _build(self) -> None:
        rng = self.rng
        per_snapshot = {fill: n / MEASURED_SNAPSHOTS for fill, n in FILL_COUNTS.items()}
        for c in range(CELLS):
            slot = Slot("#a52714", "cell", t0=c / CELLS, t1=(c + 1) / CELLS, weight=1.0)
            slot.offsets = np.zeros(CELL_FRONT_VERTICES)
            self.slots.append(slot)
        for fill, width, s0, s1, n, count in (
            ("#bcaaa4", 0.012, -0.05, 0.03, 150, round(per_snapshot["#bcaaa4"])),
            ("#ff5252", 0.010, -0.025, 0.06, 120, round(per_snapshot["#ff5252"])),
        ):
            for k in range(count):
                t = 0.02 + 0.96 * (k + rng.uniform(0.2, 0.8)) / count
                slot = Slot(fill, "patch", t0=t - width, t1=t + width, s0=s0, s1=s1, n=n)
                slot.weight = 1.0
                self.slots.append(slot)
        for _ in range(math.floor(per_snapshot["#0f9d58"])):
            t, s = rng.random(), -rng.uniform(0.15, 1.6)
            cx, cy = _point(t, s)
            self.slots.append(Slot("#0f9d58", "blob", cx=cx, cy=cy, r=rng.uniform(0.04, 0.25)))
        for cx, cy, r, n in (
            (34.25, 45.35, 1.1, 900),
            (38.25, 47.95, 0.45, 500),
            (39.3, 48.5, 0.5, 400),
        ):
            self.slots.append(Slot("#880e4f", "blob", cx=cx, cy=cy, r=r, n=n, weight=0.01))
        # Small ones: a whole number always there, and one more on a share of the days.
        for fill, places in (
            ("#0288d1", [(32.9, 46.55), (33.4, 46.72), (32.55, 46.5)]),
            ("#bdbdbd", [(36.92, 50.27), (37.75, 49.8), (37.0, 50.2)]),
        ):
            for cx, cy in places:
                self.slots.append(Slot(fill, "blob", cx=cx, cy=cy, r=0.03, weight=0.1))
        self.slots.append(Slot("#01579b", "salient", cx=35.33, cy=51.27, r=1.0, n=150, weight=1.0))
        self.slots.append(Slot("#01579b", "salient", cx=34.4, cy=51.33, r=0.25, n=150, weight=0.3))
        for i, slot in enumerate(self.slots):
            slot.index = i
        self.extra_share = {
            fill: per_snapshot[fill] - math.floor(per_snapshot[fill])
            for fill in ("#0288d1", "#bdbdbd")
        }
        self.whole = {fill: math.floor(per_snapshot[fill]) for fill in ("#0288d1", "#bdbdbd")}

    def _build_points(self) -> list[dict[str, Any]]:
        rng = self.rng
        out: list[dict[str, Any]] = []
        polygons = sum(FILL_COUNTS.values()) / MEASURED_SNAPSHOTS
        lines = 16
        for k in range(TARGET["features"] - round(polygons) - lines):
            t, s = rng.random(), rng.uniform(-0.4, 0.4)
            out.append({"kind": "point", "t": t, "s": s, "k": k})
        for k in range(lines):
            out.append({"kind": "line", "t": rng.random(), "s": rng.uniform(-0.1, 0.2), "k": k})
        return out

    def _point_bytes(self, p: dict[str, Any]) -> bytes:
        x, y = _point(p["t"], p["s"])
        if p["kind"] == "point":
            geometry: dict[str, Any] = {
                "type": "Point",
                "coordinates": [round(x, 10), round(y, 10), 0],
            }
            brigade = p["k"] % 150 + 1
            name = (
                f"{brigade} окрема механізована бригада /// "
                f"{brigade} Separate Mechanized Brigade /// unit"
            )
            description = (
                f'<a href="https://example.org/units/{p["k"]}" target="_blank">'
                f"https://example.org/units/{p['k']}</a>"
            )
        else:
            geometry = {
                "type": "LineString",
                "coordinates": [
                    [round(x, 10), round(y, 10), 0],
                    [round(x - 0.05, 10), round(y + 0.02, 10), 0],
                    [round(x - 0.12, 10), round(y + 0.03, 10), 0],
                ],
            }
            name, description = "Напрямок удару /// Direction of attack /// arrow", ""
        properties = {"name": name, "description": description, "styleUrl": "#icon-1899-0288D1"}
        return orjson.dumps({"type": "Feature", "geometry": geometry, "properties": properties})

    # drawing one polygon
    def draw(self, slot: Slot, day: dt.date) -> None:
        rng = np.random.default_rng([self.seed, slot.index, slot.version])
        if slot.kind == "cell":
            ring = _cell_ring(slot, rng)
        elif slot.kind == "patch":
            ring = _patch_ring(slot, rng, self._front_offset((slot.t0 + slot.t1) / 2))
        elif slot.kind == "salient":
            slot.drawn_size = _kursk_size(day) * slot.r
            ring = _blob_ring(slot.cx, slot.cy, slot.drawn_size, slot.n, rng)
        else:
            ring = _blob_ring(slot.cx, slot.cy, slot.r, slot.n, rng)
        coords = _ring(ring)
        low, high = coords.min(axis=0), coords.max(axis=0)
        slot.bbox = (float(low[0]), float(low[1]), float(high[0]), float(high[1]))
        feature = {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [coords]},
            "properties": {
                "name": NAMES[slot.fill],
                "description": "",
                "styleUrl": f"#poly-{slot.fill[1:].upper()}-1200-77",
                "fill": slot.fill,
                "fill-opacity": 0.3,
                "stroke": slot.fill,
                "stroke-opacity": 1,
                "stroke-width": 1.2,
            },
        }
        slot.bytes = orjson.dumps(feature, option=orjson.OPT_SERIALIZE_NUMPY)

    def _front_offset(self, t: float) -> float:
        """Where the occupied band's front edge is at ``t`` now (negative: it advanced)."""
        c = min(int(t * CELLS), CELLS - 1)
        cell = self.slots[c]
        k = round((t * CELLS - c) * (CELL_FRONT_VERTICES - 1))
        return float(cell.offsets[k])

    def redraw(self, slot: Slot, day: dt.date, rng: random.Random) -> None:
        """A change to one polygon: the front moves a little, a patch grows or shrinks."""
        if slot.kind == "cell":
            n = CELL_FRONT_VERTICES
            centre, width = rng.uniform(0.1, 0.9) * n, rng.uniform(0.08, 0.3) * n
            step = rng.choice((-0.012, -0.008, -0.006, -0.004, 0.004, 0.006))
            d = np.clip((np.arange(n) - centre) / width, -1, 1)
            moved = slot.offsets + step * np.cos(d * np.pi / 2) ** 2
            slot.offsets = np.clip(moved, -0.25, 0.2) * _hump(n, 0.1)
        elif slot.kind == "patch":
            grow = rng.uniform(0.85, 1.18)
            slot.s0 = min(max(slot.s0 * grow, -0.12), -0.01)
            slot.s1 = min(max(slot.s1 * grow, 0.01), 0.12)
            shift = rng.uniform(-0.002, 0.002)
            if slot.t0 + shift > 0.01 and slot.t1 + shift < 0.99:
                slot.t0, slot.t1 = slot.t0 + shift, slot.t1 + shift
        elif slot.kind == "blob":
            slot.r *= rng.uniform(0.97, 1.03)
        slot.version += 1
        self.draw(slot, day)

    def present(self, slot: Slot, day_index: int, day: dt.date) -> bool:
        if slot.kind == "salient":
            return _kursk_size(day) > 0
        if slot.fill in self.whole:
            position = [s for s in self.slots if s.fill == slot.fill].index(slot)
            if position < self.whole[slot.fill]:
                return True
            share = self.extra_share[slot.fill]  # spread evenly: floor((d+1)f) > floor(d f)
            return math.floor((day_index + 1) * share) > math.floor(day_index * share)
        return True


def _changes_today(rng: random.Random, index: int) -> int:
    """How many polygons are redrawn on day ``index`` (each counts twice in the symmetric
    difference): none on one day in 310, many on about one in 50, else about 6 or 7."""
    if index % TARGET_CHANGES["unchanged_one_in"] == 200:
        return 0
    if rng.random() < 0.02:
        return rng.randint(40, 68)  # a large redraw
    return max(1, min(30, round(rng.lognormvariate(math.log(6.5), 0.5))))


@dataclass(frozen=True)
class Snapshot:
    day: dt.date
    moment: dt.datetime
    name: str
    data: bytes


def snapshots(days: int, start: dt.date = DEFAULT_START, seed: int = 1) -> Iterator[Snapshot]:
    """``days`` daily snapshots from ``start``, as the bytes of their files."""
    theatre = Theatre(seed)
    rng = random.Random(seed * 7919 + 1)
    for slot in theatre.slots:
        theatre.draw(slot, start)
    points = [theatre._point_bytes(p) for p in theatre.points]
    present_before: list[bool] | None = None
    for index in range(days):
        day = start + dt.timedelta(days=index)
        count = _changes_today(rng, index) if index else 1
        if index and count:
            weights = [
                s.weight * (10 if count > 30 and s.fill == "#0f9d58" else 1) for s in theatre.slots
            ]
            chosen: set[int] = set()
            while len(chosen) < min(count, len(theatre.slots)):
                chosen.add(rng.choices(range(len(theatre.slots)), weights)[0])
            for slot in theatre.slots:  # the Kursk salient follows its size through time
                size = _kursk_size(day) * slot.r
                if slot.kind == "salient" and size and abs(size - slot.drawn_size) > 0.03 * slot.r:
                    chosen.add(slot.index)
            for i in sorted(chosen):
                theatre.redraw(theatre.slots[i], day, rng)
            for _ in range(3):  # a few units move
                p = rng.choice(theatre.points)
                p["s"] += rng.uniform(-0.01, 0.01)
                i = theatre.points.index(p)
                points[i] = theatre._point_bytes(p)
        if index == 0 or count:
            present = [theatre.present(s, index, day) for s in theatre.slots]
        else:
            assert present_before is not None
            present = present_before  # an unchanged day: everything stays as it was
        present_before = present
        polygons = [s.bytes for s, here in zip(theatre.slots, present, strict=True) if here]
        moment = dt.datetime.combine(day, SNAPSHOT_TIME)
        stamp = int(moment.timestamp())
        head = orjson.dumps({"id": stamp, "datetime": moment.strftime("%Y-%m-%dT%H:%M:%SZ")})
        body = b",".join(polygons + points)
        data = head[:-1] + b',"map":{"type":"FeatureCollection","features":[' + body + b"]}}"
        name = moment.strftime("%Y-%m-%dT%H-%M-%S") + ".json"
        yield Snapshot(day, moment, name, data)


def generate(folder: Path, days: int, start: dt.date = DEFAULT_START, seed: int = 1) -> list[Path]:
    """Write ``days`` daily snapshot files into ``folder``; their paths, oldest first."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for snap in snapshots(days, start, seed):
        path = folder / snap.name
        path.write_bytes(snap.data)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the files")
    parser.add_argument("--days", type=int, default=300, help="daily snapshots (300)")
    parser.add_argument(
        "--start", type=dt.date.fromisoformat, default=DEFAULT_START, help="first day (2024-08-01)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    args = parser.parse_args()
    started = time.perf_counter()
    paths = generate(args.folder, args.days, args.start, args.seed)
    size = sum(p.stat().st_size for p in paths)
    print(
        f"{len(paths)} snapshots, {size / 1e6:.0f} MB, in {args.folder} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
