"""Response classes: GeoJSON (RFC 7946 media type) and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from fastapi.responses import JSONResponse, Response

GEOJSON_MEDIA_TYPE = "application/geo+json"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


class JSON(JSONResponse):
    """Compact, fast JSON (orjson), also for NaN-free floats from numpy."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class GeoJSON(JSON):
    media_type = GEOJSON_MEDIA_TYPE


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str | None = None
) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    headers = {"Content-Disposition": f'inline; filename="{filename}"'} if filename else None
    return Response(buffer.getvalue(), media_type=CSV_MEDIA_TYPE, headers=headers)
