"""Research exports: a region's timeline and the whole dataset, each in one file.

CSV (WKT or no geometry), GeoJSON (RFC 7946), GeoJSON text sequences (RFC 8142) and GeoParquet
(written by geopandas, so ``geopandas.read_parquet`` and DuckDB's ``read_parquet`` load it). A
row is a piece, what one observation says about one region, with the properties every other
endpoint serves for it (:func:`app.api.serialize.piece_values`); the file name says what was
asked. Text formats are streamed, their geometries loaded a batch at a time; GeoParquet is built
in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response, StreamingResponse
from shapely.geometry.base import BaseGeometry

from app.api.deps import Unit
from app.api.params import (
    MOMENT_HELP,
    Accounts,
    KnownAt,
    Parties,
    Sources,
    Statuses,
    known_moment,
    ordered_range,
    piece_filter,
    region_codes,
)
from app.api.responses import (
    CSV_MEDIA_TYPE,
    GEOJSON_MEDIA_TYPE,
    encoded,
    feature_collection_chunks,
)
from app.api.routes.regions import Slug
from app.api.routing import CheckedRoute
from app.api.serialize import ILLUSTRATIVE_NOTICE, jsonable, piece_id, piece_values
from app.domain import geometry as geo
from app.domain.errors import InvalidParameter
from app.domain.model import Basis, Citation, Piece, Status
from app.domain.timeutil import isoformat
from app.storage import exports
from app.storage.base import chunks
from app.storage.pieces import PieceFilter
from app.storage.unit import UnitOfWork

router = APIRouter(route_class=CheckedRoute)

# format -> (media type, file name extension)
FORMATS = {
    "csv": (CSV_MEDIA_TYPE, "csv"),
    "geojson": (GEOJSON_MEDIA_TYPE, "geojson"),
    "geojsonseq": ("application/geo+json-seq", "geojsons"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
}
FORMAT_LIST = ", ".join(FORMATS)
BATCH = 500  # rows whose polygons are loaded at once
RS = b"\x1e"  # RFC 8142: every GeoJSON text in a sequence starts with RECORD SEPARATOR

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_BLANK = Piece(
    0, "", "", None, None, Status.CONTROLLED, Basis.ASSESSED, _EPOCH, None, None, None, None,
    None, False, Citation(), None, _EPOCH,
)  # fmt: skip
# A timeline's columns: the properties every endpoint serves for a piece, in their order.
PIECE_COLUMNS = tuple(piece_values(_BLANK))
OBSERVATION_COLUMNS = (*PIECE_COLUMNS, *exports.REVISION_FIELDS)
# GeoParquet column types; any other column is text. Moments are timezone-aware UTC timestamps.
_MOMENT = "datetime64[us, UTC]"
PARQUET_TYPES = {
    "observation_id": "int64",
    "valid_from": _MOMENT,
    "valid_to": _MOMENT,
    "valid_until": _MOMENT,
    "area_km2": "float64",
    "drawn_area_km2": "float64",
    "reported_area_km2": "float64",
    "illustrative": "bool",
    "citation_published_at": _MOMENT,
    "recorded_at": _MOMENT,
    "supersedes": "Int64",
    "superseded_by": "Int64",
    "retracted_at": _MOMENT,
    "active": "bool",
}
CRS = "EPSG:4326"  # lon/lat on WGS84, as GeoJSON; what geopandas.read_file gives for it

EXPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export, as an attachment whose file name says what was asked.",
        "content": {media: {} for media, _ in FORMATS.values()},
    }
}


# --- what was asked ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportQuery:
    """The parameters both exports take: format, geometry, filters, date range, ``known_at``."""

    format: str
    with_geometry: bool
    flt: PieceFilter
    start: dt.datetime | None
    end: dt.datetime | None
    known_at: dt.datetime | None
    asked: tuple[str | None, str | None, str | None]  # from, to, known_at as given

    def members(self, **extra: Any) -> dict[str, Any]:
        """What was asked, as the members of a GeoJSON collection."""
        return {
            **extra,
            "from": isoformat(self.start),
            "to": isoformat(self.end),
            "known_at": isoformat(self.known_at),
        }

    def filename(self, *subject: str) -> str:
        """E.g. ``kursk-timeline-2024-08-01_2025-05-01-known-2026-01-01T000000Z.parquet``."""
        start, end, known = (
            None if raw is None else _stamp(raw, moment)
            for raw, moment in zip(self.asked, (self.start, self.end, self.known_at), strict=True)
        )
        if start and end:
            span = f"{start}_{end}"
        else:
            span = f"from-{start}" if start else f"to-{end}" if end else "all"
        parts = [*subject, span, *(["known", known] if known else [])]
        name = re.sub(r"[^A-Za-z0-9._+-]+", "-", "-".join(p for p in parts if p))
        return f"{name}.{FORMATS[self.format][1]}"


def _stamp(raw: str, moment: dt.datetime | None) -> str:
    """A moment for a file name: a date as given, else the UTC date-time without colons."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
        return raw.strip()
    return (isoformat(moment) or "").replace(":", "")


