"""Load the shipped regions and seed timeline into a database. Idempotent: run it any time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry import shape

from app.domain.model import Party, Source, SourceKind
from app.domain.observations import parse_feature
from app.storage.repository import Repository


@dataclass
class SeedReport:
    regions_changed: int = 0
    parties_changed: int = 0
    sources_changed: int = 0
    observations_added: int = 0
    observations_present: int = 0

    def __str__(self) -> str:
        return (
            f"regions changed: {self.regions_changed}, parties changed: {self.parties_changed}, "
            f"sources changed: {self.sources_changed}, observations added: "
            f"{self.observations_added} (already present: {self.observations_present})"
        )


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_regions(repo: Repository, path: Path) -> int:
    changed = 0
    for feature in _read(path)["features"]:
        p = feature["properties"]
        changed += repo.save_region(
            p["slug"], p["name"], p["country"], p["country_code"], shape(feature["geometry"])
        )
    return changed


def seed(repo: Repository, data_dir: Path) -> SeedReport:
    """Regions from ``data/regions/boundaries.geojson``; parties, sources and every
    ``*.geojson`` timeline from ``data/seed/``."""
    report = SeedReport()
    report.regions_changed = load_regions(repo, data_dir / "regions" / "boundaries.geojson")
    seed_dir = data_dir / "seed"
    for item in _read(seed_dir / "parties.json"):
        report.parties_changed += repo.save_party(Party(**item))
    for item in _read(seed_dir / "sources.json"):
        item["kind"] = SourceKind(item["kind"])
        report.sources_changed += repo.save_source(Source(**item))
    for path in sorted(seed_dir.glob("*.geojson")):
        features = _read(path)["features"]
        items = [
            parse_feature(f, f"{path.name} feature {i}").observation for i, f in enumerate(features)
        ]
        for result in repo.add_observations(items, recorded_by="seed"):
            if result.created:
                report.observations_added += 1
            else:
                report.observations_present += 1
    return report
