"""DeepStateMap's public history API, kept in an archive folder and imported.

The API (base ``DEEPSTATE_API_URL``, default https://deepstatemap.live/api):

- ``GET /history/public``: a JSON array of ``{id, datetime, description, descriptionEn,
  updatedAt, createdAt, status}``, ``id`` being the snapshot's Unix time;
- ``GET /history/{id}/geojson``: the snapshot, a bare FeatureCollection (``[lon, lat, 0]``);
- ``GET /history/{id}/areas``: DeepState's own areas per status, ``[{hash, area, percent,
  type}]`` (``hash`` the fill colour, ``area`` km²); 404 for some snapshots.

Archive layout (``--archive``, default ``ARCHIVE_DIR/deepstate``): ``maps/{id}.geojson`` and
``areas/{id}.json`` as served (``areas/{id}.missing`` when DeepState answered 404), and
``history.json``, the last list seen. A snapshot counts as archived once both are there.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from app.domain import geometry as geo
from app.domain.model import Source, SourceKind
from app.domain.timeutil import isoformat
from app.feeds.archive import write_atomically
from app.feeds.http import Client, FormatChanged
from app.feeds.run import Feed, SyncOptions, SyncReport
from app.importer.reading import Feature, FileError, MapFile, read_snapshot
from app.importer.rules import PROFILES, normalise
from app.importer.snapshot import union
from app.storage.database import Database
from app.storage.published import PublishedArea, SnapshotAreas

SOURCE = Source(
    "deepstate",
    "DeepStateMap",
    SourceKind.OSINT,
    None,
    "https://deepstatemap.live",
    "DeepStateMap.Live: a Ukrainian OSINT map of the front, updated about daily. Its data "
    "belongs to DeepState; its terms apply to whoever syncs it.",
)
_POLYGONS = frozenset({"Polygon", "MultiPolygon"})


@dataclass(frozen=True)
class Entry:
    """One snapshot the history lists."""

    id: int
    shown: str  # DeepState's display string for it

    @property
    def moment(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.id, dt.UTC)


def parse_history(data: Any) -> list[Entry]:
    """The entries of ``/history/public``, in time order; anything else is a format change."""
    expected = "a JSON array of {id, datetime, ...} with id the snapshot's Unix time"
    if not isinstance(data, list):
        raise FormatChanged(
            f"DeepStateMap /history/public changed its format: expected {expected}, "
            f"got a JSON {type(data).__name__}."
        )
    entries = []
    for i, item in enumerate(data):
        raw = item.get("id") if isinstance(item, dict) else None
        try:
            ok = raw is not None and not isinstance(raw, bool) and int(raw) == float(raw)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise FormatChanged(
                f"DeepStateMap /history/public changed its format: entry {i} has no usable "
                f"'id' ({orjson.dumps(item).decode()[:100]}); expected {expected}."
            )
        assert raw is not None
        entries.append(Entry(int(raw), str(item.get("datetime") or "")))
    return sorted(entries, key=lambda e: e.id)


def _check_map(data: Any, entry: Entry) -> None:
    if not (
        isinstance(data, dict)
        and data.get("type") == "FeatureCollection"
        and isinstance(data.get("features"), list)
    ):
        raise FormatChanged(
            f"DeepStateMap /history/{entry.id}/geojson changed its format: expected a bare "
            "GeoJSON FeatureCollection."
        )


def _check_areas(data: Any, entry: Entry) -> None:
    ok = isinstance(data, list) and all(
        isinstance(a, dict)
        and isinstance(a.get("hash"), str)
        and isinstance(a.get("area"), int | float)
        and not isinstance(a.get("area"), bool)
        for a in data
    )
    if not ok:
        raise FormatChanged(
            f"DeepStateMap /history/{entry.id}/areas changed its format: expected "
            "[{hash, area, percent, type}] with hash a colour and area in km²."
        )


def fill_key(value: Any) -> str:
    """A colour as compared here: lower case, with its '#'."""
    text = normalise(value) or ""
    return text if text.startswith("#") else f"#{text}"


def measured_as_drawn(name: str, features: list[Feature]) -> dict[str, float]:
    """The geodesic area (km²) of each fill's polygons as drawn, unioned, before any clipping."""
    by_fill: dict[str, list[Feature]] = {}
    for feature in features:
        if feature.kind in _POLYGONS:
            by_fill.setdefault(fill_key(feature.properties.get("fill")), []).append(feature)
    return {
        fill: geo.geodesic_area_km2(union(name, group, strict=False).geometry)
        for fill, group in by_fill.items()
    }


def compare(
    entry: Entry, published: list[Mapping[str, Any]] | None, measured: dict[str, float], tol: float
) -> SnapshotAreas:
    """DeepState's published areas next to the areas measured here, flagged beyond ``tol`` %."""
    areas = []
    for item in published or []:
        fill = fill_key(item["hash"])
        said = float(item["area"])
        here = measured.get(fill, 0.0)
        difference = (here - said) / said * 100 if said > 0 else None
        flagged = abs(difference) > tol if difference is not None else here > geo.MIN_PIECE_KM2
        percent = item.get("percent")
        areas.append(
            PublishedArea(
                fill,
                None if item.get("type") is None else str(item["type"]),
                said,
                float(percent) if isinstance(percent, int | float) else None,
                here,
                difference,
                flagged,
            )
        )
    return SnapshotAreas(SOURCE.slug, str(entry.id), entry.moment, tuple(areas))


