"""Reading an observation from a GeoJSON Feature, with errors a person can act on.

Every problem names where it is: the feature (its index in a collection, and its ``id`` when it
has one), the JSON pointer into the document, and what to do about it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import shapely
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from app.domain import geometry as geo
from app.domain.errors import InvalidInput
from app.domain.model import Basis, Citation, NewObservation, Qualifier, Status
from app.domain.timeutil import as_utc, isoformat, now

# A source's clock may run a little ahead of ours; further in the future is a mistake.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)

# Bounds a person expects of an observation; beyond them it is refused with the bound named.
MAX_VERTICES = 200_000  # positions per observation; the MAX_VERTICES_PER_OBSERVATION default
MAX_AREA_KM2 = 20_000_000  # a reported area: more than any country but Russia (17.1 million)
MAX_NOTE = 10_000  # characters
MAX_TITLE = 1_000  # characters of a citation's title or publisher
MAX_URL = 2_000  # characters of a citation's URL
MAX_CODE = 64  # characters of a source slug, party code or region slug
EARLIEST = dt.date(1900, 1, 1)  # no moment (valid_from, valid_to, published_at) before it
LATEST = dt.date(2100, 1, 1)  # nor on or after it

Moment = dt.datetime | dt.date


def _in_era(value: Moment | None, info: ValidationInfo) -> Moment | None:
    """Moments between 1900 and 2100. Compared on the calendar as written, so that an offset
    on the edge of the datetime range cannot overflow before the check."""
    if value is None:
        return None
    day = value.date() if isinstance(value, dt.datetime) else value
    if day >= LATEST and info.field_name == "valid_from":
        raise ValueError(f"{value.isoformat()} is in the future")
    if not EARLIEST <= day < LATEST:
        raise ValueError(
            f"{value.isoformat()} is out of range: moments run from {EARLIEST} to before {LATEST}"
        )
    return value


class CitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=MAX_URL)
    title: str | None = Field(default=None, max_length=MAX_TITLE)
    publisher: str | None = Field(default=None, max_length=MAX_TITLE)
    published_at: Moment | None = None

    _era = field_validator("published_at")(_in_era)


class ObservationProperties(BaseModel):
    """The properties of an observation Feature (the geometry is the Feature's own)."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    source: str = Field(
        max_length=MAX_CODE, description="Slug of the source that gives this observation."
    )
    party: str | None = Field(
        default=None,
        max_length=MAX_CODE,
        description="Party code (UA, RU, …); null for an unattributed grey zone.",
    )
    status: Status = Status.CONTROLLED
    basis: Basis = Basis.ASSESSED
    valid_from: Moment
    valid_to: Moment | None = None
    reported_area_km2: float | None = Field(
        default=None, ge=0, le=MAX_AREA_KM2, allow_inf_nan=False
    )
    reported_region: str | None = Field(default=None, max_length=MAX_CODE)
    reported_qualifier: Qualifier | None = None
    citation: CitationIn = Field(default_factory=CitationIn)
    note: str | None = Field(default=None, max_length=MAX_NOTE)
    illustrative: bool = False

    _era = field_validator("valid_from", "valid_to")(_in_era)

    @field_validator("party")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


@dataclass(frozen=True)
class Parsed:
    observation: NewObservation
    warnings: tuple[str, ...] = field(default=())


