"""The schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` build it on both databases.

Raw data: ``parties``, ``sources``, ``regions`` and ``observations`` (never updated in place,
except that a retraction sets ``retracted_at``/``retraction_reason`` once).
Derived data: ``pieces``, one row per (observation, region it concerns), with the clipped
polygon, its geodesic area and its validity interval; ``frontline rebuild`` recomputes it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from app.storage.types import Geometry, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def _bbox_columns() -> list[Column[float]]:
    """Bounding box columns: a portable spatial pre-filter on both databases."""
    return [
        Column(name, Float, nullable=True) for name in ("min_lon", "min_lat", "max_lon", "max_lat")
    ]


parties = Table(
    "parties",
    metadata,
    Column("code", String(16), primary_key=True),
    Column("name", Text, nullable=False),
    Column("color", String(16), nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("slug", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("account", String(16), ForeignKey("parties.code"), nullable=True),
    Column("url", Text, nullable=True),
    Column("description", Text, nullable=True),
)

regions = Table(
    "regions",
    metadata,
    Column("slug", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("country_code", String(2), nullable=False),
    Column("boundary", Geometry(), nullable=False),
    Column("area_km2", Float, nullable=False),
    *_bbox_columns(),
    Column("updated_at", UTCDateTime(), nullable=False),
    # "admin1": a region pieces are cut into; "country": the sum of its member regions.
    Column("level", String(16), nullable=False, server_default="admin1"),
    Column("parent", String(64), ForeignKey("regions.slug"), nullable=True),  # its country
    Index("ix_regions_level", "level"),
)

observations = Table(
    "observations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), ForeignKey("sources.slug"), nullable=False),
    Column("party", String(16), ForeignKey("parties.code"), nullable=True),
    Column("status", String(16), nullable=False),
    Column("basis", String(16), nullable=False),
    Column("valid_from", UTCDateTime(), nullable=False),
    Column("valid_to", UTCDateTime(), nullable=True),
    *_bbox_columns(),
    Column("reported_area_km2", Float, nullable=True),
    # The geodesic area of the drawing as the source drew it, before any clipping.
    Column("drawn_area_km2", Float, nullable=True),
    Column("reported_region", String(64), ForeignKey("regions.slug"), nullable=True),
    Column("reported_qualifier", String(16), nullable=True),
    Column("citation_url", Text, nullable=True),
    Column("citation_title", Text, nullable=True),
    Column("citation_publisher", Text, nullable=True),
    Column("citation_published_at", UTCDateTime(), nullable=True),
    Column("note", Text, nullable=True),
    Column("illustrative", Boolean, nullable=False, default=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("recorded_by", String(64), nullable=True),
    Column("supersedes", Integer, ForeignKey("observations.id"), nullable=True),
    Column("retracted_at", UTCDateTime(), nullable=True),
    Column("retraction_reason", Text, nullable=True),
    Column("content_hash", String(64), nullable=False),
    Column("geometry_hash", String(64), nullable=True),  # sha256 of the normalised WKB
    Column("idempotency_key", String(200), nullable=True),
    Column("retracted_by", String(64), nullable=True),
    Column("import_file_id", Integer, nullable=True),
    # Last, so that on SQLite no other column sits behind the polygon's overflow pages (0010).
    Column("geometry", Geometry(), nullable=True),
    # Unique: identical content is stored once, and a record has at most one correction.
    Index("uq_observations_content_hash", "content_hash", unique=True),
    Index("ix_observations_group_head", "source", "party", "status", "basis", "valid_from"),
    Index("ix_observations_idempotency_key", "idempotency_key"),
    Index("ix_observations_source_valid_from", "source", "valid_from"),
    Index("uq_observations_supersedes", "supersedes", unique=True),
)

pieces = Table(
    "pieces",
    metadata,
    Column("observation_id", Integer, ForeignKey("observations.id"), primary_key=True),
    Column("region", String(64), ForeignKey("regions.slug"), primary_key=True),
    # Denormalised from the observation, so the as-of query reads one indexed table.
    Column("source", String(64), nullable=False),
    Column("party", String(16), nullable=True),
    Column("status", String(16), nullable=False),
    Column("basis", String(16), nullable=False),
    Column("valid_from", UTCDateTime(), nullable=False),
    Column("valid_to", UTCDateTime(), nullable=True),
    # End of the validity interval: min(valid_to, next valid_from in the group); null = open.
    Column("valid_until", UTCDateTime(), nullable=True),
    # False once the observation is superseded by a correction or retracted.
    Column("active", Boolean, nullable=False, default=True),
    *_bbox_columns(),
    Column("area_km2", Float, nullable=True),
    Column("reported_area_km2", Float, nullable=True),
    Column("geometry", Geometry(), nullable=True),  # last: see observations
    Index("ix_pieces_group", "region", "party", "status", "source", "basis", "valid_from"),
    Index("ix_pieces_as_of", "region", "active", "valid_from", "valid_until"),
    # Migration 0008 adds ix_pieces_paging: (valid_from, observation_id, region in byte order)
    # WHERE active, the order the control collection pages in (see Pieces.page); 0009 adds
    # ix_pieces_open: (source, basis, valid_until) WHERE active, what a source has in force at
    # the head of an import (see Imports.ground_in_force); 0011 adds ix_pieces_in_force on
    # PostgreSQL: the validity intervals as ranges, GiST (see dialect.intervals_meeting).
)

import_files = Table(
    "import_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), ForeignKey("sources.slug"), nullable=False),
    Column("name", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("moment", UTCDateTime(), nullable=True),
    Column("imported_at", UTCDateTime(), nullable=False),
    Column("recorded_by", String(64), nullable=True),
    Column("summary", Text, nullable=True),  # JSON: what the import did with the file
    UniqueConstraint("source", "sha256", name="uq_import_files_source_sha256"),
)

# "The same map again on this date": an unchanged snapshot, without its geometry again.
confirmations = Table(
    "confirmations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("observation_id", Integer, ForeignKey("observations.id"), nullable=False),
    Column("confirmed_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("recorded_by", String(64), nullable=True),
    Column("import_file_id", Integer, ForeignKey("import_files.id"), nullable=True),
    UniqueConstraint(
        "observation_id", "confirmed_at", name="uq_confirmations_observation_id_confirmed_at"
    ),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("scope", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256; never the token
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),  # none: until revoked
    Column("last_used_at", UTCDateTime(), nullable=True),  # to the minute, see Tokens
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("token", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

region_boundaries = Table(
    "region_boundaries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("region", String(64), ForeignKey("regions.slug"), nullable=False),
    Column("boundary", Geometry(), nullable=False),
    Column("area_km2", Float, nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("replaced_at", UTCDateTime(), nullable=True),
    Column("recorded_by", String(64), nullable=True),
    Column("note", Text, nullable=True),
    Index("ix_region_boundaries_region", "region", "recorded_at"),
)

# One row: counters that every write (``version``) and every boundary change (``boundaries``)
# bumps, so that HTTP caches in every worker process know when an answer may have changed.
data_version = Table(
    "data_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
    Column("boundaries", BigInteger, nullable=False),
)

SPATIAL_COLUMNS = (
    ("regions", "boundary"),
    ("observations", "geometry"),
    ("pieces", "geometry"),
    ("region_boundaries", "boundary"),
)

# A source's own published area figures for one of its map snapshots (DeepStateMap's /areas),
# next to the geodesic area measured here of the same drawing as drawn (before any clipping),
# per fill colour. A row with ``fill`` "" says the snapshot had no published figures (404).
published_areas = Table(
    "published_areas",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), ForeignKey("sources.slug"), nullable=False),
    Column("snapshot", String(64), nullable=False),  # the source's snapshot id
    Column("moment", UTCDateTime(), nullable=False),
    Column("fill", String(32), nullable=False),  # normalised colour, "" = none published
    Column("kind", Text, nullable=True),  # the source's name for it ("occupied", ...)
    Column("published_km2", Float, nullable=True),
    Column("published_percent", Float, nullable=True),
    Column("measured_km2", Float, nullable=True),  # here, as drawn, before clipping
    Column("difference_pct", Float, nullable=True),  # (measured - published) / published
    Column("flagged", Boolean, nullable=False, default=False),  # beyond the tolerance
    Column("recorded_at", UTCDateTime(), nullable=False),
    UniqueConstraint("source", "snapshot", "fill", name="uq_published_areas_source_snapshot_fill"),
    Index("ix_published_areas_source_moment", "source", "moment"),
)
