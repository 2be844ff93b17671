"""Regions, and what each source says about who holds their ground over time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from shapely.geometry import MultiPolygon

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
from app.domain import asof, totals
from app.domain import geometry as geo
from app.domain.asof import Change
from app.domain.model import COUNTRY, LEVELS, AreaKind, Piece, Region, Status
from app.domain.timeutil import fresh, isoformat
from app.domain.totals import Total
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
    level: Annotated[
        Literal["admin1", "country", "all"],
        Query(
            description="`admin1` (default): the first-level regions (oblasts, cities, "
            "republics), which tile the map without overlapping; `country`: the countries, "
            "whose figures are the sums over their member regions; `all`: both."
        ),
    ] = "admin1",
    known_at: KnownAt = None,
) -> GeoJSON:
    known = known_moment(known_at)
    regions = unit.regions.all(with_boundary=True, known_at=known, levels=LEVELS)
    members = _members(regions)
    features = [
        out.region_feature(r, geometry, members.get(r.slug))
        for r in regions
        if level in ("all", r.level)
    ]
    return GeoJSON(out.feature_collection(features, level=level, known_at=isoformat(known)))


def _members(regions: list[Region]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for region in regions:
        if region.parent is not None:
            found.setdefault(region.parent, []).append(region.slug)
    return found


@router.get(
    "/{slug}",
    response_class=GeoJSON,
    responses=GEOJSON_CONTENT,
    summary="One region (or country) as a Feature",
)
def get_region(slug: Slug, unit: Unit, known_at: KnownAt = None) -> GeoJSON:
    region = unit.regions.get(slug, known_at=known_moment(known_at))
    members = unit.regions.members(slug) if region.is_country else None
    return GeoJSON(out.region_feature(region, members=members))


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
        "feature says its age at `at` (`age_days`); `max_age` leaves out the older ones. "
        "For a country (`GET /regions?level=country`), one feature per series: the union "
        "of its member regions' pieces, with their summed area, the area of "
        "the drawings as drawn (`drawn_area_km2`) and the members they cover (`regions`)."
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
    oldest = max_age_span(max_age)
    flt = piece_filter(unit, party, status, source, account)
    texts: Sequence[str | bytes]
    if known is None:  # the region and its pieces in one statement, polygons as GeoJSON text
        region, pieces, texts = unit.pieces.in_force_in(slug, moment_, flt)
    else:
        region = unit.regions.get(slug, with_boundary=False, known_at=known)
        pieces = (
            [] if region.is_country else unit.pieces.in_force(slug, moment_, flt, known_at=known)
        )
        texts = geo.geojson_texts([p.geometry for p in pieces])  # the same text, from shapely
    if region.is_country:  # its members' pieces, summed
        pieces = unit.pieces.in_force(unit.regions.members(slug), moment_, flt, known_at=known)
        pieces = [p for p in pieces if fresh(p.valid_from, moment_, oldest)]
        features = [
            out.total_feature(region.slug, party_code, total, moment_)
            for party_code, found in _by_party(pieces).items()
            for total in totals.totals_at(found, moment_, by_account=False).values()
        ]
    else:
        drawn = [
            pair
            for pair in zip(pieces, texts, strict=True)
            if fresh(pair[0].valid_from, moment_, oldest)
        ]
        drawn.sort(key=lambda pair: asof.chronological_key(pair[0]))
        features = [out.piece_feature(p, geojson, moment_) for p, geojson in drawn]
    members = {
        "region": region.slug,
        "at": isoformat(moment_),
        "max_age_days": span_days(oldest),
        "known_at": isoformat(known),
    }
    return GeoJSON(out.feature_collection(features, **members))


def _by_party(pieces: list[Piece]) -> dict[str | None, list[Piece]]:
    found: dict[str | None, list[Piece]] = {}
    for piece in pieces:
        found.setdefault(piece.party, []).append(piece)
    return dict(sorted(found.items(), key=lambda kv: str(kv[0])))


@dataclass(frozen=True)
class SeriesQuery:
    """Whose ground, in which region, by which sources: the parameters every series endpoint
    shares (`party`, `status` defaulting to controlled, `source`, `account`)."""

    region: str
    party: str | None
    flt: PieceFilter
    by_account: bool
    known_at: dt.datetime | None
    members: list[str] | None = None  # a country's member regions, whose figures it sums

    @property
    def where(self) -> str | list[str]:
        """The regions whose pieces answer: the region itself, or a country's members."""
        return self.region if self.members is None else self.members

    def head(self, **members: Any) -> dict[str, Any]:
        """The members that open every series answer: what was asked."""
        return {
            "region": self.region,
            "party": self.party,
            "status": list(self.flt.statuses or []),
            "group_by": "account" if self.by_account else "source",
            "known_at": isoformat(self.known_at),
            **({} if self.members is None else {"level": COUNTRY, "members": self.members}),
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
    members = unit.regions.members(region.slug) if region.is_country else None
    return SeriesQuery(region.slug, party_code, flt, account is not None, known, members)


async def two_moments(
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
        "tidy CSV, one row per point, that `pandas.read_csv(url)` loads as it is. For a country, "
        "each point is the sum over its member regions of what stands for the series in each "
        "at that moment (`regions`), with the drawings' own area as drawn (`drawn_area_km2`)."
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
    if q.members is not None:
        return _country_area(q, unit, start, end, kind, csv)
    series = asof.series(unit.pieces.history(q.region, q.flt, start, end, q.known_at), q.by_account)
    if kind is not None:
        series = {k: [p for p in pts if p.kind.value == kind] for k, pts in series.items()}
        series = {k: pts for k, pts in series.items() if pts}
    if csv:
        rows = [
            out.area_csv_row(q.region, key, point) for key, pts in series.items() for point in pts
        ]
        return _area_csv(q, out.AREA_CSV_COLUMNS, rows)
    return _area_json(q, start, end, {k: [out.point_json(p) for p in v] for k, v in series.items()})


def _area_csv(q: SeriesQuery, columns: tuple[str, ...], rows: list[list[Any]]) -> Response:
    filename = f"{q.region}-area-{(q.party or 'none').lower()}.csv"
    return csv_response(columns, rows, filename=filename)


def _area_json(
    q: SeriesQuery,
    start: dt.datetime | None,
    end: dt.datetime | None,
    series: dict[asof.SeriesKey, list[dict[str, Any]]],
) -> JSON:
    return JSON(
        q.head(
            **{"from": isoformat(start), "to": isoformat(end)},
            series=[
                {**out.series_label(key, q.by_account), "points": points}
                for key, points in series.items()
            ],
        )
    )


def _country_area(
    q: SeriesQuery,
    unit: Unit,
    start: dt.datetime | None,
    end: dt.datetime | None,
    kind: str | None,
    csv: bool,
) -> Response:
    """A country's area over time: its members' figures summed, per series."""
    history = unit.pieces.history(q.where, q.flt, known_at=q.known_at)
    only = AreaKind(kind) if kind is not None else None
    series = totals.series(history, q.by_account, only, start, end)
    if csv:
        rows = [out.total_csv_row(q.region, q.party, t) for pts in series.values() for t in pts]
        return _area_csv(q, out.TOTAL_CSV_COLUMNS, rows)
    return _area_json(q, start, end, {k: [out.total_json(t) for t in v] for k, v in series.items()})


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
    before = unit.pieces.in_force(q.where, start, q.flt, with_geometry=False, known_at=q.known_at)
    after = unit.pieces.in_force(q.where, end, q.flt, with_geometry=False, known_at=q.known_at)
    if q.members is not None:
        sums = totals.changes(
            totals.totals_at(before, start, q.by_account),
            totals.totals_at(after, end, q.by_account),
        )
        return JSON(
            q.head(
                **{"from": isoformat(start), "to": isoformat(end)},
                changes=[out.change_json(c, q.by_account) for c in sums],
            )
        )
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
    before = unit.pieces.in_force(q.where, start, q.flt, known_at=q.known_at)
    after = unit.pieces.in_force(q.where, end, q.flt, known_at=q.known_at)
    items: list[Change[Piece]] | list[Change[Total]]
    if q.members is None:
        items = asof.changes(before, after, q.by_account)
    else:
        items = totals.changes(
            totals.totals_at(before, start, q.by_account),
            totals.totals_at(after, end, q.by_account),
        )
    features: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for item in items:
        label = out.series_label(item.key, q.by_account)
        figures = [f for f in (item.before, item.after) if f is not None]
        if not all(_has_polygon(f) for f in figures):
            skipped.append({**label, "reason": "no polygon"})
            continue
        old, new = _shape(item.before), _shape(item.after)
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
                        **_records("from", item.before, q.members is not None),
                        **_records("to", item.after, q.members is not None),
                        "illustrative": any(f.illustrative for f in figures),
                    },
                }
            )
    head = q.head(**{"from": isoformat(start), "to": isoformat(end)}, skipped=skipped)
    return GeoJSON(out.feature_collection(features, **head))


