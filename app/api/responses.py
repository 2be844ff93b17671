"""Response classes: GeoJSON (RFC 7946 media type), a FeatureCollection streamed a batch of
features at a time, and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from fastapi.responses import JSONResponse, Response, StreamingResponse

GEOJSON_MEDIA_TYPE = "application/geo+json"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


class JSON(JSONResponse):
    """Compact, fast JSON (orjson), also for NaN-free floats from numpy."""

    def render(self, content: Any) -> bytes:
        return encoded(content)


class GeoJSON(JSON):
    media_type = GEOJSON_MEDIA_TYPE


def encoded(content: Any) -> bytes:
    """``content`` as the JSON responses write it."""
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def feature_collection_chunks(
    head: dict[str, Any], batches: Iterable[Sequence[bytes]]
) -> Iterator[bytes]:
    """An RFC 7946 FeatureCollection: ``head``'s members, then ``features``, one chunk per batch
    of encoded Features. Only a batch is in memory at a time, not the whole answer."""
    yield encoded({**head, "features": []})[: -len(b"]}")]
    separator = b""
    for batch in batches:
        if batch:
            yield separator + b",".join(batch)
            separator = b","
    yield b"]}"


def streamed_geojson(head: dict[str, Any], batches: Iterable[Sequence[bytes]]) -> Response:
    return StreamingResponse(
        feature_collection_chunks(head, batches), media_type=GEOJSON_MEDIA_TYPE
    )


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str | None = None
) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    headers = {"Content-Disposition": f'inline; filename="{filename}"'} if filename else None
    return Response(buffer.getvalue(), media_type=CSV_MEDIA_TYPE, headers=headers)
