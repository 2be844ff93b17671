"""What a source says about its own data: the area figures it publishes per snapshot of its
map, next to the area measured here of the same drawing (stored by ``frontline sync``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.datastructures import URL

from app.api import serialize as out
from app.api.deps import Unit
from app.api.ogc.routes import JSON_TYPE, base_url, link
from app.api.params import From, To, WantsCsv, ordered_range
from app.api.responses import CSV_MEDIA_TYPE, JSON, csv_response
from app.api.routing import CheckedRoute
from app.domain.errors import InvalidParameter, NotFound
from app.domain.timeutil import isoformat
from app.storage.published import SnapshotAreas

router = APIRouter(prefix="/sources", tags=["reference"], route_class=CheckedRoute)

DEFAULT_LIMIT = 100
MAX_LIMIT = 5000  # the whole DeepStateMap history (about 1,400 snapshots) fits one page
MAX_OFFSET = 2**31 - 1
FILL = "#[0-9a-f]{3,8}"  # a colour as the importer stores it: lower case, with its #

Slug = Annotated[str, Path(description="Source slug, e.g. `deepstate` (see GET /sources).")]
Snapshot = Annotated[
    str, Path(description="The source's snapshot id (DeepStateMap: its Unix time).")
]
BOTH: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}, "text/csv": {}}}}
FIGURES = (
    "Per fill colour: the source's name for it (`kind`), its published area (`published_km2`) "
    "and share (`published_percent`), the geodesic area measured here of its polygons as "
    "drawn (`measured_km2`, WGS84, before any clipping to regions), the difference "
    "(`difference_pct`, measured against published) and `flagged` when that is beyond the "
    "tolerance (`SYNC_AREA_TOLERANCE_PCT`) the sync ran with. `published: false`: the source "
    "published no figures for that snapshot, which was imported without the cross-check. "
    "`?format=csv` (or `Accept: text/csv`) gives tidy CSV, one row per (snapshot, fill)."
)


def _fills(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    fills = []
    for raw in values:
        for value in (v.strip().lower() for v in raw.split(",")):
            fill = value if value.startswith("#") else f"#{value}"
            if not re.fullmatch(FILL, fill):
                raise InvalidParameter(
                    "fill",
                    f"'fill' takes hex colours such as a52714 or #a52714 (%23a52714 in a URL), "
                    f"not {value!r}.",
                )
            fills.append(fill)
    return fills


def _page_links(
    request: Request, matched: int, offset: int, limit: int, csv: bool
) -> list[dict[str, Any]]:
    """``self``, the other format, and ``next``/``prev`` pages in the format asked for."""
    query = f"?{request.url.query}" if request.url.query else ""
    url = URL(base_url(request) + request.url.path + query)
    paged = CSV_MEDIA_TYPE if csv else JSON_TYPE
    links = [
        link(str(url.include_query_params(format="json")), "self", JSON_TYPE),
        link(str(url.include_query_params(format="csv")), "alternate", CSV_MEDIA_TYPE),
    ]
    if offset + limit < matched:
        nxt = url.include_query_params(offset=offset + limit, limit=limit)
        links.append(link(str(nxt), "next", paged, "Next page"))
    if offset > 0:
        prev = url.include_query_params(offset=max(0, min(offset, matched) - limit), limit=limit)
        links.append(link(str(prev), "prev", paged, "Previous page"))
    return links


def _link_header(links: list[dict[str, Any]]) -> dict[str, str]:
    """The next and prev links as an HTTP ``Link`` header (RFC 8288), for CSV clients."""
    paging = [f'<{x["href"]}>; rel="{x["rel"]}"' for x in links if x["rel"] in ("next", "prev")]
    return {"Link": ", ".join(paging)} if paging else {}


def _csv(source: str, snapshots: list[SnapshotAreas], **headers: str) -> Response:
    rows = [row for s in snapshots for row in out.snapshot_areas_csv_rows(s)]
    name = f"{source}-published-areas.csv"
    answer = csv_response(out.PUBLISHED_CSV_COLUMNS, rows, filename=name)
    answer.headers.update(headers)
    return answer


@router.get(
    "/{slug}/published-areas",
    summary="A source's own published area figures per snapshot, next to those measured here",
    description=(
        "One entry per snapshot of the source's map, oldest first (ties by snapshot id), paged "
        "in the database (`limit`, `offset`, `numberMatched`, and `next`/`prev` links, also as "
        f"an HTTP `Link` header). {FIGURES} An unknown source is a 404; a source that "
        "publishes no figures has an empty list."
    ),
    responses=BOTH,
)
def published_areas(
    request: Request,
    slug: Slug,
    unit: Unit,
    from_: From = None,
    to: To = None,
    flagged: Annotated[
        bool | None,
        Query(
            description="`true`: only snapshots with a flagged colour (among `fill`, when "
            "given); `false`: only those without. Default: all."
        ),
    ] = None,
    fill: Annotated[
        list[str] | None,
        Query(
            description="Only these fill colours (repeatable, or comma-separated), with or "
            "without the `#` (`a52714`, or `%23a52714` in a URL); snapshots without any of "
            "them (and so those without published figures) are left out.",
            examples=[["#a52714"]],
        ),
    ] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description=f"Snapshots per page (default {DEFAULT_LIMIT}; at most "
            f"{MAX_LIMIT}, a larger value is clamped).",
        ),
    ] = None,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Snapshots to skip (paging).")
    ] = 0,
    csv: WantsCsv = False,
) -> Response:
    start, end = ordered_range(from_, to, required=False, whole_days=True)
    fills = _fills(fill)
    source = unit.reference.source(slug)
    size = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
    page, matched = unit.published.page(
        source.slug, start=start, end=end, flagged=flagged, fills=fills, limit=size, offset=offset
    )
    links = _page_links(request, matched, offset, size, csv)
    if csv:
        return _csv(source.slug, page, **_link_header(links))
    return JSON(
        {
            "source": source.slug,
            "from": isoformat(start),
            "to": isoformat(end),
            "flagged": flagged,
            "fill": fills,
            "limit": size,
            "offset": offset,
            "numberMatched": matched,
            "numberReturned": len(page),
            "links": links,
            "snapshots": [out.snapshot_areas_json(s) for s in page],
        },
        headers=_link_header(links),
    )


@router.get(
    "/{slug}/published-areas/{snapshot}",
    summary="A source's own published area figures for one snapshot, next to those measured here",
    description=FIGURES,
    responses=BOTH,
)
def published_areas_of_snapshot(
    slug: Slug, snapshot: Snapshot, unit: Unit, csv: WantsCsv = False
) -> Response:
    source = unit.reference.source(slug)
    found = unit.published.of(source.slug, [snapshot])
    if not found:
        raise NotFound(
            f"{source.slug} has no published-area record for snapshot {snapshot!r}; "
            f"GET /sources/{source.slug}/published-areas lists the snapshots it has.",
            snapshot=snapshot,
        )
    if csv:
        return _csv(source.slug, found)
    return JSON({"source": source.slug, **out.snapshot_areas_json(found[0])})
