"""One map's features per line of testimony, their fingerprints and their unions.

The as-of rule keeps one observation in force per (region, party, status, source, basis), so one
map gives one observation per (party, status): the union of all its features that the rules
assign to that (party, status). Building that union is the costly part of an import; a map whose
features for a (party, status) are exactly those of the previous map does not need it:
:func:`raw_drawing` tells them apart without building any geometry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon

from app.domain import geometry as geo
from app.domain.model import Status
from app.importer.reading import Feature, FileError
from app.importer.rules import Rules, Scope, Skip

Line = tuple[str | None, Status]  # (party, status)

_NOT_TERRITORY = {
    "Point": "not territory (point)",
    "MultiPoint": "not territory (point)",
    "LineString": "not territory (line)",
    "MultiLineString": "not territory (line)",
    "LinearRing": "not territory (line)",
}


@dataclass
class Classified:
    # per (party, status), its features by the scope of the rule that took them
    lines: dict[Line, dict[Scope, list[Feature]]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)

    def features(self, line: Line) -> list[Feature]:
        return [f for group in self.lines[line].values() for f in group]


def classify(features: Iterable[Feature], rules: Rules) -> Classified:
    """Each feature to its (party, status), or to the reason it is skipped."""
    out = Classified()
    for feature in features:
        kind = feature.kind
        if kind is None:
            out.skipped["no geometry"] += 1
            continue
        if kind in _NOT_TERRITORY:
            out.skipped[_NOT_TERRITORY[kind]] += 1
            continue
        rule = rules.rule_for(feature.properties)
        if isinstance(rule, Skip):
            out.skipped[rule.reason] += 1
        else:
            line = (rule.party, rule.status)
            out.lines.setdefault(line, {}).setdefault(rule.within, []).append(feature)
    return out


def raw_drawing(features: Sequence[Feature]) -> list[Any]:
    """The features' geometries exactly as the file gives them (GeoJSON mappings, or WKB),
    to compare with the previous map's: equal lists, the same drawing, no geometry built.
    Comparing parsed JSON is several times cheaper than hashing it again."""
    return [
        f.geometry if isinstance(f.geometry, Mapping) else shapely.to_wkb(f.geometry)
        for f in features
    ]


@dataclass(frozen=True)
class Union:
    geometry: MultiPolygon | None  # None: nothing with an area was left
    repaired: int = 0
    unreadable: int = 0
    outside_scope: Counter[str] = field(default_factory=Counter)  # features clipped away whole
    # The geodesic area of the drawing as drawn, before the scope clipped it (None: unclipped)
    drawn_area_km2: float | None = None


def _shapes(file: str, features: Sequence[Feature], strict: bool) -> tuple[list[Any], int]:
    """The features' geometries as shapely objects (2-D); unreadable ones are left out and
    counted, or refused with ``strict``."""
    texts = [orjson.dumps(f.geometry) for f in features if isinstance(f.geometry, Mapping)]
    parsed = iter(shapely.from_geojson(texts, on_invalid="ignore") if texts else [])
    shapes: list[Any] = []
    unreadable = 0
    for feature in features:
        shape = next(parsed) if isinstance(feature.geometry, Mapping) else feature.geometry
        if shape is None:
            if strict:
                try:
                    shapely.from_geojson(orjson.dumps(feature.geometry))
                    why = "not a geometry"
                except GEOSException as e:
                    why = str(e)
                raise FileError(f"{file}: {feature.label}: unreadable geometry: {why}.")
            unreadable += 1
            continue
        shapes.append(shape)
    return list(shapely.force_2d(np.asarray(shapes, dtype=object))) if shapes else [], unreadable


def union(file: str, features: Sequence[Feature], strict: bool) -> Union:
    """The union of the features' polygons, repaired with ``make_valid`` (and counted) where
    invalid, or refused with ``strict`` naming the file and the feature."""
    shapes, unreadable = _shapes(file, features, strict)
    if not shapes:
        return Union(None, 0, unreadable)
    array = np.asarray(shapes, dtype=object)
    invalid = np.flatnonzero(~shapely.is_valid(array))
    if len(invalid) and strict:
        index = int(invalid[0])
        feature = features[index]  # strict: no feature was left out, shapes match features
        raise FileError(
            f"{file}: {feature.label}: invalid polygon ({shapely.is_valid_reason(array[index])}); "
            "--strict refuses it (without --strict it is repaired with make_valid and counted)."
        )
    if len(invalid):
        array[invalid] = shapely.make_valid(array[invalid])
    return Union(geo.union(list(array)), len(invalid), unreadable)


def scoped_union(
    file: str,
    groups: Mapping[Scope, Sequence[Feature]],
    strict: bool,
    countries: Mapping[str, Any],
) -> Union:
    """The union of one line's features, each group clipped to the countries its rule is
    scoped to (``countries``: normalised country -> the union of its regions)."""
    parts: list[MultiPolygon] = []
    as_drawn: list[MultiPolygon] = []
    repaired = unreadable = 0
    outside: Counter[str] = Counter()
    for scope, features in groups.items():
        drawn = union(file, features, strict)
        repaired += drawn.repaired
        unreadable += drawn.unreadable
        geometry = drawn.geometry
        if geometry is not None:
            as_drawn.append(geometry)
        if geometry is not None and scope is not None:
            areas = [countries[c] for c in sorted(scope)]
            geometry = geo.clip(geometry, areas[0] if len(areas) == 1 else shapely.union_all(areas))
            if geometry is None:
                where = ", ".join(sorted(c.upper() for c in scope))
                outside[f"outside {where} (the rule applies within {where} only)"] += (
                    len(features) - drawn.unreadable
                )
        if geometry is not None:
            parts.append(geometry)
    if len(parts) > 1:
        merged = geo.union(list(parts))
        parts = [] if merged is None else [merged]
    drawn_km2 = None
    if any(scope is not None for scope in groups) and parts:
        whole = as_drawn[0] if len(as_drawn) == 1 else geo.union(list(as_drawn))
        drawn_km2 = geo.geodesic_area_km2(whole)
    return Union(parts[0] if parts else None, repaired, unreadable, outside, drawn_km2)
