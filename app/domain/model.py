"""The nouns of the domain: regions, parties, sources, observations and their per-region pieces."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from shapely.geometry import MultiPolygon


class Status(StrEnum):
    CONTROLLED = "controlled"
    CONTESTED = "contested"  # the grey zone


class Basis(StrEnum):
    ASSESSED = "assessed"  # the source's own assessment
    CLAIMED = "claimed"  # a party's claim, as the source relays it


class Qualifier(StrEnum):
    ABOUT = "about"
    AT_LEAST = "at_least"
    AT_MOST = "at_most"
    EXACTLY = "exactly"


class SourceKind(StrEnum):
    GOVERNMENT = "government"
    MILITARY = "military"
    OSINT = "osint"
    MEDIA = "media"
    RESEARCH = "research"
    ILLUSTRATION = "illustration"


class AreaKind(StrEnum):
    MEASURED = "measured"  # geodesic area of the source's polygon inside the region
    REPORTED = "reported"  # a number the source itself gave


@dataclass(frozen=True)
class Region:
    """A first-level region (``level`` admin1: an oblast, a city, a republic), which pieces are
    cut into, or a country (``level`` country), whose figures are sums over its members."""

    slug: str
    name: str
    country: str
    country_code: str
    area_km2: float
    level: str = "admin1"
    parent: str | None = None  # an admin1 region's country
    boundary: MultiPolygon | None = None

    @property
    def is_country(self) -> bool:
        return self.level == COUNTRY


ADMIN1 = "admin1"
COUNTRY = "country"
LEVELS = (ADMIN1, COUNTRY)


@dataclass(frozen=True)
class Party:
    code: str
    name: str
    color: str


@dataclass(frozen=True)
class Source:
    slug: str
    name: str
    kind: SourceKind
    account: str | None  # the party the source speaks for, if any
    url: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Citation:
    url: str | None = None
    title: str | None = None
    publisher: str | None = None
    published_at: dt.datetime | None = None


@dataclass(frozen=True)
class NewObservation:
    """An observation as a source gave it, before it is stored. Stored as is, never changed."""

    source: str
    party: str | None
    status: Status
    basis: Basis
    valid_from: dt.datetime
    valid_to: dt.datetime | None = None
    geometry: MultiPolygon | None = None
    reported_area_km2: float | None = None
    reported_region: str | None = None
    reported_qualifier: Qualifier | None = None
    citation: Citation = field(default_factory=Citation)
    note: str | None = None
    illustrative: bool = False
    supersedes: int | None = None
    # The geodesic area of the drawing as the source drew it, when ``geometry`` is only part of
    # it (an import keeps only the ground inside the country its rule applies in). Derived, not
    # part of what the source said (not in the content hash); None: the area of ``geometry``.
    drawn_area_km2: float | None = None


@dataclass(frozen=True)
class Piece:
    """What one observation says about one region: the clipped polygon and/or a reported figure.

    The per-region pieces are derived data: rebuilt from observations and region boundaries.
    ``valid_until`` is the end of the piece's validity interval (see :mod:`app.domain.asof`).
    """

    observation_id: int
    region: str
    source: str
    account: str | None
    party: str | None
    status: Status
    basis: Basis
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    valid_until: dt.datetime | None
    area_km2: float | None  # measured, None when the observation has no polygon here
    reported_area_km2: float | None
    reported_qualifier: Qualifier | None
    illustrative: bool
    citation: Citation
    note: str | None
    recorded_at: dt.datetime
    drawn_area_km2: float | None = None  # the whole drawing's area, before any clipping
    geometry: MultiPolygon | None = None

    @property
    def area_kind(self) -> AreaKind | None:
        """Which figure stands for this piece: the measured polygon first, else the reported one."""
        if self.area_km2 is not None:
            return AreaKind.MEASURED
        if self.reported_area_km2 is not None:
            return AreaKind.REPORTED
        return None

    @property
    def best_area_km2(self) -> float | None:
        return self.area_km2 if self.area_km2 is not None else self.reported_area_km2
