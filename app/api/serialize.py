"""Domain objects to the JSON and GeoJSON the API serves (RFC 7946)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from app.domain import geometry as geo
from app.domain.asof import Change, Point, SeriesKey, Spread
from app.domain.model import Piece, Region, Source
from app.domain.timeutil import age_days, isoformat
from app.domain.totals import Total
from app.storage.published import PublishedArea, SnapshotAreas

ILLUSTRATIVE_NOTICE = (
    "Some features are schematic illustrations (illustrative: true), drawn to match a reported "
    "figure; they are not surveyed front lines."
)


def km2(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def region_feature(
    region: Region, with_geometry: bool = True, members: list[str] | None = None
) -> dict[str, Any]:
    """A region as a Feature; a country with its ``members`` (the regions its figures sum)."""
    properties: dict[str, Any] = {
        "slug": region.slug,
        "name": region.name,
        "country": region.country,
        "country_code": region.country_code,
        "area_km2": km2(region.area_km2),
        "level": region.level,
        "parent": region.parent,
    }
    if region.is_country:
        properties["members"] = members or []
    return {
        "type": "Feature",
        "id": region.slug,
        "bbox": list(geo.bbox(region.boundary) or []) or None,
        "geometry": geo.to_geojson(region.boundary) if with_geometry else None,
        "properties": properties,
    }


def source_json(source: Source) -> dict[str, Any]:
    return {
        "slug": source.slug,
        "name": source.name,
        "kind": source.kind.value,
        "account": source.account,
        "url": source.url,
        "description": source.description,
    }


def citation_properties(piece: Piece) -> dict[str, Any]:
    return {
        "citation_url": piece.citation.url,
        "citation_title": piece.citation.title,
        "citation_publisher": piece.citation.publisher,
        "citation_published_at": isoformat(piece.citation.published_at),
    }


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Values as JSON takes them: moments as RFC 3339 strings."""
    return {k: isoformat(v) if isinstance(v, dt.datetime) else v for k, v in values.items()}


def piece_values(piece: Piece) -> dict[str, Any]:
    """A piece's properties with their Python values (moments as datetimes), as filters see
    them; :func:`jsonable` of this is what the API serves."""
    return {
        "observation_id": piece.observation_id,
        "region": piece.region,
        "party": piece.party,
        "status": piece.status.value,
        "basis": piece.basis.value,
        "source": piece.source,
        "account": piece.account,
        "valid_from": piece.valid_from,
        "valid_to": piece.valid_to,
        "valid_until": piece.valid_until,
        "area_km2": km2(piece.area_km2),
        "drawn_area_km2": km2(piece.drawn_area_km2),
        "reported_area_km2": km2(piece.reported_area_km2),
        "reported_qualifier": piece.reported_qualifier.value if piece.reported_qualifier else None,
        "illustrative": piece.illustrative,
        "citation_url": piece.citation.url,
        "citation_title": piece.citation.title,
        "citation_publisher": piece.citation.publisher,
        "citation_published_at": piece.citation.published_at,
        "note": piece.note,
        "recorded_at": piece.recorded_at,
    }


def piece_id(observation_id: int, region: str) -> str:
    """A piece's feature id wherever it is one feature among many regions' (OGC, exports)."""
    return f"{observation_id}-{region}"


def piece_properties(piece: Piece) -> dict[str, Any]:
    return jsonable(piece_values(piece))


def piece_feature(
    piece: Piece, geojson: str | bytes, at: dt.datetime | None = None
) -> dict[str, Any]:
    """A piece as a Feature, its polygon the GeoJSON text ``geojson`` (as the database or
    :func:`app.domain.geometry.geojson_texts` wrote it); with ``at``, its ``age_days`` at that
    moment too."""
    properties = piece_properties(piece)
    if at is not None:
        properties["age_days"] = age_days(piece.valid_from, at)
    return {
        "type": "Feature",
        "id": piece.observation_id,
        "geometry": orjson.Fragment(geojson),
        "properties": properties,
    }


def feature_collection(features: list[dict[str, Any]], **members: Any) -> dict[str, Any]:
    """A FeatureCollection; foreign members (region, at, …) describe the query answered."""
    illustrative = any(f["properties"].get("illustrative") for f in features)
    out: dict[str, Any] = {"type": "FeatureCollection"}
    out.update({k: v for k, v in members.items() if v is not None})
    if illustrative:
        out["illustrative"] = True
        out["notice"] = ILLUSTRATIVE_NOTICE
    out["numberReturned"] = len(features)
    out["features"] = features
    return out


def series_label(key: SeriesKey, by_account: bool) -> dict[str, Any]:
    who, status, basis = key
    return {"account" if by_account else "source": who, "status": status, "basis": basis}


