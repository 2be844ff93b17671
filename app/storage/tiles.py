"""Mapbox Vector Tiles (WebMercatorQuad) of the control pieces and of the regions.

Both databases give the same features with the same properties, shaped the same way:

1. candidates: the pieces the ``/collections/control/items`` filters select (:class:`PieceFilter`,
   :func:`in_window`, or ``known_at`` as :meth:`Pieces.everywhere` reads it) that touch the tile
   and its buffer;
2. each polygon clipped to the tile and its buffer (64 of 4096 units), projected to Web Mercator
   (EPSG:3857) and simplified (Douglas-Peucker) with a tolerance of a quarter pixel of that
   zoom; the topology-preserving simplifier costs 5 times as much on PostGIS, and what it
   guards against (a ring crossing itself by under a quarter pixel) the snapping to the grid
   and its repair (``ST_AsMVTGeom``; shapely's ``set_precision``) mend;
3. what is left smaller than one pixel (a slivers' area) dropped;
4. the rest snapped to the 4096 grid of the tile and encoded, one layer named after the
   collection, properties strings, numbers and booleans (moments RFC 3339, areas in km² to 3
   decimals, nulls left out).

A pixel is the ``cellSize`` of the zoom level in morecantile's WebMercatorQuad (tiles of 256
pixels). On PostGIS the whole of it is one statement (``ST_AsMVT``/``ST_AsMVTGeom``, the
candidates found through the GiST index by ``geometry && <the tile and its buffer in
lon/lat>``); on SQLite the candidates come from the bounding-box columns and shapely and
``mapbox-vector-tile`` do the rest. With ``known_at`` the candidates and their validity
intervals are decided in Python on both (they are recomputed from the record as it stood), and
PostGIS shapes and encodes those.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import mapbox_vector_tile
import morecantile
import numpy as np
import shapely
from mapbox_vector_tile.encoder import on_invalid_geometry_make_valid
from shapely.geometry.base import BaseGeometry
from sqlalchemy import ARRAY, DateTime, Float, Integer, Numeric, String, and_, cast, func, select
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.expression import column, literal_column

from app.domain.model import ADMIN1
from app.domain.timeutil import isoformat
from app.storage.base import Part
from app.storage.dialect import rfc3339
from app.storage.pieces import PieceFilter, in_window
from app.storage.tables import observations, pieces, sources
from app.storage.tables import regions as regions_table

TMS = morecantile.tms.get("WebMercatorQuad")
EXTENT = 4096  # tile grid units per tile side
BUFFER = 64  # grid units drawn beyond each side, so that strokes join across tiles
MARGIN = BUFFER / EXTENT
AREA_DECIMALS = 3
R = 6378137.0  # EPSG:3857 sphere radius
MAX_LAT = 85.0511287798066  # as the API serves areas (app.api.serialize.km2)

# The properties of each layer's features, in order.
CONTROL_PROPERTIES = (
    "observation_id",
    "region",
    "source",
    "account",
    "party",
    "status",
    "basis",
    "valid_from",
    "valid_until",
    "area_km2",
    "illustrative",
)
REGION_PROPERTIES = ("slug", "name", "country", "area_km2")
MOMENTS = {"valid_from", "valid_until"}
LAYERS = {"control": CONTROL_PROPERTIES, "regions": REGION_PROPERTIES}  # collection: properties

Window = tuple[dt.datetime | None, dt.datetime | None]


@dataclass(frozen=True)
class TileShape:
    """Where a tile is and how finely it is drawn."""

    tile: morecantile.Tile

    @property
    def pixel(self) -> float:
        """One pixel of this zoom, in metres of Web Mercator."""
        return float(TMS.matrix(self.tile.z).cellSize)

    @property
    def tolerance(self) -> float:
        """Simplification tolerance, metres of Web Mercator: a quarter pixel."""
        return self.pixel / 4

    @property
    def min_area(self) -> float:
        """Smaller shapes are dropped (m² of Web Mercator): one pixel."""
        return self.pixel**2

    @property
    def xy_bounds(self) -> tuple[float, float, float, float]:
        b = TMS.xy_bounds(self.tile)
        return (b.left, b.bottom, b.right, b.top)

    @property
    def clip_lonlat(self) -> tuple[float, float, float, float]:
        """The tile with its buffer, in longitude and latitude."""
        left, bottom, right, top = self.xy_bounds
        margin = (right - left) * MARGIN
        lon0, lat0 = _lonlat(left - margin, bottom - margin)
        lon1, lat1 = _lonlat(right + margin, top + margin)
        return (lon0, lat0, lon1, lat1)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    """Web Mercator metres to degrees, beyond ±180° too (as PostGIS does; no wrapping)."""
    return math.degrees(x / R), math.degrees(2 * math.atan(math.exp(y / R)) - math.pi / 2)


def _value(name: str, value: Any) -> Any:
    """A property as a tile carries it (the Python twin of :func:`_sql_value`)."""
    if isinstance(value, dt.datetime):
        return isoformat(value)
    if isinstance(value, enum.Enum):
        return value.value
    if name == "area_km2" and value is not None:
        return round(value, AREA_DECIMALS)
    return value


def _sql_value(name: str, col: Any) -> ColumnElement[Any]:
    """A property as a tile carries it, in SQL (PostGIS)."""
    if name in MOMENTS:
        return rfc3339(col).label(name)
    if name == "area_km2":
        return cast(func.round(cast(col, Numeric), AREA_DECIMALS), Float).label(name)
    return col.label(name)  # type: ignore[no-any-return]


def properties(names: Sequence[str], source: Any) -> dict[str, Any]:
    """The tile properties ``names`` of an object (a piece, a region); nulls left out."""
    values = {name: _value(name, getattr(source, name)) for name in names}
    return {k: v for k, v in values.items() if v is not None}


# --- the Python encoder (SQLite) --------------------------------------------------------------


def _to_tile_grid(shape: BaseGeometry, shape_of: TileShape) -> BaseGeometry:
    """lon/lat to the tile's grid (0…4096, y down) through Web Mercator."""
    left, _bottom, right, top = shape_of.xy_bounds
    scale = EXTENT / (right - left)

    def project(coords: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        lon = np.radians(coords[:, 0])
        lat = np.radians(np.clip(coords[:, 1], -MAX_LAT, MAX_LAT))
        x = R * lon
        y = R * np.log(np.tan(math.pi / 4 + lat / 2))
        return np.column_stack(((x - left) * scale, (top - y) * scale))

    return shapely.transform(shape, project)


def _polygons(shape: BaseGeometry) -> BaseGeometry | None:
    """The polygonal part of a shape, or None."""
    if shape.is_empty:
        return None
    if shape.geom_type in ("Polygon", "MultiPolygon"):
        return shape
    parts = [g for g in getattr(shape, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else None


def encode(
    layer: str, features: Iterable[tuple[dict[str, Any], BaseGeometry | None]], tile: TileShape
) -> bytes:
    """One MVT layer of these (properties, lon/lat polygon) features; ``b""`` when none shows."""
    scale = EXTENT / (tile.xy_bounds[2] - tile.xy_bounds[0])  # grid units per metre
    tolerance = tile.tolerance * scale
    min_area = tile.min_area * scale**2
    out: list[dict[str, Any]] = []
    for props, shape in features:
        if shape is None or shape.is_empty:
            continue
        clipped = shapely.clip_by_rect(shape, *tile.clip_lonlat)
        if clipped.is_empty:
            continue
        # Douglas-Peucker is scale-free: simplifying on the grid = in 3857 with the tolerance
        # scaled alike.
        grid = shapely.simplify(_to_tile_grid(clipped, tile), tolerance, preserve_topology=False)
        if grid.area < min_area:
            continue
        snapped = _polygons(shapely.set_precision(grid, 1.0))
        if snapped is None:
            continue
        out.append({"geometry": snapped, "properties": props})
    if not out:
        return b""
    options = {
        "extents": EXTENT,
        "y_coord_down": True,
        "on_invalid_geometry": on_invalid_geometry_make_valid,
    }
    tile_bytes: bytes = mapbox_vector_tile.encode(
        {"name": layer, "features": out}, default_options=options
    )
    return tile_bytes


# --- the part ---------------------------------------------------------------------------------


class Tiles(Part):
    """Vector tiles of the ``control`` pieces and of the ``regions``."""

    @property
    def _in_database(self) -> bool:
        return self.unit.dialect == "postgresql"

    def control(
        self,
        tile: morecantile.Tile,
        flt: PieceFilter,
        window: Window | None = None,
        regions: Sequence[str] | None = None,
        known_at: dt.datetime | None = None,
        since: dt.datetime | None = None,
    ) -> bytes:
        """The pieces ``/collections/control/items`` would give for these filters, as a tile of
        the layer ``control``."""
        shape = TileShape(tile)
        if known_at is not None or not self._in_database:
            found = self.unit.pieces.everywhere(
                flt,
                known_at=known_at,
                bbox=shape.clip_lonlat,
                window=window,
                regions=regions,
                since=since,
            )
            found = [p for p in found if p.area_km2 is not None]  # no polygon: no feature
            if self._in_database:
                return self._control_sql(shape, self._known_pieces(found)) if found else b""
            polygons = self.unit.pieces.geometries([(p.observation_id, p.region) for p in found])
            features = (
                (properties(CONTROL_PROPERTIES, p), polygons.get((p.observation_id, p.region)))
                for p in found
            )
            return encode("control", features, shape)
        query = self.unit.pieces.selection(None, flt, with_geometry=False)
        if window is not None:
            query = in_window(self.c, query, *window)
        if regions is not None:
            query = query.where(pieces.c.region.in_(list(regions)))
        if since is not None:
            query = query.where(pieces.c.valid_from >= since)
        columns = _control_columns(pieces.c.valid_until)
        return self._control_sql(shape, query.with_only_columns(*columns).order_by(None))

    @staticmethod
    def _known_pieces(found: Sequence[Any]) -> Select[Any]:
        """The rows of these pieces with the validity intervals decided in Python."""
        keys = (
            func.unnest(
                cast([p.observation_id for p in found], ARRAY(Integer)),
                cast([p.region for p in found], ARRAY(String)),
                cast([p.valid_until for p in found], ARRAY(DateTime(timezone=True))),
            )
            .table_valued(
                column("observation_id", Integer),
                column("region", String),
                column("valid_until", DateTime(timezone=True)),
                name="k",
            )
            .render_derived()
        )
        match = and_(
            keys.c.observation_id == pieces.c.observation_id, keys.c.region == pieces.c.region
        )
        return select(*_control_columns(keys.c.valid_until)).select_from(
            pieces.join(observations, observations.c.id == pieces.c.observation_id)
            .join(sources, sources.c.slug == pieces.c.source)
            .join(keys, match)
        )

    def _control_sql(self, shape: TileShape, rows: Select[Any]) -> bytes:
        return self._mvt("control", CONTROL_PROPERTIES, rows, shape)

    def regions(
        self,
        tile: morecantile.Tile,
        regions: Sequence[str] | None = None,
        known_at: dt.datetime | None = None,
    ) -> bytes:
        """The region boundaries (as they stood at ``known_at``), as a tile of the layer
        ``regions``."""
        shape = TileShape(tile)
        query = self.unit.regions.selection(with_boundary=True, known_at=known_at)
        query = query.where(regions_table.c.level == ADMIN1)  # countries would overlap them
        if regions is not None:
            query = query.where(regions_table.c.slug.in_(list(regions)))
        if self._in_database:
            return self._mvt("regions", REGION_PROPERTIES, query, shape, geometry="boundary")
        rows = self.c.execute(query).mappings().all()
        features = (
            ({k: _value(k, row[k]) for k in REGION_PROPERTIES}, row["boundary"]) for row in rows
        )
        return encode("regions", features, shape)

    def _mvt(
        self,
        layer: str,
        names: Sequence[str],
        rows: Select[Any],
        shape: TileShape,
        geometry: str = "geometry",
    ) -> bytes:
        """PostGIS: ``rows`` (the properties ``names`` and a lon/lat ``geometry``) as one layer."""
        z, x, y = shape.tile.z, shape.tile.x, shape.tile.y
        f = rows.subquery("f")
        # The tile and its buffer in lon/lat, as the SQLite path clips it. (Not
        # ST_Transform(ST_TileEnvelope(z, x, y, margin => …), 4326): it wraps a buffer beyond
        # ±180° round to the other side of the world.)
        wide = func.ST_MakeEnvelope(*shape.clip_lonlat, 4326)
        shaped = func.ST_Simplify(
            func.ST_Transform(func.ST_ClipByBox2D(f.c[geometry], func.Box2D(wide)), 3857),
            shape.tolerance,
        )
        near = (
            select(*(_sql_value(n, f.c[n]) for n in names), shaped.label("shape"))
            .where(f.c[geometry].op("&&")(wide))
            .cte("near")
            .prefix_with("MATERIALIZED")  # each shape computed once, not once per use
        )
        drawn = (
            select(
                *(near.c[n] for n in names),
                func.ST_AsMVTGeom(
                    near.c.shape, func.ST_TileEnvelope(z, x, y), EXTENT, BUFFER, True
                ).label("geom"),
            )
            .where(func.ST_Area(near.c.shape) >= shape.min_area)
            .cte("t")
            .prefix_with("MATERIALIZED")
        )
        encoded = select(func.ST_AsMVT(literal_column("t"), layer, EXTENT, "geom")).where(
            drawn.c.geom.is_not(None)
        )
        return bytes(self.c.execute(encoded.select_from(drawn)).scalar_one() or b"")


def _control_columns(valid_until: Any) -> list[Any]:
    """The columns of a control feature (``valid_until`` from where it was decided) and its
    polygon."""
    by_name = {
        "account": sources.c.account,
        "illustrative": observations.c.illustrative,
        "valid_until": valid_until,
    }
    return [(by_name[n] if n in by_name else pieces.c[n]).label(n) for n in CONTROL_PROPERTIES] + [
        pieces.c.geometry
    ]