class DeepStateSync(Feed):
    name = "deepstate"
    source = SOURCE.slug
    rules = PROFILES["deepstate"]
    registers = SOURCE
    folders = ("maps", "areas")

    def __init__(
        self,
        db: Database,
        client: Client,
        api_url: str,
        options: SyncOptions,
        tolerance_pct: float,
    ) -> None:
        super().__init__(db, options)
        self.client = client
        self.api = api_url.rstrip("/")
        self.tolerance = tolerance_pct

    @property
    def areas_dir(self) -> Path:
        return self.o.archive / "areas"

    def _map_path(self, entry: Entry) -> Path:
        return self.o.maps / f"{entry.id}.geojson"

    def _areas_paths(self, snapshot: str) -> tuple[Path, Path]:
        return self.areas_dir / f"{snapshot}.json", self.areas_dir / f"{snapshot}.missing"

    def _archived(self, entry: Entry) -> bool:
        return self._map_path(entry).exists() and any(
            p.exists() for p in self._areas_paths(str(entry.id))
        )

    def download(self, report: SyncReport) -> None:
        found = self.client.get(f"{self.api}/history/public", what="DeepStateMap history")
        assert found is not None
        entries = parse_history(found[0])
        write_atomically(self.o.archive / "history.json", found[1])
        if self.o.since is not None:
            since = self.o.since.timestamp()
            entries = [e for e in entries if e.id >= since]
        report.listed = len(entries)
        todo = [e for e in entries if not self._archived(e)]
        report.already = len(entries) - len(todo)
        bar = tqdm(todo, unit="snapshot", desc="download", disable=not self.o.progress)
        for entry in bar:
            if self.o.stopping():
                raise KeyboardInterrupt
            self._fetch(entry)
            report.downloaded += 1

    def _fetch(self, entry: Entry) -> None:
        path = self._map_path(entry)
        if not path.exists():
            found = self.client.get(
                f"{self.api}/history/{entry.id}/geojson",
                what=f"DeepStateMap snapshot {entry.id}",
            )
            assert found is not None
            _check_map(found[0], entry)
            write_atomically(path, found[1])
        present, missing = self._areas_paths(str(entry.id))
        areas = self.client.get(
            f"{self.api}/history/{entry.id}/areas",
            what=f"DeepStateMap areas of snapshot {entry.id}",
            missing_ok=True,
        )
        if areas is None:
            write_atomically(missing, b"404: DeepStateMap published no areas for this snapshot\n")
        else:
            _check_areas(areas[0], entry)
            write_atomically(present, areas[1])

    def _save(self, areas: SnapshotAreas) -> None:
        with self.db.write("sync:deepstate") as unit:
            unit.published.save(areas)

    def after_import(self, report: SyncReport) -> None:
        """Each archived snapshot not yet on record: DeepState's areas next to ours."""
        with self.db.read() as unit:
            known = unit.published.snapshots(SOURCE.slug)
        for path in sorted(self.o.maps.glob("*.geojson")) if self.o.maps.is_dir() else []:
            snapshot = path.stem
            present, missing = self._areas_paths(snapshot)
            if not snapshot.isdigit() or snapshot in known:
                continue  # not a snapshot of the feed's (a file put there by hand), or done
            if not (present.exists() or missing.exists()):
                continue
            entry = Entry(int(snapshot), "")
            if missing.exists():
                self._save(compare(entry, None, {}, self.tolerance))
                report.notes.append(
                    f"snapshot {snapshot} ({isoformat(entry.moment)}): DeepState publishes no "
                    "areas for it (404); imported without the cross-check"
                )
                continue
            published = orjson.loads(present.read_bytes())
            try:
                features = read_snapshot(MapFile(path, path.name), path.read_bytes()).features
            except FileError as e:  # the import reported it already; no areas to measure
                report.warnings.append(f"snapshot {snapshot}: not cross-checked: {e.detail}")
                continue
            result = compare(
                entry, published, measured_as_drawn(path.name, features), self.tolerance
            )
            self._save(result)
            for a in result.flagged:
                report.warnings.append(describe(entry, a, self.tolerance))


def describe(entry: Entry, area: PublishedArea, tolerance: float) -> str:
    said = f"{area.published_km2:,.0f}" if area.published_km2 is not None else "?"
    here = f"{area.measured_km2:,.0f}" if area.measured_km2 is not None else "?"
    pct = (
        f"{area.difference_pct:+.2f} %"
        if area.difference_pct is not None and math.isfinite(area.difference_pct)
        else "published 0"
    )
    kind = f" {area.kind}" if area.kind else ""
    return (
        f"snapshot {entry.id} ({isoformat(entry.moment)}) {area.fill}{kind}: DeepState says "
        f"{said} km²; measured here {here} km² as drawn ({pct}), beyond the {tolerance:g} % "
        "tolerance (a corrupt or partial download, or a drawing that changed after publication)"
    )