def point_json(point: Point) -> dict[str, Any]:
    piece = point.piece
    return {
        "at": isoformat(point.at),
        "area_km2": km2(point.area_km2),
        "kind": point.kind.value,
        "qualifier": piece.reported_qualifier.value
        if (point.kind.value == "reported" and piece.reported_qualifier)
        else None,
        "observation_id": piece.observation_id,
        "source": piece.source,
        "illustrative": piece.illustrative,
    }


AREA_CSV_COLUMNS = (
    "region",
    "party",
    "status",
    "basis",
    "series",
    "source",
    "account",
    "at",
    "area_km2",
    "kind",
    "qualifier",
    "observation_id",
    "illustrative",
    "citation_url",
    "citation_title",
    "citation_publisher",
)


def area_csv_row(region: str, key: SeriesKey, point: Point) -> list[Any]:
    """One tidy row per point, in the order of :data:`AREA_CSV_COLUMNS`."""
    values = {
        **point_json(point),
        **citation_properties(point.piece),
        "region": region,
        "party": point.piece.party,
        "status": key[1],
        "basis": key[2],
        "series": key[0],
        "account": point.piece.account,
        "illustrative": str(point.piece.illustrative).lower(),
    }
    return [values[column] for column in AREA_CSV_COLUMNS]


def position_json(piece: Piece | None) -> dict[str, Any] | None:
    if piece is None:
        return None
    kind = piece.area_kind
    return {
        "at": isoformat(piece.valid_from),
        "area_km2": km2(piece.best_area_km2),
        "kind": kind.value if kind else None,
        "qualifier": piece.reported_qualifier.value
        if (kind and kind.value == "reported" and piece.reported_qualifier)
        else None,
        "observation_id": piece.observation_id,
        "source": piece.source,
        "illustrative": piece.illustrative,
    }


def change_json(change: Change[Piece] | Change[Total], by_account: bool) -> dict[str, Any]:
    """A series' change: its figure (a region's piece, or a country's total) at both ends."""
    pct = change.pct_change
    ends = (change.before, change.after)
    return {
        **series_label(change.key, by_account),
        **{
            name: total_json(end) if isinstance(end, Total) else position_json(end)
            for name, end in zip(("from", "to"), ends, strict=True)
        },
        "delta_km2": km2(change.delta_km2),
        "pct_change": None if pct is None else round(pct, 2),
    }


def claim_json(piece: Piece, at: dt.datetime, source_names: dict[str, str]) -> dict[str, Any]:
    kind = piece.area_kind
    return {
        "source": piece.source,
        "source_name": source_names.get(piece.source),
        "account": piece.account,
        "party": piece.party,
        "status": piece.status.value,
        "basis": piece.basis.value,
        "area_km2": km2(piece.best_area_km2),
        "kind": kind.value if kind else None,
        "qualifier": piece.reported_qualifier.value if piece.reported_qualifier else None,
        "measured_area_km2": km2(piece.area_km2),
        "reported_area_km2": km2(piece.reported_area_km2),
        "at": isoformat(piece.valid_from),
        "valid_to": isoformat(piece.valid_to),
        "age_days": age_days(piece.valid_from, at),
        "observation_id": piece.observation_id,
        "illustrative": piece.illustrative,
        **citation_properties(piece),
        "note": piece.note,
    }


def spread_json(spread: Spread | None) -> dict[str, Any] | None:
    if spread is None:
        return None

    def end(piece: Piece) -> dict[str, Any]:
        return {
            "source": piece.source,
            "account": piece.account,
            "area_km2": km2(piece.best_area_km2),
            "observation_id": piece.observation_id,
        }

    return {
        "spread_km2": km2(spread.spread_km2),
        "high": end(spread.high),
        "low": end(spread.low),
        "note": "Over claims that give a figure; illustrative ones are left out.",
    }


# --- a country's totals ----------------------------------------------------------------------


def total_json(total: Total) -> dict[str, Any]:
    """A country's total for one series: the clipped sum, the drawings' area as drawn, and the
    member regions (with each one's figure and record) it adds up."""
    return {
        "at": isoformat(total.at),
        "area_km2": km2(total.best_area_km2),
        "kind": total.kind,
        "drawn_area_km2": km2(total.drawn_area_km2),
        "newest": isoformat(total.newest),
        "oldest": isoformat(total.oldest),
        "observation_ids": total.observation_ids,
        "illustrative": total.illustrative,
        "regions": {
            p.region: {
                "area_km2": km2(p.best_area_km2),
                "kind": p.area_kind.value if p.area_kind else None,
                "at": isoformat(p.valid_from),
                "observation_id": p.observation_id,
                "source": p.source,
            }
            for p in total.parts
        },
    }


TOTAL_CSV_COLUMNS = (
    "region",
    "party",
    "status",
    "basis",
    "series",
    "at",
    "area_km2",
    "kind",
    "drawn_area_km2",
    "regions",
    "observation_ids",
    "illustrative",
)


