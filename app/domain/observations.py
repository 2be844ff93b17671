"""Reading an observation from a GeoJSON Feature, with errors a person can act on."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from shapely.geometry.base import BaseGeometry

from app.domain import geometry as geo
from app.domain.errors import InvalidInput
from app.domain.model import Basis, Citation, NewObservation, Qualifier, Status
from app.domain.timeutil import as_utc


class CitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    title: str | None = None
    publisher: str | None = None
    published_at: dt.datetime | dt.date | None = None


class ObservationProperties(BaseModel):
    """The properties of an observation Feature (the geometry is the Feature's own)."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    source: str = Field(description="Slug of the source that gives this observation.")
    party: str | None = Field(
        default=None,
        description="Code of the party (UA, RU, …); null for an unattributed grey zone.",
    )
    status: Status = Status.CONTROLLED
    basis: Basis = Basis.ASSESSED
    valid_from: dt.datetime | dt.date
    valid_to: dt.datetime | dt.date | None = None
    reported_area_km2: float | None = Field(default=None, ge=0)
    reported_region: str | None = None
    reported_qualifier: Qualifier | None = None
    citation: CitationIn = Field(default_factory=CitationIn)
    note: str | None = None
    illustrative: bool = False

    @field_validator("party")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


def _moment(value: dt.datetime | dt.date | None) -> dt.datetime | None:
    """A date alone in stored data means the start of that day, UTC."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return as_utc(value)
    return dt.datetime.combine(value, dt.time.min, tzinfo=dt.UTC)


def parse_geometry(raw: Any, where: str) -> BaseGeometry | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in {"Polygon", "MultiPolygon"}:
        kind = raw.get("type") if isinstance(raw, dict) else type(raw).__name__
        raise InvalidInput(f"{where}: geometry must be a Polygon or MultiPolygon, not {kind}.")
    try:
        shape = geo.from_geojson(raw)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.GEOSException) as e:
        raise InvalidInput(f"{where}: the geometry cannot be read: {e}.") from None
    minx, miny, maxx, maxy = shape.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput(
            f"{where}: coordinates are out of range (lon -180..180, lat -90..90); bounds are "
            f"{shape.bounds}. GeoJSON puts longitude first."
        )
    if not shape.is_valid:
        raise InvalidInput(
            f"{where}: the polygon is invalid: {shapely.is_valid_reason(shape)}.",
        )
    return shape


def parse_feature(feature: dict[str, Any], where: str = "feature") -> NewObservation:
    """A GeoJSON Feature (properties = observation fields) to a :class:`NewObservation`."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise InvalidInput(f"{where}: expected a GeoJSON Feature.")
    try:
        props = ObservationProperties.model_validate(feature.get("properties") or {})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'properties'}: {err['msg']}"
            for err in e.errors()
        )
        raise InvalidInput(f"{where}: {problems}.") from None
    shape = parse_geometry(feature.get("geometry"), where)
    if shape is None and props.reported_area_km2 is None and not props.note:
        raise InvalidInput(f"{where}: give a geometry, a reported_area_km2, or at least a note.")
    if props.reported_area_km2 is not None and not props.reported_region:
        raise InvalidInput(f"{where}: reported_area_km2 needs reported_region (a region slug).")
    valid_from = _moment(props.valid_from)
    valid_to = _moment(props.valid_to)
    assert valid_from is not None
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidInput(
            f"{where}: valid_to ({valid_to}) must be after valid_from ({valid_from})."
        )
    c = props.citation
    return NewObservation(
        source=props.source,
        party=props.party,
        status=props.status,
        basis=props.basis,
        valid_from=valid_from,
        valid_to=valid_to,
        geometry=None if shape is None else geo.to_multipolygon(shape),
        reported_area_km2=props.reported_area_km2,
        reported_region=props.reported_region,
        reported_qualifier=props.reported_qualifier,
        citation=Citation(c.url, c.title, c.publisher, _moment(c.published_at)),
        note=props.note,
        illustrative=props.illustrative,
    )


def content_hash(obs: NewObservation) -> str:
    """A fingerprint of everything the source said: equal content, equal hash."""
    payload = {
        "source": obs.source,
        "party": obs.party,
        "status": str(obs.status),
        "basis": str(obs.basis),
        "valid_from": obs.valid_from.isoformat(),
        "valid_to": obs.valid_to.isoformat() if obs.valid_to else None,
        "geometry": None if obs.geometry is None else shapely.to_wkb(obs.geometry, hex=True),
        "reported_area_km2": obs.reported_area_km2,
        "reported_region": obs.reported_region,
        "reported_qualifier": str(obs.reported_qualifier) if obs.reported_qualifier else None,
        "citation": [
            obs.citation.url,
            obs.citation.title,
            obs.citation.publisher,
            obs.citation.published_at.isoformat() if obs.citation.published_at else None,
        ],
        "note": obs.note,
        "illustrative": obs.illustrative,
        "supersedes": obs.supersedes,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
