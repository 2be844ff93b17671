"""Every setting of the service, in one place, read from the environment (or a ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain.observations import MAX_VERTICES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_PATH = PROJECT_ROOT / "var" / "frontline.db"


class Settings(BaseSettings):
    """Settings; each field can be set by an environment variable of the same name, upper-cased.

    ``DATABASE_URL`` is the one most people set: ``sqlite:///path/to/file.db`` (the default,
    embedded, no server needed) or ``postgresql+psycopg://user@host:5432/dbname`` (PostGIS).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATABASE_PATH}",
        description="SQLAlchemy URL of the database: sqlite:///FILE or postgresql+psycopg://…",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / "data",
        description="Folder with regions/ (boundaries) and seed/ (parties, sources, timeline).",
    )
    auto_migrate: bool = Field(
        default=True, description="`serve` applies pending migrations before it starts."
    )
    auto_seed: bool = Field(
        default=True,
        description="`serve` loads the shipped regions and seed into an empty database.",
    )
    cors_origins: list[str] = Field(
        default=["*"],
        description="Origins allowed to read the API from a browser (map front-ends); `*` is any.",
    )
    cors_write_origins: list[str] = Field(
        default=[],
        description="Origins allowed to write (POST, PUT, DELETE) from a browser; none by "
        "default. A write whose Origin is neither listed nor the service's own is refused.",
    )
    require_token_for_reads: bool = Field(
        default=False, description="Reads need a bearer token too (any scope); writes always do."
    )
    max_body_bytes: int = Field(
        default=50 * 1024 * 1024, description="Largest request body accepted (413 beyond)."
    )
    max_vertices_per_observation: int = Field(
        default=MAX_VERTICES,
        ge=4,
        description="Most positions in one observation's geometry (422 beyond): a bound on "
        "what one write may cost every later read that returns it.",
    )
    items_default_limit: int = Field(
        default=100, ge=1, description="Features per page of /collections/{id}/items by default."
    )
    items_max_limit: int = Field(
        default=1000,
        ge=1,
        description="Most features per page; a larger `limit` is clamped to it, not refused.",
    )
    stream_bytes: int = Field(
        default=1_000_000,
        ge=0,
        description="A page of /collections/{id}/items expected to be larger than this is sent "
        "as it is encoded, a batch of features at a time, instead of built whole in memory.",
    )
    cache_max_age: int = Field(
        default=30,
        ge=0,
        description="Seconds a read may be reused (Cache-Control max-age, and the in-process "
        "cache) before it is checked again; answers pinned by a past known_at are immutable.",
    )
    cache_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Memory for encoded answers kept per worker process (0: none).",
    )
    cache_version_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How often a worker reads the data version from the database: a write made "
        "through another process is seen by this one's cache within that time.",
    )
    basemap_url: str | None = Field(
        default=None,
        description="XYZ raster tile URL ({z}/{x}/{y}) for a base map under the viewer at /map; "
        "none: the region boundaries are the base layer.",
    )
    basemap_attribution: str | None = Field(
        default=None, description="Attribution shown with the base map (required by most)."
    )
    public_url: str | None = Field(
        default=None, description="External base URL, when the service runs behind a proxy."
    )
    archive_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "archive",
        description="Where `frontline sync` keeps the raw files it downloads, one folder per "
        "feed (deepstate/, <source>/<layer>/).",
    )
    deepstate_api_url: str = Field(
        default="https://deepstatemap.live/api",
        description="Base URL of DeepStateMap's public API (`frontline sync deepstate`).",
    )
    sync_contact: str | None = Field(
        default=None,
        description="How a publisher can reach whoever runs the sync (an e-mail or URL); sent "
        "in the User-Agent of every feed request.",
    )
    sync_min_interval: float = Field(
        default=1.0, ge=0, description="Fewest seconds between two requests to a feed."
    )
    sync_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a feed request may take before it is retried."
    )
    sync_retries: int = Field(
        default=4, ge=0, description="Retries of a feed request (429, 5xx, network errors)."
    )
    sync_backoff: float = Field(
        default=2.0,
        ge=0,
        description="Seconds before a feed request's first retry; doubled "
        "for each next one (a Retry-After header is honoured).",
    )
    sync_area_tolerance_pct: float = Field(
        default=2.0,
        ge=0,
        description="Largest difference (%) between a source's published area for a snapshot "
        "and the area measured here as drawn before the snapshot is flagged.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