def total_csv_row(region: str, party: str | None, total: Total) -> list[Any]:
    """One tidy row per total, in the order of :data:`TOTAL_CSV_COLUMNS`."""
    who, status, basis = total.key
    values = {
        "region": region,
        "party": party,
        "status": status,
        "basis": basis,
        "series": who,
        "at": isoformat(total.at),
        "area_km2": km2(total.best_area_km2),
        "kind": total.kind,
        "drawn_area_km2": km2(total.drawn_area_km2),
        "regions": " ".join(total.regions),
        "observation_ids": " ".join(str(i) for i in total.observation_ids),
        "illustrative": str(total.illustrative).lower(),
    }
    return [values[column] for column in TOTAL_CSV_COLUMNS]


def total_feature(region: str, party: str | None, total: Total, at: dt.datetime) -> dict[str, Any]:
    """A country's control for one series at ``at``: the union of its members' pieces."""
    who, status, basis = total.key
    first = total.parts[0]
    return {
        "type": "Feature",
        "id": "-".join(str(part) for part in (region, party, *total.key)),
        "geometry": geo.to_geojson(
            geo.union([p.geometry for p in total.parts], grid=geo.SERVED_GRID)
        ),
        "properties": {
            "region": region,
            "party": party,
            "status": status,
            "basis": basis,
            "source": who,
            "account": first.account,
            "area_km2": km2(total.best_area_km2),
            "kind": total.kind,
            "drawn_area_km2": km2(total.drawn_area_km2),
            "valid_from": isoformat(total.newest),
            "oldest_valid_from": isoformat(total.oldest),
            "age_days": age_days(total.oldest, at),
            "observation_ids": total.observation_ids,
            "regions": total.regions,
            "illustrative": total.illustrative,
        },
    }


def total_claim_json(
    total: Total, at: dt.datetime, source_names: dict[str, str], by_account: bool
) -> dict[str, Any]:
    """One series' total at ``at`` among the claims side by side; its age is its oldest part's."""
    label = series_label(total.key, by_account)
    name = None if by_account else source_names.get(str(total.key[0]))
    return {
        **label,
        "source_name": name,
        **total_json(total),
        "age_days": age_days(total.oldest, at),
    }


def total_spread_json(ends: tuple[Total, Total] | None, by_account: bool) -> dict[str, Any] | None:
    if ends is None:
        return None
    high, low = ends
    return {
        "spread_km2": km2(high.best_area_km2 - low.best_area_km2),
        "high": {**series_label(high.key, by_account), "area_km2": km2(high.best_area_km2)},
        "low": {**series_label(low.key, by_account), "area_km2": km2(low.best_area_km2)},
        "note": "Over the series' totals; illustrative ones are left out.",
    }


NOT_CROSS_CHECKED = (
    "The source published no area figures for this snapshot; it was imported without the "
    "cross-check."
)
PUBLISHED_CSV_COLUMNS = (
    "source",
    "snapshot",
    "at",
    "published",
    "fill",
    "kind",
    "published_km2",
    "published_percent",
    "measured_km2",
    "difference_pct",
    "flagged",
)


def published_area_json(area: PublishedArea) -> dict[str, Any]:
    return {
        "fill": area.fill,
        "kind": area.kind,
        "published_km2": km2(area.published_km2),
        "published_percent": area.published_percent,
        "measured_km2": km2(area.measured_km2),
        "difference_pct": None if area.difference_pct is None else round(area.difference_pct, 3),
        "flagged": area.flagged,
    }


def snapshot_areas_json(snapshot: SnapshotAreas) -> dict[str, Any]:
    """A snapshot's published figures next to those measured here, one entry per fill."""
    return {
        "snapshot": snapshot.snapshot,
        "at": isoformat(snapshot.moment),
        "published": snapshot.published,
        "flagged": bool(snapshot.flagged),
        "note": None if snapshot.published else NOT_CROSS_CHECKED,
        "areas": [published_area_json(a) for a in snapshot.areas],
    }


def snapshot_areas_csv_rows(snapshot: SnapshotAreas) -> list[list[Any]]:
    """Tidy rows in the order of :data:`PUBLISHED_CSV_COLUMNS`: one per fill, or one with no
    fill for a snapshot without published figures."""
    head = {
        "source": snapshot.source,
        "snapshot": snapshot.snapshot,
        "at": isoformat(snapshot.moment),
        "published": str(snapshot.published).lower(),
    }
    areas = [published_area_json(a) for a in snapshot.areas] or [{}]
    rows = []
    for area in areas:
        values = {**head, **area, "flagged": str(area.get("flagged", False)).lower()}
        rows.append([values.get(column) for column in PUBLISHED_CSV_COLUMNS])
    return rows
