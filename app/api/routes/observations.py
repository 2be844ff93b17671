"""Observations: write them (with a token), correct them, retract them, read their history.

Nothing is updated in place or deleted: a correction is a new record that supersedes the old
one, a retraction marks the record and takes it out of the default views; both stay readable,
and every read endpoint's ``known_at`` replays the record as it stood.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from app.api.auth import Writer, read_access
from app.api.body import JsonBody, read_json
from app.api.deps import Db, Unit
from app.api.params import KnownAt, ObservationId, known_moment
from app.api.responses import JSON, GeoJSON
from app.api.routing import CheckedRoute
from app.domain import geometry as geo
from app.domain.errors import InvalidInput, InvalidParameter
from app.domain.observations import parse_document
from app.domain.timeutil import isoformat
from app.storage.database import Database
from app.storage.tokens import TokenInfo

MAX_REASON = 2_000  # characters of a retraction's reason

router = APIRouter(prefix="/observations", tags=["observations"], route_class=CheckedRoute)

Repair = Annotated[
    bool,
    Query(
        description="Repair invalid polygons with shapely's make_valid instead of refusing them; "
        "the answer's `warnings` say what was repaired."
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string; sending the same request again with the same key returns "
        "the first answer instead of writing twice.",
        max_length=200,
    ),
]
FEATURE_EXAMPLE = {
    "type": "Feature",
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [[35.2, 51.15], [35.4, 51.15], [35.4, 51.25], [35.2, 51.25], [35.2, 51.15]]
        ],
    },
    "properties": {
        "source": "frontline-atlas-illustration",
        "party": "UA",
        "status": "controlled",
        "valid_from": "2024-09-01",
        "citation": {"title": "Example", "publisher": "Example desk"},
        "illustrative": True,
    },
}
WRITE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/geo+json": {"example": FEATURE_EXAMPLE},
            "application/json": {"example": FEATURE_EXAMPLE},
        },
        "description": "A GeoJSON Feature whose properties are the observation's fields "
        "(source, party, status, basis, valid_from, valid_to, reported_area_km2, "
        "reported_region, reported_qualifier, citation{url,title,publisher,published_at}, note, "
        "illustrative), or a FeatureCollection of them, written in one transaction.",
    }
}


def max_vertices(request: Request) -> int:
    limit: int = request.app.state.settings.max_vertices_per_observation
    return limit


def _written(results: list[Any], request: Request, warnings: list[list[str]]) -> dict[str, Any]:
    items = [
        {
            "id": r.observation_id,
            "url": str(request.url_for("get_observation", observation_id=r.observation_id)),
            "created": r.created,
            "areas_km2": {k: round(v, 3) for k, v in sorted(r.areas_km2.items())},
            "warnings": w,
        }
        for r, w in zip(results, warnings, strict=True)
    ]
    body: dict[str, Any] = {"observations": items}
    if len(items) == 1:
        body.update(items[0])
    return body


def _write(
    db: Database,
    token: TokenInfo,
    document: Any,
    repair: bool,
    key: str | None,
    request_hash: str,
    request: Request,
) -> tuple[int, dict[str, Any], bool]:
    """Parse, then write in one unit: (status, body, whether it is an earlier answer replayed).

    An Idempotency-Key is claimed inside the same transaction as the write, so of any number of
    requests with one key (at once or one after another) exactly one writes."""
    parsed, labels = parse_document(document, repair, max_vertices(request))
    with db.write(recorded_by=token.name) as unit:
        if key is not None:
            earlier = unit.idempotency.claim(token.name, key, request_hash)
            if earlier is not None:
                return earlier.status, earlier.body, True
        results = unit.observations.add(
            [p.observation for p in parsed], idempotency_key=key, names=labels
        )
        body = _written(results, request, [list(p.warnings) for p in parsed])
        status = 201 if any(r.created for r in results) else 200
        if key is not None:
            unit.idempotency.answer(token.name, key, status, body)
    return status, body, False


@router.post(
    "",
    status_code=201,
    summary="Write observations (a Feature or a FeatureCollection), in one transaction",
    description="Needs a token with scope `write`. 201 with `Location` when anything was written; "
    "200 with the existing record when the same content (or the same `Idempotency-Key`) was "
    "sent before. Any bad feature refuses the whole request, and the answer names it.",
    openapi_extra=WRITE_BODY,
    responses={200: {"description": "Already recorded: the existing record(s)"}},
)
async def create_observations(
    request: Request,
    db: Db,
    token: Writer,
    repair: Repair = False,
    idempotency_key: IdempotencyKey = None,
) -> JSON:
    document, request_hash = await read_json(request)
    status, body, replayed = await run_in_threadpool(
        _write, db, token, document, repair, idempotency_key, request_hash, request
    )
    headers = {"Location": body["observations"][0]["url"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSON(body, status_code=status, headers=headers)


@router.post(
    "/{observation_id}/corrections",
    status_code=201,
    summary="Correct an observation: a new record that supersedes it",
    description="Needs scope `write`. The old record stays readable (see its history) and drops "
    "out of the default views. Correcting a record that has already been corrected or retracted "
    "is a 409 that names the record to correct instead.",
    openapi_extra=WRITE_BODY,
)
async def correct_observation(
    observation_id: ObservationId,
    request: Request,
    db: Db,
    token: Writer,
    repair: Repair = False,
) -> JSON:
    document, _ = await read_json(request)

    def write() -> dict[str, Any]:
        if isinstance(document, dict) and document.get("type") == "FeatureCollection":
            raise InvalidInput("A correction is one Feature, not a FeatureCollection.")
        [parsed], _labels = parse_document(document, repair, max_vertices(request))
        with db.write(recorded_by=token.name) as unit:
            result = unit.revisions.correct(observation_id, parsed.observation)
        body = _written([result], request, [list(parsed.warnings)])
        body["supersedes"] = observation_id
        return body

    body = await run_in_threadpool(write)
    return JSON(body, status_code=201, headers={"Location": body["url"]})


@router.delete(
    "/{observation_id}",
    summary="Retract an observation (it stays on record, marked retracted)",
    description="Needs scope `write` and a `reason` (query parameter, or a JSON body "
    '`{"reason": "..."}`; a `null` body is the same as none). The record drops out of the '
    "default views; `known_at` before the retraction still shows it.",
    dependencies=[JsonBody],
)
def retract_observation(
    observation_id: ObservationId,
    db: Db,
    token: Writer,
    reason: Annotated[
        str | None,
        Query(description="Why the record is retracted (required).", max_length=MAX_REASON),
    ] = None,
    body: Annotated[dict[str, Any] | None, Body(examples=[{"reason": "duplicate entry"}])] = None,
) -> JSON:
    why = reason or (body or {}).get("reason")
    if not isinstance(why, str) or not why.strip():
        raise InvalidParameter(
            "reason", 'A retraction needs a reason: ?reason=... or a JSON body {"reason": "..."}.'
        )
    if len(why) > MAX_REASON:
        raise InvalidParameter(
            "reason", f"The reason is {len(why):,} characters; give at most {MAX_REASON:,}."
        )
    with db.write(recorded_by=token.name) as unit:
        row = unit.revisions.retract(observation_id, why.strip())
    return JSON(
        {
            "id": observation_id,
            "retracted_at": isoformat(row["retracted_at"]),
            "retraction_reason": row["retraction_reason"],
            "retracted_by": row["retracted_by"],
        }
    )


@router.get(
    "/{observation_id}",
    response_class=GeoJSON,
    summary="One observation as recorded, with its areas per region and revision state",
    dependencies=[Depends(read_access)],
)
def get_observation(
    observation_id: ObservationId, request: Request, unit: Unit, known_at: KnownAt = None
) -> GeoJSON:
    known = known_moment(known_at)
    rec = unit.revisions.record(observation_id, known)
    row = rec.row
    properties = {
        key: (isoformat(value) if hasattr(value, "isoformat") else value)
        for key, value in row.items()
        if key not in {"geometry", "content_hash", "geometry_hash", "id"}
        and not key.startswith(("min_", "max_"))
    }
    properties.update(
        areas_km2={k: round(v, 3) for k, v in sorted(rec.areas_km2.items())},
        superseded_by=rec.superseded_by,
        current=rec.superseded_by is None and row["retracted_at"] is None,
        confirmations=rec.confirmations,
        last_confirmed_at=isoformat(rec.last_confirmed_at),
        history=str(request.url_for("observation_history", observation_id=observation_id)),
    )
    if known is not None:
        properties["known_at"] = isoformat(known)
    return GeoJSON(
        {
            "type": "Feature",
            "id": observation_id,
            "geometry": geo.to_geojson(row["geometry"]),
            "properties": properties,
        }
    )


@router.get(
    "/{observation_id}/history",
    summary="The revision chain: recorded, corrected, retracted — who and when",
    dependencies=[Depends(read_access)],
)
def observation_history(observation_id: ObservationId, unit: Unit) -> JSON:
    events = unit.revisions.history(observation_id)
    chain = [e["observation_id"] for e in events if e["event"] != "retracted"]
    retracted = {e["observation_id"] for e in events if e["event"] == "retracted"}
    head = chain[-1]
    return JSON(
        {
            "observation_id": observation_id,
            "current": None if head in retracted else head,
            "versions": chain,
            "events": [{**e, "at": isoformat(e["at"])} for e in events],
        }
    )
