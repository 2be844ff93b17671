"""Regions and their boundaries; a replaced boundary stays in ``region_boundaries``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import shapely
from shapely.geometry import MultiPolygon
from sqlalchemy import or_, select, true
from sqlalchemy.sql import Select

from app.domain import geometry as geo
from app.domain.errors import InvalidInput, UnknownRegion
from app.domain.model import ADMIN1, COUNTRY, Region
from app.domain.pieces import Clipped, Preclipped
from app.domain.timeutil import now
from app.storage.base import Part
from app.storage.dialect import for_update
from app.storage.tables import data_version, region_boundaries, regions


def bbox_values(geometry: Any) -> dict[str, float | None]:
    """The bounding-box columns of a row (``min_lon`` … ``max_lat``) for ``geometry``."""
    box = geo.bbox(geometry)
    keys = ("min_lon", "min_lat", "max_lon", "max_lat")
    return dict(zip(keys, box or (None, None, None, None), strict=True))


def selection(with_boundary: bool, known_at: dt.datetime | None) -> Select[Any]:
    """:meth:`Regions.selection`: the columns of :class:`Region`, in its order."""
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
    kinds = [regions.c.level, regions.c.parent]
    return query.add_columns(*names, *kinds, *(cols[1:] if with_boundary else []))


class Regions(Part):
    _boundaries: dict[str, MultiPolygon] | None = None
    _version: int | None = None

    def __init__(self, unit: Any) -> None:
        super().__init__(unit)
        self._stale: set[str] = set()  # countries whose members changed (see flush)

    def selection(self, with_boundary: bool, known_at: dt.datetime | None) -> Select[Any]:
        """Regions with their current boundary, or (``known_at``) the boundary they had then."""
        return selection(with_boundary, known_at)

    def all(
        self,
        with_boundary: bool = True,
        known_at: dt.datetime | None = None,
        levels: tuple[str, ...] = (ADMIN1,),
    ) -> list[Region]:
        """The regions of these levels (default: the first-level regions, which tile the map
        without overlapping), countries first, then by country and slug."""
        query = self.selection(with_boundary, known_at).where(regions.c.level.in_(levels))
        order = (regions.c.level != COUNTRY, regions.c.country, regions.c.slug)
        rows = self.c.execute(query.order_by(*order)).all()
        return [Region(*row) for row in rows]

    def members(self, country: str) -> list[str]:
        """The slugs of a country's member regions."""
        query = select(regions.c.slug).where(regions.c.parent == country)
        return list(self.c.execute(query.order_by(regions.c.slug)).scalars())

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
        """Every first-level region's current boundary (what observations are cut into),
        prepared for fast predicates; read once a unit."""
        if self._boundaries is None:
            # With the boundaries' version, in one statement: one snapshot of both.
            query = (
                select(regions.c.slug, regions.c.boundary, data_version.c.boundaries)
                .select_from(regions.outerjoin(data_version, true()))
                .where(regions.c.level == ADMIN1)
            )
            rows = self.c.execute(query).all()
            found = {slug: boundary for slug, boundary, _ in rows}
            for boundary in found.values():
                shapely.prepare(boundary)
            self._boundaries = found
            changed_here = self.unit.boundaries_changed
            version = rows[0][2] if rows else None
            self._version = None if changed_here or version is None else int(version)
        return self._boundaries

    def still_clipped(self, preclipped: Preclipped | None) -> Clipped | None:
        """The parts of a drawing clipped beforehand, if it was against these very boundaries
        (their version); None when it must be clipped again."""
        if preclipped is None or preclipped.boundaries_version != self.boundaries_version:
            return None
        return preclipped.parts

    @property
    def boundaries_version(self) -> int | None:
        """The version of :attr:`boundaries` (``DataVersion.boundaries``): what a
        :class:`~app.domain.pieces.Preclipped` drawing must have been clipped against; None
        when this unit changed a boundary (not committed: no version is it yet)."""
        self.boundaries  # noqa: B018 - read with its version
        return self._version

    def save(
        self,
        slug: str,
        name: str,
        country: str,
        country_code: str,
        boundary: MultiPolygon,
        note: str | None = None,
        level: str = ADMIN1,
        parent: str | None = None,
    ) -> bool:
        """Insert a region, or replace it; a new boundary rebuilds the region's pieces and the
        old one stays in ``region_boundaries``. True when anything changed. A country
        (``level`` country) gets no pieces of its own: its figures are its members' sums."""
        boundary = geo.to_multipolygon(boundary)
        if parent is not None:
            self._check_country(parent, slug)
        moment = now()
        values = {
            "slug": slug,
            "name": name,
            "country": country,
            "country_code": country_code,
            "boundary": boundary,
            "area_km2": geo.geodesic_area_km2(boundary),
            "updated_at": moment,
            "level": level,
            "parent": parent,
            **bbox_values(boundary),
        }
        query = select(regions).where(regions.c.slug == slug)
        row = self.c.execute(for_update(query)).mappings().first()
        if row is not None:
            same_shape = shapely.equals_exact(row["boundary"], boundary, tolerance=0)
            meta = (row["name"], row["country"], row["country_code"], row["level"], row["parent"])
            if same_shape and meta == (name, country, country_code, level, parent):
                return False
            self.c.execute(regions.update().where(regions.c.slug == slug).values(**values))
            if same_shape:
                if parent != row["parent"]:
                    self._refresh_countries(parent, row["parent"])
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
        if row is not None and level == ADMIN1:
            self.unit.derived.rebuild(region=slug)
        if row is not None:  # a member's ground changed: so did its country's
            self._refresh_countries(parent, row["parent"])
        return True

    def _refresh_countries(self, *countries: str | None) -> None:
        """Mark these countries' boundaries for recomputing once, when the unit ends
        (:meth:`flush`): a unit that replaces many members unions them once, not per member."""
        self._stale.update(c for c in countries if c is not None)

    def flush(self) -> None:
        """Recompute the boundary of every country one of whose members changed in this unit."""
        stale, self._stale = sorted(self._stale), set()
        for country in stale:
            self._refresh_country(country)

    def _check_country(self, parent: str, slug: str) -> None:
        found = self.c.execute(
            select(regions.c.level).where(regions.c.slug == parent)
        ).scalar_one_or_none()
        if found != COUNTRY:
            countries = self.c.execute(
                select(regions.c.slug).where(regions.c.level == COUNTRY).order_by(regions.c.slug)
            ).scalars()
            raise InvalidInput(
                f"region {slug!r}: its parent {parent!r} is not a country. "
                f"Countries: {', '.join(countries)}."
            )

    def _refresh_country(self, country: str) -> None:
        """A country's boundary: the union of its members' (kept in its boundary history)."""
        current = self.get(country, with_boundary=False)
        members = [self.boundaries[m] for m in self.members(country) if m in self.boundaries]
        ground = geo.union(list(members))
        if ground is not None:
            self.save(
                country,
                current.name,
                current.country,
                current.country_code,
                ground,
                note="the union of its member regions",
                level=COUNTRY,
            )
