"""Make the schematic UA-held polygons of the seed (run by hand; the output is committed).

    python scripts/make_illustrative_polygons.py > data/seed/illustrative.geojson

These are ILLUSTRATIONS, not surveyed lines: an ellipse around a centre, clipped to the Kursk
Oblast boundary that ships in data/regions/, scaled until its geodesic area inside the oblast
matches the figure reported for that date. They exist so that a map shows something, and every
response that carries them says `illustrative: true`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon, mapping, shape

ROOT = Path(__file__).resolve().parent.parent
SUDZHA = (35.27, 51.19)  # lon, lat

# (valid_from, centre lon/lat, semi-axes km (east-west, north-south), target km², note)
SHAPES = [
    (
        "2024-08-27",
        (35.30, 51.28),
        (24.0, 19.0),
        1300.0,
        "Schematic extent of the ground Ukraine's forces held around Sudzha in late August 2024, "
        "drawn to match the roughly 1,300 km² that Ukraine's Commander-in-Chief reported "
        "(1,294 km² on 27 August 2024). Not a surveyed front line.",
    ),
    (
        "2025-04-26",
        (35.36, 51.09),
        (4.0, 3.0),
        30.0,
        "Schematic extent of the roughly 30 km² a senior Ukrainian official told the Financial "
        "Times Kyiv's forces still held in Kursk Oblast on 26 April 2025, placed on the border "
        "south-east of Sudzha. Not a surveyed front line.",
    ),
]


def ellipse(centre: tuple[float, float], axes_km: tuple[float, float], scale: float) -> Polygon:
    lon, lat = centre
    local = f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m"
    to_wgs84 = Transformer.from_crs(local, "EPSG:4326", always_xy=True)
    a, b = axes_km[0] * 1000 * scale, axes_km[1] * 1000 * scale
    ring = [(a * math.cos(t), b * math.sin(t)) for t in (2 * math.pi * i / 72 for i in range(72))]
    return shapely.transform(
        Polygon(ring), lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1]))
    )


def main() -> None:
    from app.domain.geometry import geodesic_area_km2, orient_rfc7946

    regions = json.loads((ROOT / "data" / "regions" / "boundaries.geojson").read_text())
    kursk = next(shape(f["geometry"]) for f in regions["features"] if f["id"] == "kursk")
    features = []
    for valid_from, centre, axes, target, note in SHAPES:
        lo, hi = 0.2, 3.0
        for _ in range(60):  # bisection on the scale of the ellipse
            mid = (lo + hi) / 2
            area = geodesic_area_km2(shapely.intersection(ellipse(centre, axes, mid), kursk))
            lo, hi = (mid, hi) if area < target else (lo, mid)
        clipped = shapely.intersection(ellipse(centre, axes, (lo + hi) / 2), kursk)
        clipped = orient_rfc7946(shapely.set_precision(clipped, 1e-5))
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "source": "frontline-atlas-illustration",
                    "party": "UA",
                    "status": "controlled",
                    "basis": "assessed",
                    "valid_from": valid_from,
                    "illustrative": True,
                    "note": note,
                    "citation": {
                        "title": "Frontline Atlas schematic "
                        "(scripts/make_illustrative_polygons.py)",
                        "publisher": "Frontline Atlas",
                    },
                },
                "geometry": mapping(clipped),
            }
        )
    print(json.dumps({"type": "FeatureCollection", "features": features}, indent=1))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(ROOT))
    main()
