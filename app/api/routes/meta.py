"""The service's own resources: health and problem types, open to all; parties and sources,
which are data and so need a token when reads do (REQUIRE_TOKEN_FOR_READS)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from app import __version__
from app.api import serialize as out
from app.api.auth import read_access
from app.api.deps import Unit
from app.api.problems import PROBLEM_TYPES
from app.api.responses import JSON
from app.api.routing import CheckedRoute
from app.domain.errors import NotFound

router = APIRouter(route_class=CheckedRoute)


@router.get("/healthz", tags=["service"], summary="Liveness and database check")
def health(unit: Unit) -> JSON:
    unit.ping()
    return JSON({"status": "ok", "database": unit.dialect, "version": __version__})


@router.get(
    "/parties",
    tags=["reference"],
    summary="Parties: the sides whose ground is mapped",
    dependencies=[Depends(read_access)],
)
def parties(unit: Unit) -> JSON:
    return JSON(
        [{"code": p.code, "name": p.name, "color": p.color} for p in unit.reference.parties()]
    )


@router.get(
    "/sources",
    tags=["reference"],
    summary="Sources: who gives the figures and polygons, and which party each speaks for",
    dependencies=[Depends(read_access)],
)
def sources(unit: Unit) -> JSON:
    return JSON([out.source_json(s) for s in unit.reference.sources()])


@router.get("/problems/{slug}", tags=["service"], summary="What a problem type means")
def problem_type(slug: Annotated[str, Path(description="Problem type slug")]) -> JSON:
    if slug not in PROBLEM_TYPES:
        raise NotFound(f"No problem type {slug!r}. Known: {', '.join(sorted(PROBLEM_TYPES))}.")
    title, meaning = PROBLEM_TYPES[slug]
    body: dict[str, Any] = {"type": slug, "title": title, "description": meaning}
    return JSON(body)
