"""The application factory."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from sqlalchemy import Engine

from app import __version__
from app.api import problems, server, viewer
from app.api.auth import read_access
from app.api.caching import HttpCache
from app.api.middleware import (
    AllowedMethods,
    ContentSecurityPolicy,
    Cors,
    GiveBackMemory,
    HeadAsGet,
    NoCredentialsInUrl,
    SecurityHeaders,
    StopWhenClientGone,
)
from app.api.ogc import openapi
from app.api.ogc import routes as ogc
from app.api.ogc import tiles as ogc_tiles
from app.api.routes import admin, exports, meta, observations, regions, sources
from app.seed import prepare
from app.settings import Settings, get_settings
from app.storage.database import Database

DESCRIPTION = """
Who controls which ground, when, and according to whom.

Every polygon and every figure belongs to a **source** (a general staff, a ministry, an OSINT
map, a newspaper) and is kept with its date and citation. Claims conflict; the service never
picks a winner: it shows them side by side.

- Areas are geodesic, on the WGS84 ellipsoid, measured inside each region.
- GeoJSON follows RFC 7946 (`application/geo+json`, lon/lat, counter-clockwise exterior rings).
- Moments are RFC 3339; a bare date means the end of that day, UTC.
- Errors are RFC 9457 `application/problem+json`.
- Features flagged `illustrative` are schematic, not surveyed front lines.
"""

# Browsers, GDAL and QGIS ask for gzip. Level 9 (Starlette's default) spent 424 ms of CPU on a
# 100-feature page (1.6 MB) and 12 ms on an as-of answer (55 KB) here, level 4 71 ms and 1.5 ms,
# for answers 0.5 % and 1.6 % larger (nginx's default is 1: 33 ms, 12 % larger).
GZIP_LEVEL = 4


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    prepare_database: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    server.limit_malloc_arenas()
    db = Database(engine) if engine is not None else Database.from_url(settings.database_url)
    if prepare_database:
        prepare(db, settings)

    app = FastAPI(
        title="Frontline Atlas",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served from the package by app.api.viewer, so they work offline
        redoc_url=None,
        openapi_tags=[
            {"name": "regions", "description": "Regions and the claims about their ground."},
            {"name": "observations", "description": "Write, correct, retract; read history."},
            {"name": "exports", "description": "Whole datasets in one file, for research."},
            {"name": "reference", "description": "Parties and sources."},
            {"name": "service", "description": "Health, problem types."},
            {
                "name": "OGC API - Features",
                "description": "Landing page, conformance, collections and items, for GIS "
                "clients (QGIS, GDAL/OGR, OWSLib); time-aware `datetime`, CQL2 `filter`.",
            },
            {
                "name": "OGC API - Tiles",
                "description": "Mapbox Vector Tiles of `control` and `regions` on "
                "WebMercatorQuad, with the filters of the items, and TileJSON for web maps.",
            },
        ],
    )
    app.state.settings = settings
    app.state.database = db
    # Innermost first: the last added sees the request first.
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=GZIP_LEVEL)
    app.add_middleware(StopWhenClientGone)  # inside the cache: an answer from memory costs nothing
    app.add_middleware(GiveBackMemory)  # and leaves nothing to give back
    app.add_middleware(HttpCache, db=db, settings=settings)  # outside gzip: keeps it encoded
    app.add_middleware(HeadAsGet)
    app.add_middleware(AllowedMethods, routes=lambda: app.router.routes)
    app.add_middleware(NoCredentialsInUrl)
    app.add_middleware(
        Cors,
        read_origins=settings.cors_origins,
        write_origins=settings.cors_write_origins,
        public_url=settings.public_url,
    )
    app.add_middleware(SecurityHeaders, csp=content_security_policy(app, settings))
    server.redact_access_log()
    server.drop_server_banner()
    problems.install(app)
    reads = [Depends(read_access)]  # public unless REQUIRE_TOKEN_FOR_READS
    viewer.install(app)
    app.include_router(meta.router)  # /healthz and /problems open; /parties, /sources guarded
    app.include_router(ogc.about)  # no data: landing page, conformance, /api
    app.include_router(ogc.router, dependencies=reads)
    app.include_router(ogc_tiles.router, dependencies=reads)
    app.include_router(regions.router, dependencies=reads)
    app.include_router(sources.router, dependencies=reads)
    app.include_router(exports.router, dependencies=reads)
    app.include_router(observations.router)
    app.include_router(admin.router)
    openapi.declare_problems(app)
    return app


def content_security_policy(app: FastAPI, settings: Settings) -> ContentSecurityPolicy:
    """The HTML pages' policy: the inline script of the Swagger UI page at /docs allowed by
    its hash, and the base map's host (when one is set) as a source of images."""
    csp = ContentSecurityPolicy(image_hosts=viewer.basemap_hosts(settings))
    csp.allow_inline_scripts(bytes(viewer.swagger_page(app).body).decode())
    return csp