def _has_polygon(figure: Piece | Total) -> bool:
    parts = figure.parts if isinstance(figure, Total) else (figure,)
    return all(p.geometry is not None for p in parts)


def _shape(figure: Piece | Total | None) -> MultiPolygon | None:
    """The ground a figure draws: a piece's polygon, or the union of a total's."""
    if isinstance(figure, Total):
        return geo.union([p.geometry for p in figure.parts], grid=geo.SERVED_GRID)
    return None if figure is None else figure.geometry


def _records(end: str, figure: Piece | Total | None, country: bool) -> dict[str, Any]:
    """The record(s) behind one end of a change: one observation for a region, every
    observation a country's total adds up."""
    if isinstance(figure, Total) or (country and figure is None):
        return {f"{end}_observation_ids": figure.observation_ids if figure else []}
    return {f"{end}_observation_id": figure.observation_id if figure is not None else None}


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
    pieces = unit.pieces.in_force(q.where, moment_, q.flt, with_geometry=False, known_at=q.known_at)
    pieces = [p for p in pieces if fresh(p.valid_from, moment_, oldest)]
    names = {s.slug: s.name for s in unit.reference.sources()}
    if q.members is not None:
        found = list(totals.totals_at(pieces, moment_, q.by_account).values())
        return JSON(
            q.head(
                at=isoformat(moment_),
                max_age_days=span_days(oldest),
                claims=[
                    out.total_claim_json(t, moment_, names, q.by_account)
                    for t in sorted(found, key=lambda t: (-t.best_area_km2, str(t.key)))
                ],
                spread=out.total_spread_json(totals.spread(found), q.by_account),
            )
        )
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
