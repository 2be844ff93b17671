"""Cutting an observation into its per-region pieces: clip, measure, keep the reported figure.

Pure domain work (shapely and the geodesic area of :mod:`app.domain.geometry`); storage only
stores what :func:`cut` returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapely.geometry import MultiPolygon

from app.domain import geometry as geo
from app.domain.errors import InvalidInput
from app.domain.model import NewObservation


@dataclass(frozen=True)
class Cut:
    """What one observation says about one region."""

    region: str
    geometry: MultiPolygon | None  # the polygon clipped to the region
    area_km2: float | None  # its geodesic area; 0 for an empty drawing, None without a polygon
    reported_area_km2: float | None  # the source's own figure, when it is for this region


Clipped = dict[str, tuple[MultiPolygon, float]]  # region slug: (the part inside it, its km²)


@dataclass(frozen=True)
class Preclipped:
    """:func:`clip_all` of a drawing, done against the boundaries of one version (an opaque
    counter that storage bumps with every boundary change): good for :func:`cut` only while the
    boundaries are still of that version."""

    boundaries_version: int
    parts: Clipped


def clip_all(geometry: MultiPolygon, boundaries: dict[str, MultiPolygon]) -> Clipped:
    """The parts of a drawing in each region it covers, measured (the costly half of
    :func:`cut`, which an import does before its transaction opens)."""
    clipped: Clipped = {}
    for slug, boundary in boundaries.items():
        found = geo.clip_measured(geometry, boundary)
        if found is not None:
            clipped[slug] = found
    return clipped


def cut(
    obs: NewObservation,
    boundaries: dict[str, MultiPolygon],
    where: str,
    clipped: Clipped | None = None,
) -> list[Cut]:
    """The pieces of ``obs`` in the regions of ``boundaries``, by region slug.

    A polygon gives a piece in every region it covers. An *empty* polygon with a
    ``reported_region`` says "the source draws none of this party's ground there": a piece with
    a measured area of 0 (how an import records ground a source no longer shows). A polygon that
    touches no region, and has no reported region, is refused, naming ``where``. ``clipped``:
    :func:`clip_all` of the drawing against these same boundaries, done before.
    """
    drawn_empty = obs.geometry is not None and obs.geometry.is_empty
    if obs.geometry is None or drawn_empty:
        clipped = {}
    else:
        if clipped is None:
            clipped = clip_all(obs.geometry, boundaries)
        if not clipped and obs.reported_region is None:
            bounds = tuple(round(b, 4) for b in obs.geometry.bounds)
            raise InvalidInput(
                f"{where}: the geometry (bounds {bounds}) touches no known region. "
                "GET /regions lists them; GeoJSON coordinates are [longitude, latitude]."
            )
    slugs = sorted(set(clipped) | ({obs.reported_region} if obs.reported_region else set()))
    cuts = []
    for slug in slugs:
        if slug not in boundaries:
            continue
        part, measured = clipped.get(slug, (None, 0.0 if drawn_empty else None))
        reported = obs.reported_area_km2 if slug == obs.reported_region else None
        cuts.append(Cut(slug, part, measured, reported))
    return cuts