def _moment(value: dt.datetime | dt.date | None) -> dt.datetime | None:
    """A date alone in stored data means the start of that day, UTC."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return as_utc(value)
    return dt.datetime.combine(value, dt.time.min, tzinfo=dt.UTC)


def feature_label(feature: Any, index: int | None) -> str:
    """How errors name a feature: 'feature 3 (id "x")' or just 'the feature'."""
    fid = feature.get("id") if isinstance(feature, dict) else None
    name = f"feature {index}" if index is not None else "the feature"
    return f"{name} (id {json.dumps(fid)})" if fid is not None else name


def _fail(where: str, pointer: str, message: str, **extra: Any) -> InvalidInput:
    return InvalidInput(f"{where}: {message}", pointer=pointer, **extra)


def _check_rings(raw: dict[str, Any], where: str, pointer: str, max_vertices: int | None) -> None:
    """Structure, closure, length and range of the rings, before shapely silently fixes any;
    and, first, their number of positions against ``max_vertices``."""
    kind = raw["type"]
    coords = raw.get("coordinates")
    polygons = [coords] if kind == "Polygon" else coords
    if not isinstance(polygons, list) or (kind == "Polygon" and not polygons):
        raise _fail(where, f"{pointer}/coordinates", f"a {kind} needs a list of rings.")
    if max_vertices is not None:
        count = sum(
            len(ring)
            for rings in polygons
            if isinstance(rings, list)
            for ring in rings
            if isinstance(ring, list)
        )
        if count > max_vertices:
            raise _fail(
                where,
                f"{pointer}/coordinates",
                f"the geometry has {count:,} positions; the limit is {max_vertices:,} per "
                "observation (MAX_VERTICES_PER_OBSERVATION). Simplify it (e.g. to 10 m), or "
                "split it into several observations.",
                limit=max_vertices,
            )
    swapped = True
    out_of_range: list[float] | None = None
    for p, rings in enumerate(polygons):
        base = f"{pointer}/coordinates" + ("" if kind == "Polygon" else f"/{p}")
        if not isinstance(rings, list) or not rings:
            raise _fail(where, base, "each polygon needs at least one ring (its exterior).")
        for r, ring in enumerate(rings):
            at = f"{base}/{r}"
            ok = isinstance(ring, list) and all(
                isinstance(pos, list)
                and len(pos) >= 2
                and all(isinstance(v, int | float) and math.isfinite(v) for v in pos[:3])
                for pos in ring
            )
            if not ok:
                raise _fail(where, at, "a ring is a list of [longitude, latitude] positions.")
            if len(ring) < 4:
                raise _fail(
                    where,
                    at,
                    f"ring {r} has {len(ring)} positions; a ring needs at least 4 "
                    "(3 corners and the first position repeated at the end).",
                )
            if ring[0][:2] != ring[-1][:2]:
                raise _fail(
                    where,
                    at,
                    f"ring {r} is not closed: it starts at {ring[0][:2]} and ends at "
                    f"{ring[-1][:2]}; repeat the first position at the end.",
                )
            for pos in ring:
                lon, lat = pos[0], pos[1]
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    out_of_range = out_of_range or [lon, lat]
                if not (-90 <= lon <= 90 and -180 <= lat <= 180):
                    swapped = False
    if out_of_range is not None:
        hint = (
            " It looks like latitude and longitude are swapped: GeoJSON puts longitude first."
            if swapped
            else ""
        )
        raise _fail(
            where,
            f"{pointer}/coordinates",
            f"coordinates out of range: {out_of_range} (longitude must be within -180..180, "
            f"latitude within -90..90).{hint}",
        )


def parse_geometry(
    raw: Any,
    where: str,
    pointer: str = "/geometry",
    repair: bool = False,
    max_vertices: int | None = None,
) -> tuple[BaseGeometry | None, list[str]]:
    """A GeoJSON Polygon/MultiPolygon (or null) to shapely; with ``repair``, invalid polygons
    are repaired with ``make_valid`` and a warning says what was done. More than
    ``max_vertices`` positions are refused before any geometry is built."""
    if raw is None:
        return None, []
    if not isinstance(raw, dict) or raw.get("type") not in {"Polygon", "MultiPolygon"}:
        kind = raw.get("type") if isinstance(raw, dict) else type(raw).__name__
        raise _fail(
            where,
            pointer,
            f"the geometry must be a Polygon or a MultiPolygon (territory), not {kind}.",
        )
    _check_rings(raw, where, pointer, max_vertices)
    shape = geo.from_geojson(raw)
    if shape.is_empty:
        return MultiPolygon(), []
    if shape.is_valid:
        return shape, []
    reason = shapely.is_valid_reason(shape)
    if not repair:
        raise _fail(
            where,
            pointer,
            f"the polygon is invalid: {reason}. Fix it, or send it with ?repair=true to have it "
            "repaired (shapely make_valid).",
            reason=reason,
        )
    repaired = geo.polygonal_part(shapely.make_valid(shape))
    if repaired is None:
        raise _fail(where, pointer, f"the polygon is invalid ({reason}) and has no area left.")
    before, after = geo.geodesic_area_km2(shape.buffer(0)), geo.geodesic_area_km2(repaired)
    return repaired, [
        f"{where}: repaired an invalid polygon ({reason}) with make_valid; "
        f"area {after:.3f} km² (the input, read as drawn, measured {before:.3f} km²)."
    ]


def parse_feature(
    feature: Any,
    where: str = "the feature",
    pointer: str = "",
    repair: bool = False,
    now_: dt.datetime | None = None,
    max_vertices: int = MAX_VERTICES,
) -> Parsed:
    """A GeoJSON Feature (properties = observation fields) to a :class:`NewObservation`."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        kind = feature.get("type") if isinstance(feature, dict) else type(feature).__name__
        raise _fail(where, pointer or "/", f"expected a GeoJSON Feature, got {kind}.")
    try:
        props = ObservationProperties.model_validate(feature.get("properties") or {})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'properties'}: {err['msg']}"
            for err in e.errors()
        )
        raise _fail(where, f"{pointer}/properties", f"{problems}.") from None
    shape, warnings = parse_geometry(
        feature.get("geometry"), where, f"{pointer}/geometry", repair, max_vertices
    )
    empty = shape is not None and shape.is_empty
    if empty and not props.reported_region:
        raise _fail(
            where,
            f"{pointer}/geometry",
            "an empty geometry means 'none of this ground in a region'; name the region in "
            "reported_region.",
        )
    if shape is None and props.reported_area_km2 is None and not props.note:
        raise _fail(
            where, pointer or "/", "give a geometry, a reported_area_km2, or at least a note."
        )
    if props.reported_area_km2 is not None and not props.reported_region:
        raise _fail(
            where,
            f"{pointer}/properties/reported_region",
            "reported_area_km2 needs reported_region.",
        )
    valid_from = _moment(props.valid_from)
    valid_to = _moment(props.valid_to)
    assert valid_from is not None
    current = now_ or now()
    if valid_from > current + FUTURE_TOLERANCE:
        raise _fail(
            where,
            f"{pointer}/properties/valid_from",
            f"valid_from {isoformat(valid_from)} is in the future "
            f"(it is now {isoformat(current)}).",
        )
    if valid_to is not None and valid_to <= valid_from:
        raise _fail(
            where,
            f"{pointer}/properties/valid_to",
            f"valid_to ({isoformat(valid_to)}) must be after valid_from ({isoformat(valid_from)}).",
        )
    c = props.citation
    geometry = None if shape is None else (shape if empty else geo.to_multipolygon(shape))
    return Parsed(
        NewObservation(
            source=props.source,
            party=props.party,
            status=props.status,
            basis=props.basis,
            valid_from=valid_from,
            valid_to=valid_to,
            geometry=geometry,
            reported_area_km2=props.reported_area_km2,
            reported_region=props.reported_region,
            reported_qualifier=props.reported_qualifier,
            citation=Citation(c.url, c.title, c.publisher, _moment(c.published_at)),
            note=props.note,
            illustrative=props.illustrative,
        ),
        tuple(warnings),
    )