def _format(value: str | None, accept: str | None) -> str:
    if value is not None:
        if value not in FORMATS:
            raise InvalidParameter(
                "format",
                f"Unknown format {value!r}; 'format' is one of {FORMAT_LIST}.",
                value=value,
                known=list(FORMATS),
            )
        return value
    media_types = {media.split(";")[0]: name for name, (media, _) in FORMATS.items()}
    for offered in (accept or "").split(","):
        chosen = media_types.get(offered.split(";")[0].strip().lower())
        if chosen is not None:
            return chosen
    return "csv"


def export_query(
    unit: Unit,
    format: Annotated[
        str | None,
        Query(
            description=f"One of {FORMAT_LIST}. Default: from the Accept header, else csv.",
            examples=["parquet"],
        ),
    ] = None,
    geometry: Annotated[
        str | None,
        Query(
            description="`none` leaves the polygons out (smaller, faster). Otherwise CSV carries "
            "them as WKT in a `geometry` column (`wkt`, the default) and GeoJSON and GeoParquet "
            "as geometries.",
        ),
    ] = None,
    from_: Annotated[
        str | None,
        Query(alias="from", description=f"Only pieces valid from this moment on. {MOMENT_HELP}"),
    ] = None,
    to: Annotated[
        str | None,
        Query(description=f"Only pieces valid from this moment or before. {MOMENT_HELP}"),
    ] = None,
    party: Parties = None,
    status: Statuses = None,
    source: Sources = None,
    account: Accounts = None,
    known_at: KnownAt = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ExportQuery:
    chosen = _format(format, accept)
    if geometry not in (None, "wkt", "none"):
        raise InvalidParameter(
            "geometry", f"'geometry' is wkt (the default) or none, not {geometry!r}."
        )
    start, end = ordered_range(from_, to, required=False, whole_days=True)
    known = known_moment(known_at)
    flt = piece_filter(unit, party, status, source, account)
    return ExportQuery(chosen, geometry != "none", flt, start, end, known, (from_, to, known_at))


Export = Annotated[ExportQuery, Depends(export_query)]


# --- the endpoints -----------------------------------------------------------------------------


@router.get(
    "/regions/{slug}/timeline",
    tags=["regions"],
    summary="Every piece of a region, oldest first, as CSV, GeoJSON, GeoJSON-seq or GeoParquet",
    description=(
        "One row per observation concerning the region: its polygon clipped to the region with "
        "the geodesic area there, its validity interval (`valid_from`, `valid_until`), source, "
        "account, party, status, basis, reported figure, `illustrative`, citation, note and "
        "`recorded_at`, oldest first: the same properties as `/regions/{slug}/control`. "
        "`from`/`to` select by `valid_from`; `known_at` gives the record as it stood then. "
        "Served as an attachment whose file name says the region, range and `known_at`."
    ),
    responses=EXPORT_CONTENT,
    response_class=Response,
)
def timeline(slug: Slug, q: Export, unit: Unit) -> Response:
    region = unit.regions.get(slug, with_boundary=False, known_at=q.known_at)
    found = unit.pieces.history(region.slug, q.flt, q.start, q.end, q.known_at)
    rows = [piece_values(p) for p in found]
    table = Table(PIECE_COLUMNS, rows, q.members(region=region.slug))
    return respond(unit, q, table, q.filename(region.slug, "timeline"))


@router.get(
    "/exports/observations",
    tags=["exports"],
    summary="The whole dataset: every (observation, region) piece with its revision fields",
    description=(
        "The timeline's columns for every region, plus each observation's revision fields: "
        "`supersedes`, `superseded_by`, `retracted_at`, `retraction_reason`, `recorded_by` and "
        "`active` (false once superseded or retracted). By default the current record, what the "
        "default views show; `revisions=all` adds the superseded and retracted records, each "
        "with the validity interval it had when it was last in force. `known_at` gives the "
        "record as it stood then: later corrections and retractions have not happened yet."
    ),
    responses=EXPORT_CONTENT,
    response_class=Response,
)
def observations(
    q: Export,
    unit: Unit,
    region: Annotated[
        list[str] | None,
        Query(description="Only these regions (repeatable): slugs from GET /regions."),
    ] = None,
    revisions: Annotated[
        str | None,
        Query(
            description="`current` (default): the record as it stands; `all`: superseded and "
            "retracted records too, flagged `active: false`."
        ),
    ] = None,
) -> Response:
    if revisions not in (None, "current", "all"):
        raise InvalidParameter(
            "revisions", f"'revisions' is current (the default) or all, not {revisions!r}."
        )
    codes = region_codes(unit, region)
    regions = None if codes is None else sorted(set(codes))
    everything = revisions == "all"
    found = unit.exports.rows(
        q.flt,
        regions=regions,
        start=q.start,
        end=q.end,
        known_at=q.known_at,
        all_revisions=everything,
    )
    rows = [{**piece_values(r.piece), **r.revision.values()} for r in found]
    table = Table(OBSERVATION_COLUMNS, rows, q.members(revisions=revisions or "current"))
    subject = ["observations", "+".join(regions or []), "and-revisions" if everything else ""]
    return respond(unit, q, table, q.filename(*subject))


# --- the formats -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]  # properties with Python values, no geometry
    members: dict[str, Any]  # what was asked, for a GeoJSON collection


Batch = list[tuple[dict[str, Any], BaseGeometry | None]]


def respond(unit: UnitOfWork, q: ExportQuery, table: Table, filename: str) -> Response:
    media_type = FORMATS[q.format][0]
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    batches = _batches(unit, table.rows, q.with_geometry)
    if q.format == "parquet":
        body = _parquet(table.columns, batches, q.with_geometry)
        return Response(body, media_type=media_type, headers=headers)
    writer = {"csv": _csv, "geojson": _geojson, "geojsonseq": _geojsonseq}[q.format]
    stream = writer(table, batches, q.with_geometry)
    return StreamingResponse(stream, media_type=media_type, headers=headers)


def _batches(unit: UnitOfWork, rows: list[dict[str, Any]], with_geometry: bool) -> Iterator[Batch]:
    """The rows with their clipped polygons, loaded :data:`BATCH` rows at a time."""
    for chunk in chunks(rows, BATCH):
        keys = [(row["observation_id"], row["region"]) for row in chunk]
        shapes = unit.pieces.geometries(keys) if with_geometry else {}
        yield [(row, shapes.get(key)) for row, key in zip(chunk, keys, strict=True)]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _wkt(shape: BaseGeometry | None) -> str | None:
    return None if shape is None else str(shapely.to_wkt(shape, rounding_precision=7))


def _csv(table: Table, batches: Iterator[Batch], with_geometry: bool) -> Iterator[bytes]:
    """A header, then one line per row; moments RFC 3339, polygons as WKT (7 decimals)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*table.columns, *(["geometry"] if with_geometry else [])])
    for batch in batches:
        for row, shape in batch:
            values = jsonable(row)
            cells = [_cell(values[c]) for c in table.columns]
            writer.writerow([*cells, _cell(_wkt(shape))] if with_geometry else cells)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode()


def _features(batches: Iterator[Batch]) -> Iterator[list[bytes]]:
    """Each batch's rows as serialised GeoJSON Features (one chunk of the response a batch)."""
    for batch in batches:
        yield [
            encoded(
                {
                    "type": "Feature",
                    "id": piece_id(row["observation_id"], row["region"]),
                    "geometry": geo.to_geojson(shape),
                    "properties": jsonable(row),
                }
            )
            for row, shape in batch
        ]


def _geojson(table: Table, batches: Iterator[Batch], with_geometry: bool) -> Iterator[bytes]:
    """An RFC 7946 FeatureCollection, written a batch of features at a time."""
    head: dict[str, Any] = {"type": "FeatureCollection"}
    head.update({k: v for k, v in table.members.items() if v is not None})
    if any(row["illustrative"] for row in table.rows):
        head.update(illustrative=True, notice=ILLUSTRATIVE_NOTICE)
    head.update(numberReturned=len(table.rows))
    return feature_collection_chunks(head, _features(batches))


def _geojsonseq(table: Table, batches: Iterator[Batch], with_geometry: bool) -> Iterator[bytes]:
    """RFC 8142: each Feature on a line of its own, after a RECORD SEPARATOR."""
    for features in _features(batches):
        yield b"".join(RS + feature + b"\n" for feature in features)


def _parquet(columns: Sequence[str], batches: Iterator[Batch], with_geometry: bool) -> bytes:
    """GeoParquet (geopandas), or plain Parquet without polygons; typed columns."""
    values: dict[str, list[Any]] = {c: [] for c in columns}
    shapes: list[BaseGeometry | None] = []
    for batch in batches:
        for row, shape in batch:
            for c in columns:
                values[c].append(row[c])
            shapes.append(shape)
    import geopandas as gpd  # here: pandas costs a worker some 70 MB, and only Parquet needs it
    import pandas as pd

    frame = pd.DataFrame(values).astype({c: PARQUET_TYPES.get(c, "string") for c in columns})
    buffer = io.BytesIO()
    if with_geometry:
        frame = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(shapes, crs=CRS))
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
