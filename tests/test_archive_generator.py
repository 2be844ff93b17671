"""The benchmarks' generated archive has the shape measured on the real DeepStateMap history.

Thirty days from 2024-08-01 (inside the measured window, with the Kursk salient): sizes and
counts per snapshot, fills in the measured order, and how much changes from day to day.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections import Counter
from typing import Any

import orjson
import pytest
from shapely.geometry import shape

from app.importer import moments
from app.settings import PROJECT_ROOT
from benchmarks.archive import FILL_COUNTS, TARGET, TARGET_CHANGES, snapshots

DAYS = 30


def _within(value: float, target: float, share: float = 0.2) -> bool:
    return target * (1 - share) <= value <= target * (1 + share)


@pytest.fixture(scope="module")
def days() -> list[tuple[Any, dict[str, Any]]]:
    return [(snap, orjson.loads(snap.data)) for snap in snapshots(DAYS, dt.date(2024, 8, 1))]


def _polygons(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in document["map"]["features"] if f["geometry"]["type"] == "Polygon"]


def test_each_snapshot_is_sized_like_the_real_ones(days: list[tuple[Any, Any]]) -> None:
    sizes = [len(snap.data) for snap, _ in days]
    features = [len(doc["map"]["features"]) for _, doc in days]
    polygons = [_polygons(doc) for _, doc in days]
    vertices = [sum(len(f["geometry"]["coordinates"][0]) for f in p) for p in polygons]
    assert _within(statistics.mean(sizes), TARGET["bytes"]), statistics.mean(sizes)
    assert _within(statistics.mean(features), TARGET["features"]), statistics.mean(features)
    assert _within(statistics.mean(map(len, polygons)), TARGET["polygons"])
    assert _within(statistics.mean(vertices), TARGET["vertices"]), statistics.mean(vertices)
    kinds = Counter(f["geometry"]["type"] for _, doc in days for f in doc["map"]["features"])
    assert set(kinds) == {"Polygon", "Point", "LineString"}
    assert kinds["Point"] > 10 * kinds["LineString"]  # the rest are points and a few lines


def test_fills_come_in_the_measured_order(days: list[tuple[Any, Any]]) -> None:
    fills = Counter(f["properties"]["fill"] for _, doc in days for f in _polygons(doc))
    measured = sorted(FILL_COUNTS, key=FILL_COUNTS.__getitem__, reverse=True)
    assert [fill for fill, _ in fills.most_common()] == measured
    counts = [fills[fill] for fill in measured]
    assert counts == sorted(set(counts), reverse=True)  # strictly: no ties


def test_every_polygon_is_valid_and_files_are_what_the_importer_reads(
    days: list[tuple[Any, Any]],
) -> None:
    for snap, doc in days[:5]:
        assert moments.from_filename(snap.name) == snap.moment
        assert moments.from_wrapper(doc) == snap.moment
        assert doc["id"] == int(snap.moment.timestamp())
        assert doc["map"]["type"] == "FeatureCollection"
        for feature in _polygons(doc):
            ring = feature["geometry"]["coordinates"][0]
            assert ring[0] == ring[-1]
            assert len(ring[0]) == 3
            assert shape(feature["geometry"]).is_valid


def test_day_to_day_changes_are_like_the_real_ones(days: list[tuple[Any, Any]]) -> None:
    region_boxes = [
        shape(f["geometry"]).bounds
        for f in json.loads((PROJECT_ROOT / "data/regions/boundaries.geojson").read_text())[
            "features"
        ]
    ]
    changes, touched = [], []
    previous: Counter[bytes] | None = None
    for _, doc in days:
        current = Counter(orjson.dumps(f) for f in _polygons(doc))
        if previous is not None:
            changed = (current - previous) + (previous - current)  # old and new drawings
            changes.append(sum(changed.values()))
            regions = set()
            for drawn in changed:
                x0, y0, x1, y1 = shape(orjson.loads(drawn)["geometry"]).bounds
                regions |= {
                    i
                    for i, (a0, b0, a1, b1) in enumerate(region_boxes)
                    if a0 <= x1 and x0 <= a1 and b0 <= y1 and y0 <= b1
                }
            touched.append(len(regions))
        previous = current
    assert _within(statistics.median(changes), TARGET_CHANGES["median"], 0.3), changes
    assert max(changes) <= TARGET_CHANGES["max"]
    assert changes.count(0) <= 1  # 1 in 310 unchanged
    nonzero = [t for t, c in zip(touched, changes, strict=True) if c]
    assert _within(statistics.mean(nonzero), TARGET_CHANGES["regions"], 0.3), touched


def test_the_front_moves(days: list[tuple[Any, Any]]) -> None:
    def occupied(doc: dict[str, Any]) -> Any:
        cells = [
            shape(f["geometry"]) for f in _polygons(doc) if f["properties"]["fill"] == "#a52714"
        ]
        return cells

    first, last = occupied(days[0][1]), occupied(days[-1][1])
    moved = [a.symmetric_difference(b).area for a, b in zip(first, last, strict=True)]
    assert sum(1 for m in moved if m > 0) >= len(first) // 2  # most cells have moved
    assert all(m < 0.05 * a.area for m, a in zip(moved, first, strict=True))  # a little


def test_the_same_seed_gives_the_same_bytes() -> None:
    one = [s.data for s in snapshots(3, dt.date(2024, 8, 1), seed=5)]
    again = [s.data for s in snapshots(3, dt.date(2024, 8, 1), seed=5)]
    other = [s.data for s in snapshots(3, dt.date(2024, 8, 1), seed=6)]
    assert one == again
    assert one != other
