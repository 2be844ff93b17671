"""The service's own resources: landing page, health, parties, sources, problem types."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy import text

from app import __version__
from app.api import serialize as out
from app.api.deps import Repo
from app.api.problems import PROBLEM_TYPES
from app.api.responses import JSON
from app.domain.errors import NotFound

router = APIRouter()


@router.get("/", tags=["service"], summary="What this service is, and where to go next")
def landing(request: Request) -> JSON:
    base = str(request.base_url).rstrip("/")
    return JSON(
        {
            "title": "Frontline Atlas",
            "description": "Who controls which ground, when, and according to whom: time-stamped "
            "territorial-control polygons and area claims, each with its source and citation.",
            "version": __version__,
            "links": [
                {"rel": "self", "href": f"{base}/", "type": "application/json"},
                {"rel": "service-doc", "href": f"{base}/docs", "type": "text/html"},
                {"rel": "service-desc", "href": f"{base}/openapi.json", "type": "application/json"},
                {"rel": "data", "href": f"{base}/regions", "type": "application/geo+json"},
                {"rel": "parties", "href": f"{base}/parties", "type": "application/json"},
                {"rel": "sources", "href": f"{base}/sources", "type": "application/json"},
            ],
        }
    )


@router.get("/healthz", tags=["service"], summary="Liveness and database check")
def health(repo: Repo) -> JSON:
    with repo.engine.connect() as c:
        c.execute(text("SELECT 1"))
    return JSON({"status": "ok", "database": repo.dialect, "version": __version__})


@router.get("/parties", tags=["reference"], summary="Parties: the sides whose ground is mapped")
def parties(repo: Repo) -> JSON:
    return JSON([{"code": p.code, "name": p.name, "color": p.color} for p in repo.parties()])


@router.get(
    "/sources",
    tags=["reference"],
    summary="Sources: who gives the figures and polygons, and which party each speaks for",
)
def sources(repo: Repo) -> JSON:
    return JSON([out.source_json(s) for s in repo.sources()])


@router.get("/problems/{slug}", tags=["service"], summary="What a problem type means")
def problem_type(slug: Annotated[str, Path(description="Problem type slug")]) -> JSON:
    if slug not in PROBLEM_TYPES:
        raise NotFound(f"No problem type {slug!r}. Known: {', '.join(sorted(PROBLEM_TYPES))}.")
    title, meaning = PROBLEM_TYPES[slug]
    body: dict[str, Any] = {"type": slug, "title": title, "description": meaning}
    return JSON(body)
