"""Geodesic area and geometry handling, against independent figures."""

from __future__ import annotations

import json

import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, shape

from app.domain import geometry as geo
from tests.conftest import DATA_DIR

# Surface area of the WGS84 ellipsoid, m² (closed form; e.g. Moritz, Geodetic Reference
# System 1980, with WGS84's a and f): 510,065,621.7 km².
WGS84_SURFACE_KM2 = 510_065_621.724


def _boundary(slug: str) -> MultiPolygon:
    data = json.loads((DATA_DIR / "regions" / "boundaries.geojson").read_text())
    return shape(next(f["geometry"] for f in data["features"] if f["id"] == slug))


def test_octant_is_one_eighth_of_the_ellipsoid() -> None:
    # Equator and two meridians are geodesics, so this triangle is exactly one octant.
    octant = Polygon([(0, 0), (90, 0), (0, 90)])
    assert geo.geodesic_area_km2(octant) == pytest.approx(WGS84_SURFACE_KM2 / 8, rel=1e-9)


def test_area_ignores_ring_orientation_and_subtracts_holes() -> None:
    outer = [(35.0, 51.0), (35.5, 51.0), (35.5, 51.5), (35.0, 51.5)]
    inner = [(35.1, 51.1), (35.2, 51.1), (35.2, 51.2), (35.1, 51.2)]
    ccw, cw = Polygon(outer), Polygon(outer[::-1])
    assert geo.geodesic_area_km2(ccw) == pytest.approx(geo.geodesic_area_km2(cw), rel=1e-12)
    with_hole = Polygon(outer, [inner])
    expected = geo.geodesic_area_km2(ccw) - geo.geodesic_area_km2(Polygon(inner))
    assert geo.geodesic_area_km2(with_hole) == pytest.approx(expected, rel=1e-12)


def test_area_is_not_planar_degrees_nor_web_mercator() -> None:
    # Half a degree square at 51°N is ~1,940 km²: far from Web Mercator's (~4,900 km²).
    area = geo.geodesic_area_km2(box(35.0, 51.0, 35.5, 51.5))
    assert 1_930 < area < 1_950


@pytest.mark.parametrize(
    ("slug", "expected_km2"),
    # Geodesic areas of the Natural Earth shapes as given in shared/data/regions/README.md.
    [("kursk", 30_117), ("belgorod", 27_758)],
)
def test_region_areas_match_the_documented_figures(slug: str, expected_km2: float) -> None:
    assert geo.geodesic_area_km2(_boundary(slug)) == pytest.approx(expected_km2, abs=1)


def test_orientation_follows_rfc7946() -> None:
    outer = [(0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]  # clockwise
    hole = [(0.2, 0.2), (0.4, 0.2), (0.4, 0.4), (0.2, 0.4), (0.2, 0.2)]  # counter-clockwise
    oriented = geo.orient_rfc7946(Polygon(outer, [hole]))
    assert oriented.exterior.is_ccw
    assert not oriented.interiors[0].is_ccw


def test_clip_splits_a_shape_spanning_two_regions() -> None:
    kursk, sumy = _boundary("kursk"), _boundary("sumy")
    straddling = shapely.buffer(shapely.Point(35.1, 51.15), 0.15)  # across the border at Sudzha
    in_kursk, in_sumy = geo.clip(straddling, kursk), geo.clip(straddling, sumy)
    assert in_kursk is not None
    assert in_sumy is not None
    total = geo.geodesic_area_km2(straddling)
    parts = geo.geodesic_area_km2(in_kursk) + geo.geodesic_area_km2(in_sumy)
    # the two oblasts share the border; the generalised shapes leave tiny gaps or overlaps
    assert parts == pytest.approx(total, rel=0.01)
    assert geo.geodesic_area_km2(in_kursk) > 100
    assert geo.geodesic_area_km2(in_sumy) > 100


def test_touching_without_area_is_no_piece() -> None:
    a = box(0, 0, 1, 1)
    assert geo.clip(box(1, 0, 2, 1), a) is None  # shares an edge only
    assert geo.polygonal_part(shapely.LineString([(0, 0), (1, 1)])) is None


def test_to_geojson_is_rfc7946() -> None:
    out = geo.to_geojson(Polygon([(0, 0), (0, 1), (1, 1), (1, 0)]))
    assert out is not None
    assert "crs" not in out
    assert shapely.LinearRing(out["coordinates"][0]).is_ccw


def test_area_is_exactly_what_pyproj_computes_for_the_whole_geometry() -> None:
    """The rings go to pyproj as arrays; the figures are those of geometry_area_perimeter."""
    data = json.loads((DATA_DIR / "regions" / "boundaries.geojson").read_text())
    shapes = [shape(f["geometry"]) for f in data["features"]]
    shapes.append(box(30, 45, 40, 52).difference(box(34, 48, 36, 50)))  # a hole
    for geometry in shapes:
        area_m2, _ = geo.WGS84.geometry_area_perimeter(shapely.orient_polygons(geometry))
        assert geo.geodesic_area_km2(geometry) == abs(area_m2) / geo.M2_PER_KM2