def parse_document(
    document: Any, repair: bool = False, max_vertices: int = MAX_VERTICES
) -> tuple[list[Parsed], list[str]]:
    """A Feature or a FeatureCollection of observations; returns them with their labels.

    One bad feature refuses the whole document: the error names it. ``max_vertices`` bounds
    each observation's geometry.
    """
    if isinstance(document, dict) and document.get("type") == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list) or not features:
            raise InvalidInput("the FeatureCollection has no features.", pointer="/features")
        labels = [feature_label(f, i) for i, f in enumerate(features)]
        current = now()
        parsed = [
            parse_feature(f, labels[i], f"/features/{i}", repair, current, max_vertices)
            for i, f in enumerate(features)
        ]
        return parsed, labels
    if isinstance(document, dict) and document.get("type") == "Feature":
        label = feature_label(document, None)
        return [parse_feature(document, label, "", repair, max_vertices=max_vertices)], [label]
    kind = document.get("type") if isinstance(document, dict) else type(document).__name__
    raise InvalidInput(
        f"expected a GeoJSON Feature or FeatureCollection of observations, got {kind}.",
        pointer="/",
    )


# Fields of NewObservation that the service derives rather than the source saying them.
DERIVED_FIELDS = frozenset({"drawn_area_km2"})


def content_hash(obs: NewObservation) -> str:
    """A fingerprint of everything the source said: equal content, equal hash. Derived from the
    fields of :class:`NewObservation` (the citation as the list of its fields)."""
    payload = {
        f.name: _plain(getattr(obs, f.name))
        for f in fields(NewObservation)
        if f.name not in DERIVED_FIELDS
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _plain(value: Any) -> Any:
    """A field's value as JSON: moments in ISO form, shapes as hex WKB, enums as text."""
    if isinstance(value, Citation):
        return [_plain(getattr(value, f.name)) for f in fields(Citation)]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, BaseGeometry):
        return bytes(shapely.to_wkb(value)).hex().upper()  # as hex=True gives, but faster
    if isinstance(value, StrEnum):
        return str(value)
    return value
