"""Load the shipped regions and seed timeline into a database. Idempotent: run it any time."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry import shape

from app.domain import geometry as geo
from app.domain.model import COUNTRY, Party, Source, SourceKind
from app.domain.observations import parse_feature
from app.settings import Settings
from app.storage.database import Database
from app.storage.unit import UnitOfWork


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


def country_slug(country: str) -> str:
    """A country's region slug from its name: ``Ukraine`` -> ``ukraine``."""
    return re.sub(r"[^a-z0-9]+", "-", country.lower()).strip("-")


def load_regions(unit: UnitOfWork, path: Path) -> int:
    """The first-level regions of the file, and one region per country they belong to
    (``level`` country, the union of its members' boundaries): its figures are their sums."""
    features = _read(path)["features"]
    members: dict[tuple[str, str], list[Any]] = {}
    for feature in features:
        p = feature["properties"]
        members.setdefault((p["country"], p["country_code"]), []).append(feature)
    changed = 0
    for (country, code), group in sorted(members.items()):
        ground = geo.union([shape(f["geometry"]) for f in group])
        assert ground is not None  # regions have area
        parent = country_slug(country)
        changed += unit.regions.save(parent, country, country, code, ground, level=COUNTRY)
        for feature in group:
            p = feature["properties"]
            geometry = shape(feature["geometry"])
            changed += unit.regions.save(
                p["slug"], p["name"], country, code, geometry, parent=parent
            )
    return changed


def seed(db: Database, data_dir: Path) -> SeedReport:
    """Regions from ``data/regions/boundaries.geojson``; parties, sources and every
    ``*.geojson`` timeline from ``data/seed/``. Each file is one unit of work."""
    report = SeedReport()
    with db.write("seed") as unit:
        report.regions_changed = load_regions(unit, data_dir / "regions" / "boundaries.geojson")
    seed_dir = data_dir / "seed"
    with db.write("seed") as unit:
        for item in _read(seed_dir / "parties.json"):
            report.parties_changed += unit.reference.save_party(Party(**item))
        for item in _read(seed_dir / "sources.json"):
            item["kind"] = SourceKind(item["kind"])
            report.sources_changed += unit.reference.save_source(Source(**item))
    for path in sorted(seed_dir.glob("*.geojson")):
        features = _read(path)["features"]
        items = [
            parse_feature(f, f"{path.name} feature {i}").observation for i, f in enumerate(features)
        ]
        with db.write("seed") as unit:
            results = unit.observations.add(items)
        for result in results:
            if result.created:
                report.observations_added += 1
            else:
                report.observations_present += 1
    return report


def prepare(db: Database, settings: Settings) -> None:
    """Migrate, and load the shipped seed into an empty database, as the settings say."""
    if settings.auto_migrate:
        db.upgrade()
    if settings.auto_seed:
        with db.read() as unit:
            empty = unit.is_empty()
        if empty:
            seed(db, settings.data_dir)
