"""Regions and their boundaries; a replaced boundary stays in ``region_boundaries``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import shapely
from shapely.geometry import MultiPolygon
from sqlalchemy import or_, select
from sqlalchemy.sql import Select

from app.domain import geometry as geo
from app.domain.errors import UnknownRegion
from app.domain.model import Region
from app.domain.timeutil import now
from app.storage.base import Part
from app.storage.dialect import for_update
from app.storage.tables import region_boundaries, regions


def bbox_values(geometry: Any) -> dict[str, float | None]:
    """The bounding-box columns of a row (``min_lon`` … ``max_lat``) for ``geometry``."""
    box = geo.bbox(geometry)
    keys = ("min_lon", "min_lat", "max_lon", "max_lat")
    return dict(zip(keys, box or (None, None, None, None), strict=True))


class Regions(Part):
    _boundaries: dict[str, MultiPolygon] | None = None

    def selection(self, with_boundary: bool, known_at: dt.datetime | None) -> Select[Any]:
        """Regions with their current boundary, or (``known_at``) the boundary they had then."""
        if known_at is None:
            cols: list[Any] = [regions.c.area_km2, regions.c.boundary]
            query = select(regions.c.slug)
        else:
            b = region_boundaries
            cols = [b.c.area_km2, b.c.boundary]
            query = (
                select(regions.c.slug)
                .join(b, b.c.region == regions.c.slug)
                .where(b.c.recorded_at <= known_at)
                .where(or_(b.c.replaced_at.is_(None), b.c.replaced_at > known_at))
            )
        names = [regions.c.name, regions.c.country, regions.c.country_code, cols[0]]
        return query.add_columns(*names, *(cols[1:] if with_boundary else []))

    def all(self, with_boundary: bool = True, known_at: dt.datetime | None = None) -> list[Region]:
        query = self.selection(with_boundary, known_at)
        rows = self.c.execute(query.order_by(regions.c.country, regions.c.slug)).all()
        return [Region(*row) for row in rows]

    def get(
        self, slug: str, with_boundary: bool = True, known_at: dt.datetime | None = None
    ) -> Region:
        """One region; ``UnknownRegion`` (404, naming the known ones) when there is none."""
        row = self.c.execute(
            self.selection(with_boundary, known_at).where(regions.c.slug == slug)
        ).first()
        if row is None:
            raise UnknownRegion(slug, self.slugs())
        return Region(*row)

    def slugs(self) -> list[str]:
        return list(self.c.execute(select(regions.c.slug).order_by(regions.c.slug)).scalars())

    @property
    def boundaries(self) -> dict[str, MultiPolygon]:
        """Every region's current boundary, prepared for fast predicates; read once a unit."""
        if self._boundaries is None:
            found = dict(self.c.execute(select(regions.c.slug, regions.c.boundary)).all())
            for boundary in found.values():
                shapely.prepare(boundary)
            self._boundaries = found
        return self._boundaries

    def save(
        self,
        slug: str,
        name: str,
        country: str,
        country_code: str,
        boundary: MultiPolygon,
        note: str | None = None,
    ) -> bool:
        """Insert a region, or replace it; a new boundary rebuilds the region's pieces and the
        old one stays in ``region_boundaries``. True when anything changed."""
        boundary = geo.to_multipolygon(boundary)
        moment = now()
        values = {
            "slug": slug,
            "name": name,
            "country": country,
            "country_code": country_code,
            "boundary": boundary,
            "area_km2": geo.geodesic_area_km2(boundary),
            "updated_at": moment,
            **bbox_values(boundary),
        }
        query = select(regions).where(regions.c.slug == slug)
        row = self.c.execute(for_update(query)).mappings().first()
        if row is not None:
            same_shape = shapely.equals_exact(row["boundary"], boundary, tolerance=0)
            meta = (row["name"], row["country"], row["country_code"])
            if same_shape and meta == (name, country, country_code):
                return False
            self.c.execute(regions.update().where(regions.c.slug == slug).values(**values))
            if same_shape:
                return True
            self.c.execute(
                region_boundaries.update()
                .where(
                    region_boundaries.c.region == slug, region_boundaries.c.replaced_at.is_(None)
                )
                .values(replaced_at=moment)
            )
        else:
            self.c.execute(regions.insert().values(**values))
        self.c.execute(
            region_boundaries.insert().values(
                region=slug,
                boundary=boundary,
                area_km2=values["area_km2"],
                recorded_at=moment,
                recorded_by=self.recorded_by,
                note=note,
            )
        )
        self._boundaries = None
        self.unit.boundaries_changed = True
        if row is not None:
            self.unit.derived.rebuild(region=slug)
        return True
