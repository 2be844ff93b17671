"""Geometry and area, computed in one place.

Every area in the service comes from :func:`geodesic_area_km2`: the geodesic area on the WGS84
ellipsoid (pyproj's ``Geod``, i.e. GeographicLib), never planar degrees nor Web Mercator. The
databases only store what is computed here, so SQLite and PostGIS give identical numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import orjson
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

WGS84 = Geod(ellps="WGS84")
M2_PER_KM2 = 1_000_000.0
# A clipped piece smaller than this (one hectare) is a sliver of where two generalised
# boundaries or rounded coordinates disagree, not ground anyone claims: it is not kept.
MIN_PIECE_KM2 = 0.01


def geodesic_area_km2(geometry: BaseGeometry | None) -> float:
    """Geodesic area in km² of a (Multi)Polygon with lon/lat coordinates on WGS84.

    Holes are subtracted. The result does not depend on ring orientation.
    """
    if geometry is None or geometry.is_empty:
        return 0.0
    return abs(_signed_area_m2(shapely.orient_polygons(geometry))) / M2_PER_KM2


def _signed_area_m2(geometry: BaseGeometry) -> float:
    """What ``Geod.geometry_area_perimeter`` gives (the same rings, summed in the same order),
    with the coordinates handed over as arrays rather than copied point by point in Python."""
    if isinstance(geometry, Polygon):
        total = _ring_area_m2(geometry.exterior)
        for hole in geometry.interiors:
            total += _ring_area_m2(hole)
        return total
    if hasattr(geometry, "geoms"):
        total = 0.0
        for part in geometry.geoms:
            total += _signed_area_m2(part)
        return total
    return _ring_area_m2(geometry)


def _ring_area_m2(ring: BaseGeometry) -> float:
    xy = shapely.get_coordinates(ring)
    area, _perimeter = WGS84.polygon_area_perimeter(xy[:, 0], xy[:, 1])
    return float(area)


def orient_rfc7946(geometry: BaseGeometry) -> BaseGeometry:
    """Exterior rings counter-clockwise, holes clockwise (RFC 7946 §3.1.6)."""
    return shapely.orient_polygons(geometry, exterior_cw=False)


def polygonal_part(geometry: BaseGeometry | None) -> MultiPolygon | None:
    """The (Multi)Polygon part of any geometry as a MultiPolygon; None when it has no area.

    An intersection can return points and lines where shapes only touch; those are not ground.
    """
    if geometry is None or geometry.is_empty:
        return None
    polygons: list[Polygon] = []
    if isinstance(geometry, Polygon):
        polygons = [geometry]
    elif isinstance(geometry, MultiPolygon):
        polygons = list(geometry.geoms)
    elif hasattr(geometry, "geoms"):
        for part in geometry.geoms:
            sub = polygonal_part(part)
            if sub is not None:
                polygons.extend(sub.geoms)
    polygons = [p for p in polygons if not p.is_empty and p.area > 0]
    if not polygons:
        return None
    return MultiPolygon(polygons)


def to_multipolygon(geometry: BaseGeometry) -> MultiPolygon:
    """A Polygon or MultiPolygon as an RFC 7946-oriented MultiPolygon (2-D)."""
    geometry = shapely.force_2d(geometry)
    part = polygonal_part(geometry)
    if part is None:
        raise ValueError("the geometry has no area")
    oriented = orient_rfc7946(part)
    assert isinstance(oriented, MultiPolygon)
    return oriented


def clip(geometry: BaseGeometry, boundary: BaseGeometry) -> MultiPolygon | None:
    """The part of ``geometry`` inside ``boundary``, oriented; None when they share no more
    than a sliver (:data:`MIN_PIECE_KM2`)."""
    found = clip_measured(geometry, boundary)
    return None if found is None else found[0]


def clip_measured(
    geometry: BaseGeometry, boundary: BaseGeometry
) -> tuple[MultiPolygon, float] | None:
    """:func:`clip`, with the geodesic area in km² of the part (measured once)."""
    if not shapely.intersects(geometry, boundary):
        return None
    part = polygonal_part(shapely.intersection(geometry, boundary))
    if part is None:
        return None
    part = to_multipolygon(part)
    area = _area_of_wkb(shapely.to_wkb(part))
    return None if area < MIN_PIECE_KM2 else (part, area)


@lru_cache(maxsize=256)
def _area_of_wkb(wkb: bytes) -> float:
    """The geodesic area of exactly these coordinates. Remembered: a map that changed in one
    region is clipped again to every region, and most parts come out exactly as the day before
    (measuring them costs ten times more than writing them out as WKB to know that)."""
    return geodesic_area_km2(shapely.from_wkb(wkb))


def union(geometries: list[BaseGeometry | None], grid: float | None = None) -> MultiPolygon | None:
    """The polygonal union of these shapes (``None`` among them: nothing); None when empty.

    ``grid`` snaps the result to a grid of that size (in degrees), keeping it valid: for shapes
    served at that precision, whose union along shared borders leaves slivers that rounding
    alone would collapse into invalid rings."""
    shapes = [g for g in geometries if g is not None and not g.is_empty]
    if not shapes:
        return None
    merged = shapely.union_all(shapes, grid_size=grid)
    part = polygonal_part(merged)
    return None if part is None else to_multipolygon(part)


SERVED_GRID = 10.0**-6  # coordinates are served to 6 decimals (:func:`to_geojson`)


def difference(a: BaseGeometry | None, b: BaseGeometry | None) -> MultiPolygon | None:
    """The ground in ``a`` that is not in ``b`` (None when there is none)."""
    if a is None or a.is_empty:
        return None
    if b is None or b.is_empty:
        return to_multipolygon(a)
    part = polygonal_part(shapely.difference(a, b))
    return None if part is None else to_multipolygon(part)


def from_geojson(geometry: dict[str, Any]) -> BaseGeometry:
    return shape(geometry)


def to_geojson(geometry: BaseGeometry | None, precision: int = 6) -> dict[str, Any] | None:
    """An RFC 7946 geometry object: lon/lat, exterior rings counter-clockwise, no ``crs``,
    coordinates rounded to ``precision`` decimals (6: about 0.1 m on the ground).

    The rings of (Multi)Polygons, the only shapes the service stores, are numpy arrays straight
    from GEOS, which orjson writes natively (``OPT_SERIALIZE_NUMPY``): a thousand-feature page of
    whole-front polygons is ready in a small fraction of what shapely's ``mapping``, Python
    floats and snap-rounding take."""
    if geometry is None or geometry.is_empty:
        return None
    oriented = orient_rfc7946(geometry)
    if isinstance(oriented, Polygon):
        return {"type": "Polygon", "coordinates": _rings(oriented, precision)}
    if isinstance(oriented, MultiPolygon):
        parts = [_rings(part, precision) for part in oriented.geoms]
        return {"type": "MultiPolygon", "coordinates": parts}
    return dict(mapping(oriented))


def _rings(polygon: Polygon, precision: int) -> list[Any]:
    rings = [polygon.exterior, *polygon.interiors]
    return [np.round(shapely.get_coordinates(ring), precision) for ring in rings]


POLYGON, MULTIPOLYGON = 3, 6  # shapely's type ids


def geojson_texts(geometries: Sequence[BaseGeometry | None], precision: int = 6) -> list[bytes]:
    """Each geometry as the GeoJSON text :func:`to_geojson` gives (``null`` for none or an
    empty one), for a whole page at once: one pass of GEOS over every (Multi)Polygon (oriented,
    coordinates in one array rounded once), then each ring a slice of that array, which orjson
    writes natively. What the database gives as ``ST_AsGeoJSON(geometry, 6)`` on PostGIS."""
    shapes = np.empty(len(geometries), dtype=object)
    shapes[:] = list(geometries)
    out = [b"null"] * len(shapes)
    kinds = shapely.get_type_id(shapes)
    polygonal = np.isin(kinds, (POLYGON, MULTIPOLYGON)) & ~shapely.is_empty(shapes)
    chosen = np.flatnonzero(polygonal)
    if chosen.size:
        oriented = shapely.orient_polygons(shapes[chosen], exterior_cw=False)
        _, xy, (rings, parts, wholes) = shapely.to_ragged_array(oriented, include_z=False)
        xy = np.round(xy, precision)
        for n, i in enumerate(chosen.tolist()):
            polygons = [
                [xy[rings[r] : rings[r + 1]] for r in range(parts[p], parts[p + 1])]
                for p in range(wholes[n], wholes[n + 1])
            ]
            document = (
                {"type": "Polygon", "coordinates": polygons[0]}
                if kinds[i] == POLYGON
                else {"type": "MultiPolygon", "coordinates": polygons}
            )
            out[i] = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    for i in np.flatnonzero(~polygonal & (kinds >= 0)).tolist():  # other shapes: rare
        out[i] = orjson.dumps(to_geojson(shapes[i], precision), option=orjson.OPT_SERIALIZE_NUMPY)
    return out


def bbox(geometry: BaseGeometry | None) -> tuple[float, float, float, float] | None:
    if geometry is None or geometry.is_empty:
        return None
    minx, miny, maxx, maxy = geometry.bounds
    return (float(minx), float(miny), float(maxx), float(maxy))


def shape_hash(geometry: BaseGeometry | None) -> str | None:
    """Equal shapes, equal hash, whatever the ring start or part order (sha256 of the
    normalised WKB): how an import knows a map draws the same ground again."""
    if geometry is None:
        return None
    return hashlib.sha256(shapely.to_wkb(shapely.normalize(geometry))).hexdigest()
