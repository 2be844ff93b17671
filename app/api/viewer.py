"""What a person sees in a browser: the map viewer (``/map``, and ``/`` for a browser), and the
API documentation (``/docs``, ``/redoc``), all served from the package: no CDN, so they work
offline. The JavaScript libraries are vendored under ``static/vendor/<package>-<version>/``
with their licences (see the README there)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.api.routing import CheckedRoute
from app.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static"
VENDOR = {
    "swagger": "vendor/swagger-ui-dist-5.35.0",
    "redoc": "vendor/redoc-2.5.4",
    "maplibre": "vendor/maplibre-gl-5.17.0",
    "leaflet": "vendor/leaflet-1.9.4",
}
FAVICON = f"{STATIC_URL}/viewer/favicon.svg"

router = APIRouter(include_in_schema=False, route_class=CheckedRoute)


def asset(package: str, name: str) -> str:
    """The URL of a vendored file, e.g. ``asset("maplibre", "maplibre-gl.js")``."""
    return f"{STATIC_URL}/{VENDOR[package]}/{name}"


def viewer_config(settings: Settings) -> dict[str, str | None]:
    """What the page's script needs from the settings."""
    return {
        "basemap_url": settings.basemap_url,
        "basemap_attribution": settings.basemap_attribution,
    }


def basemap_hosts(settings: Settings) -> list[str]:
    """Where the base map's tiles come from (``scheme://host``), for the pages' CSP."""
    if not settings.basemap_url:
        return []
    parts = urlsplit(settings.basemap_url.replace("{", "").replace("}", ""))
    return [f"{parts.scheme}://{parts.netloc}"] if parts.scheme and parts.netloc else []


def viewer_page(request: Request) -> HTMLResponse:
    """The map viewer, with the settings it needs inlined as JSON."""
    template = (STATIC_DIR / "viewer" / "map.html").read_text(encoding="utf-8")
    config = json.dumps(viewer_config(request.app.state.settings)).replace("<", "\\u003c")
    document = (
        template.replace("{{config}}", config)
        .replace("{{maplibre_js}}", asset("maplibre", "maplibre-gl.js"))
        .replace("{{maplibre_css}}", asset("maplibre", "maplibre-gl.css"))
        .replace("{{static}}", STATIC_URL)
    )
    return HTMLResponse(document)


@router.get("/map")
def map_page(request: Request) -> HTMLResponse:
    return viewer_page(request)


def swagger_page(app: FastAPI) -> HTMLResponse:
    """The Swagger UI page (its inline start-up script is allowed by hash in the CSP)."""
    return get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title}: API documentation",
        swagger_js_url=asset("swagger", "swagger-ui-bundle.js"),
        swagger_css_url=asset("swagger", "swagger-ui.css"),
        swagger_favicon_url=FAVICON,
    )


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return swagger_page(request.app)


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title}: API reference",
        redoc_js_url=asset("redoc", "redoc.standalone.js"),
        redoc_favicon_url=FAVICON,
        with_google_fonts=False,
    )


def install(app: FastAPI) -> None:
    """The pages and ``/static`` (vendored libraries, the viewer's script and style)."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
