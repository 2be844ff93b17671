"""Reference data: one source or party; and, with an ``admin`` token, adding sources and
parties and replacing region boundaries (the old boundary stays in history)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.api import serialize as out
from app.api.auth import Admin, read_access
from app.api.body import JsonBody, read_json
from app.api.deps import Db, Unit
from app.api.responses import JSON, GeoJSON
from app.api.routing import CheckedRoute
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.model import Party, Region, Source, SourceKind
from app.domain.observations import (
    MAX_CODE,
    MAX_NOTE,
    MAX_TITLE,
    MAX_URL,
    feature_label,
    parse_geometry,
)

router = APIRouter(tags=["reference"], route_class=CheckedRoute)

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class SourceIn(BaseModel):
    slug: str = Field(pattern=SLUG.pattern, max_length=64, examples=["deepstate"])
    name: str = Field(min_length=1, max_length=MAX_TITLE, examples=["DeepStateMap"])
    kind: SourceKind = Field(examples=["osint"])
    account: str | None = Field(
        default=None,
        max_length=MAX_CODE,
        description="Party the source speaks for, if any.",
        examples=[None],
    )
    url: str | None = Field(
        default=None, max_length=MAX_URL, examples=["https://deepstatemap.live"]
    )
    description: str | None = Field(default=None, max_length=MAX_NOTE)


class PartyIn(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{2,16}$", examples=["KP"])
    name: str = Field(min_length=1, max_length=MAX_TITLE, examples=["North Korea"])
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#024fa2"])


@router.get("/sources/{slug}", summary="One source", dependencies=[Depends(read_access)])
def get_source(slug: Annotated[str, Path(description="Source slug.")], unit: Unit) -> JSON:
    return JSON(out.source_json(unit.reference.source(slug)))


@router.get("/parties/{code}", summary="One party", dependencies=[Depends(read_access)])
def get_party(code: Annotated[str, Path(description="Party code.")], unit: Unit) -> JSON:
    for party in unit.reference.parties():
        if party.code == code.upper():
            return JSON({"code": party.code, "name": party.name, "color": party.color})
    raise NotFound(f"There is no party {code!r}; GET /parties lists them.")


@router.post("/sources", status_code=201, summary="Add a source (admin)", dependencies=[JsonBody])
def create_source(body: SourceIn, request: Request, db: Db, token: Admin) -> JSON:
    account = body.account.upper() if body.account else None
    source = Source(body.slug, body.name, body.kind, account, body.url, body.description)
    with db.write(recorded_by=token.name) as unit:
        known = [p.code for p in unit.reference.parties()]
        if account is not None and account not in known:
            raise InvalidInput(
                f"Unknown party {account!r} in 'account'. Known: {', '.join(known)}.", known=known
            )
        if not unit.reference.add_source(source):
            raise Conflict(f"A source {body.slug!r} exists already.")
    url = str(request.url_for("get_source", slug=body.slug))
    return JSON(out.source_json(source), status_code=201, headers={"Location": url})


@router.post("/parties", status_code=201, summary="Add a party (admin)", dependencies=[JsonBody])
def create_party(body: PartyIn, request: Request, db: Db, token: Admin) -> JSON:
    with db.write(recorded_by=token.name) as unit:
        if not unit.reference.add_party(Party(body.code, body.name, body.color)):
            raise Conflict(f"A party {body.code!r} exists already.")
    url = str(request.url_for("get_party", code=body.code))
    return JSON(body.model_dump(), status_code=201, headers={"Location": url})


@router.put(
    "/regions/{slug}",
    tags=["regions"],
    summary="Add a region or replace its boundary (admin)",
    description="A GeoJSON Feature with a (Multi)Polygon boundary in WGS84 and properties "
    "`name`, `country`, `country_code` (optional when replacing). Replacing a boundary "
    "rebuilds the region's derived pieces and areas; the old boundary stays in history and "
    "`known_at` before the change still shows it.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/geo+json": {}, "application/json": {}},
        }
    },
)
async def put_region(
    slug: Annotated[str, Path(description="Region slug (lower-case, dashes).", examples=["kursk"])],
    request: Request,
    db: Db,
    token: Admin,
    repair: Annotated[
        bool, Query(description="Repair an invalid boundary with make_valid.")
    ] = False,
) -> GeoJSON:
    if not SLUG.match(slug):
        raise InvalidInput(f"{slug!r} is not a slug: lower-case letters, digits and dashes.")
    document, _ = await read_json(request)
    if not isinstance(document, dict) or document.get("type") != "Feature":
        raise InvalidInput("Send the boundary as a GeoJSON Feature.", pointer="/")
    boundary, warnings = parse_geometry(
        document.get("geometry"), feature_label(document, None), "/geometry", repair
    )
    if boundary is None or boundary.is_empty:
        raise InvalidInput("A region needs a boundary with area.", pointer="/geometry")
    props = document.get("properties") or {}

    def save() -> tuple[bool, bool, Region]:
        with db.write(recorded_by=token.name) as unit:
            try:
                current: Region | None = unit.regions.get(slug, with_boundary=False)
            except NotFound:
                current = None
            fields = {
                "name": props.get("name") or (current.name if current else None),
                "country": props.get("country") or (current.country if current else None),
                "country_code": props.get("country_code")
                or (current.country_code if current else None),
            }
            missing = [k for k, v in fields.items() if not v]
            if missing:
                raise InvalidInput(f"A new region needs properties {', '.join(missing)}.")
            if current is not None and current.is_country:
                raise InvalidInput(
                    f"{slug!r} is a country: its boundary is the union of its member regions "
                    f"({', '.join(unit.regions.members(slug))}). PUT a member region instead."
                )
            parent = props.get("parent", current.parent if current else None)
            changed = unit.regions.save(
                slug,
                str(fields["name"]),
                str(fields["country"]),
                str(fields["country_code"]),
                boundary,
                note=props.get("note"),
                parent=parent if isinstance(parent, str) and parent else None,
            )
            return current is None, changed, unit.regions.get(slug)

    created, changed, region = await run_in_threadpool(save)
    feature = out.region_feature(region)
    feature["properties"].update(changed=changed, warnings=warnings)
    headers = {"Location": str(request.url_for("get_region", slug=slug))}
    return GeoJSON(feature, status_code=201 if created else 200, headers=headers)
