"""Regions, and what each source says about who holds their ground over time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from app.api import serialize as out
from app.api.deps import Unit
from app.api.params import (
    MOMENT_HELP,
    Accounts,
    AtOrNow,
    From,
    KnownAt,
    MaxAge,
    Parties,
    PartyOne,
    Sources,
    Statuses,
    StatusesDefaultControlled,
    To,
    WantsCsv,
    known_moment,
    max_age_span,
    ordered_range,
    piece_filter,
    span_days,
)
from app.api.responses import JSON, GeoJSON, csv_response
from app.api.routing import CheckedRoute
from app.domain import asof
from app.domain import geometry as geo
from app.domain.model import Status
from app.domain.timeutil import fresh, isoformat
from app.storage.pieces import PieceFilter

router = APIRouter(prefix="/regions", tags=["regions"], route_class=CheckedRoute)

Slug = Annotated[
    str, Path(description="Region slug, e.g. `kursk`, `belgorod`, `sumy` (see GET /regions).")
]
GEOJSON_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/geo+json": {}}, "description": "GeoJSON (RFC 7946)"}
}


@router.get(
    "",
    response_class=GeoJSON,
    responses=GEOJSON_CONTENT,
    summary="All regions, with their boundaries",
)
def list_regions(
    unit: Unit,
    geometry: Annotated[
        bool, Query(description="Include boundaries (false: properties and bbox only).")
    ] = True,
    known_at: KnownAt = None,
) -> GeoJSON:
    known = known_moment(known_at)
    regions = unit.regions.all(with_boundary=True, known_at=known)
    features = [out.region_feature(r, geometry) for r in regions]
    return GeoJSON(out.feature_collection(features, known_at=isoformat(known)))


@router.get(
    "/{slug}", response_class=GeoJSON, responses=GEOJSON_CONTENT, summary="One region as a Feature"
)
def get_region(slug: Slug, unit: Unit, known_at: KnownAt = None) -> GeoJSON:
    return GeoJSON(out.region_feature(unit.regions.get(slug, known_at=known_moment(known_at))))


@router.get(
    "/{slug}/control",
    response_class=GeoJSON,
    responses=GEOJSON_CONTENT,
    summary="Control polygons in force at a moment, one per (party, status, source, basis)",
    description=(
        "Every source's observation in force at `at`, clipped to the region, side by side: the "
        "service never picks a winner. An observation is in force from its `valid_from` until the "
        "earlier of its `valid_to` and the same source's next observation (`valid_until`). "
        "Observations that give only a reported figure and no polygon come as features with a "
        "null geometry. Features flagged `illustrative` are schematic, not surveyed. Each "
        "feature says its age at `at` (`age_days`); `max_age` leaves out the older ones."
    ),
)
def control(
    slug: Slug,
    unit: Unit,
    moment_: AtOrNow,
    party: Parties = None,
    status: Statuses = None,
    source: Sources = None,
    account: Accounts = None,
    known_at: KnownAt = None,
    max_age: MaxAge = None,
) -> GeoJSON:
    known = known_moment(known_at)
    region = unit.regions.get(slug, with_boundary=False, known_at=known)
    oldest = max_age_span(max_age)
    flt = piece_filter(unit, party, status, source, account)
    pieces = unit.pieces.in_force(region.slug, moment_, flt, known_at=known)
    pieces = [p for p in pieces if fresh(p.valid_from, moment_, oldest)]
    features = [out.piece_feature(p, moment_) for p in asof.chronological(pieces)]
    members = {
        "region": region.slug,
        "at": isoformat(moment_),
        "max_age_days": span_days(oldest),
        "known_at": isoformat(known),
    }
    return GeoJSON(out.feature_collection(features, **members))


@dataclass(frozen=True)
class SeriesQuery:
    """Whose ground, in which region, by which sources: the parameters every series endpoint
    shares (`party`, `status` defaulting to controlled, `source`, `account`)."""

    region: str
    party: str | None
    flt: PieceFilter
    by_account: bool
    known_at: dt.datetime | None

    def head(self, **members: Any) -> dict[str, Any]:
        """The members that open every series answer: what was asked."""
        return {
            "region": self.region,
            "party": self.party,
            "status": list(self.flt.statuses or []),
            "group_by": "account" if self.by_account else "source",
            "known_at": isoformat(self.known_at),
            **members,
        }


def series_query(
    slug: Slug,
    unit: Unit,
    party: PartyOne,
    status: StatusesDefaultControlled = None,
    source: Sources = None,
    account: Accounts = None,
    known_at: KnownAt = None,
) -> SeriesQuery:
    known = known_moment(known_at)
    region = unit.regions.get(slug, with_boundary=False, known_at=known)
    flt = piece_filter(unit, [party], status, source, account, default_status=Status.CONTROLLED)
    party_code = flt.parties[0] if flt.parties else None
    return SeriesQuery(region.slug, party_code, flt, account is not None, known)


def two_moments(
    from_: Annotated[
        str,
        Query(alias="from", description=f"Start moment. {MOMENT_HELP}", examples=["2024-08-31"]),
    ],
    to: Annotated[str, Query(description=f"End moment. {MOMENT_HELP}", examples=["2025-04-26"])],
) -> tuple[dt.datetime, dt.datetime]:
    start, end = ordered_range(from_, to, required=True)
    assert start is not None
    assert end is not None
    return start, end


Series = Annotated[SeriesQuery, Depends(series_query)]
TwoMoments = Annotated[tuple[dt.datetime, dt.datetime], Depends(two_moments)]


@router.get(
    "/{slug}/area",
    summary="Area over time: one series per source (or per account)",
    description=(
        "Every figure for the party's ground in the region, oldest first: `measured` points are "
        "the geodesic area (WGS84) of a source's polygon inside the region; `reported` points are "
        "numbers the source gave. One series per (source, status, basis), or per (account, "
        "status, basis) when `account` is given. `?format=csv` (or `Accept: text/csv`) gives "
        "tidy CSV, one row per point, that `pandas.read_csv(url)` loads as it is."
    ),
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def area(
    q: Series,
    unit: Unit,
    from_: From = None,
    to: To = None,
    kind: Annotated[
        Literal["measured", "reported"] | None,
        Query(description="Only `measured` or only `reported` points (default: both)."),
    ] = None,
    csv: WantsCsv = False,
) -> Response:
    start, end = ordered_range(from_, to, required=False, whole_days=True)
    series = asof.series(unit.pieces.history(q.region, q.flt, start, end, q.known_at), q.by_account)
    if kind is not None:
        series = {k: [p for p in pts if p.kind.value == kind] for k, pts in series.items()}
        series = {k: pts for k, pts in series.items() if pts}
    if csv:
        rows = [
            out.area_csv_row(q.region, key, point) for key, pts in series.items() for point in pts
        ]
        filename = f"{q.region}-area-{(q.party or 'none').lower()}.csv"
        return csv_response(out.AREA_CSV_COLUMNS, rows, filename=filename)
    return JSON(
        q.head(
            **{"from": isoformat(start), "to": isoformat(end)},
            series=[
                {**out.series_label(key, q.by_account), "points": [out.point_json(p) for p in pts]}
                for key, pts in series.items()
            ],
        )
    )


@router.get(
    "/{slug}/change",
    summary="Change in area between two moments, per source (or per account)",
    description=(
        "For each series, the figure in force at `from` and at `to` (a polygon's measured area "
        "when the observation has one, else the number the source reported), the difference and "
        "the relative change. With `account`, a party's position at a moment is the most recent "
        "claim in force among the sources that speak for it."
    ),
)
def change(q: Series, moments: TwoMoments, unit: Unit) -> JSON:
    start, end = moments
    before = unit.pieces.in_force(q.region, start, q.flt, with_geometry=False, known_at=q.known_at)
    after = unit.pieces.in_force(q.region, end, q.flt, with_geometry=False, known_at=q.known_at)
    changes = asof.changes(before, after, q.by_account)
    return JSON(
        q.head(
            **{"from": isoformat(start), "to": isoformat(end)},
            changes=[out.change_json(c, q.by_account) for c in changes],
        )
    )


@router.get(
    "/{slug}/change/geometry",
    response_class=GeoJSON,
    responses=GEOJSON_CONTENT,
    summary="Ground gained and lost between two moments (polygon difference)",
    description=(
        "For each source's polygons in force at `from` and at `to`: `gained` is ground in the "
        "`to` polygon and not in the `from` one, `lost` the reverse, each with its geodesic "
        "area. Series whose claim at either moment is a bare number (no polygon) cannot be "
        "compared on the map and are listed in `skipped`."
    ),
)
def change_geometry(q: Series, moments: TwoMoments, unit: Unit) -> GeoJSON:
    start, end = moments
    before = unit.pieces.in_force(q.region, start, q.flt, known_at=q.known_at)
    after = unit.pieces.in_force(q.region, end, q.flt, known_at=q.known_at)
    features: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for item in asof.changes(before, after, q.by_account):
        label = out.series_label(item.key, q.by_account)
        pieces = [p for p in (item.before, item.after) if p is not None]
        if any(p.geometry is None for p in pieces):
            skipped.append({**label, "reason": "no polygon"})
            continue
        old = item.before.geometry if item.before else None
        new = item.after.geometry if item.after else None
        for kind, shape in (
            ("gained", geo.difference(new, old)),
            ("lost", geo.difference(old, new)),
        ):
            features.append(
                {
                    "type": "Feature",
                    "id": "-".join(str(part) for part in (kind, *item.key)),
                    "geometry": geo.to_geojson(shape),
                    "properties": {
                        "change": kind,
                        "area_km2": out.km2(geo.geodesic_area_km2(shape)),
                        **label,
                        "from_observation_id": item.before.observation_id if item.before else None,
                        "to_observation_id": item.after.observation_id if item.after else None,
                        "illustrative": any(p.illustrative for p in pieces),
                    },
                }
            )
    head = q.head(**{"from": isoformat(start), "to": isoformat(end)}, skipped=skipped)
    return GeoJSON(out.feature_collection(features, **head))


@router.get(
    "/{slug}/claims",
    summary="Every source's claim in force at a moment, side by side, with the spread",
    description=(
        "For each (source, status, basis), the observation in force at `at`: its area (measured "
        "from its polygon, else reported), date, age and citation, sorted from the highest figure "
        "to the lowest. `spread` is the gap between the highest and lowest figure, leaving out "
        "illustrations. `age_days` shows how old each source's latest word is; `max_age` "
        "leaves out the claims older than that (and so out of the spread)."
    ),
)
def claims(q: Series, unit: Unit, moment_: AtOrNow, max_age: MaxAge = None) -> JSON:
    oldest = max_age_span(max_age)
    pieces = unit.pieces.in_force(
        q.region, moment_, q.flt, with_geometry=False, known_at=q.known_at
    )
    pieces = [p for p in pieces if fresh(p.valid_from, moment_, oldest)]
    names = {s.slug: s.name for s in unit.reference.sources()}
    ordered = sorted(
        pieces, key=lambda p: (p.best_area_km2 is None, -(p.best_area_km2 or 0.0), p.source)
    )
    return JSON(
        q.head(
            at=isoformat(moment_),
            max_age_days=span_days(oldest),
            claims=[out.claim_json(p, moment_, names) for p in ordered],
            spread=out.spread_json(asof.spread(pieces)),
        )
    )
