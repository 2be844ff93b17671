"""Initial schema: parties, sources, regions, observations and their per-region pieces.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.storage.types import Geometry, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _bbox() -> list[sa.Column[float]]:
    return [
        sa.Column(n, sa.Float, nullable=True) for n in ("min_lon", "min_lat", "max_lon", "max_lat")
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    op.create_table(
        "parties",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("color", sa.String(16), nullable=False),
    )
    op.create_table(
        "sources",
        sa.Column("slug", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account", sa.String(16), sa.ForeignKey("parties.code"), nullable=True),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
    )
    op.create_table(
        "regions",
        sa.Column("slug", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.Column("country_code", sa.String(2), nullable=False),
        sa.Column("boundary", Geometry(), nullable=False),
        sa.Column("area_km2", sa.Float, nullable=False),
        *_bbox(),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "observations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), sa.ForeignKey("sources.slug"), nullable=False),
        sa.Column("party", sa.String(16), sa.ForeignKey("parties.code"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("valid_to", UTCDateTime(), nullable=True),
        sa.Column("geometry", Geometry(), nullable=True),
        *_bbox(),
        sa.Column("reported_area_km2", sa.Float, nullable=True),
        sa.Column("reported_region", sa.String(64), sa.ForeignKey("regions.slug"), nullable=True),
        sa.Column("reported_qualifier", sa.String(16), nullable=True),
        sa.Column("citation_url", sa.Text, nullable=True),
        sa.Column("citation_title", sa.Text, nullable=True),
        sa.Column("citation_publisher", sa.Text, nullable=True),
        sa.Column("citation_published_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("illustrative", sa.Boolean, nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=True),
        sa.Column("supersedes", sa.Integer, sa.ForeignKey("observations.id"), nullable=True),
        sa.Column("retracted_at", UTCDateTime(), nullable=True),
        sa.Column("retraction_reason", sa.Text, nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_observations_content_hash", "observations", ["content_hash"])
    op.create_index("ix_observations_source_valid_from", "observations", ["source", "valid_from"])
    op.create_index("ix_observations_supersedes", "observations", ["supersedes"])
    op.create_table(
        "pieces",
        sa.Column("observation_id", sa.Integer, sa.ForeignKey("observations.id"), primary_key=True),
        sa.Column("region", sa.String(64), sa.ForeignKey("regions.slug"), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("party", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("valid_to", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("geometry", Geometry(), nullable=True),
        *_bbox(),
        sa.Column("area_km2", sa.Float, nullable=True),
        sa.Column("reported_area_km2", sa.Float, nullable=True),
    )
    op.create_index(
        "ix_pieces_group", "pieces", ["region", "party", "status", "source", "basis", "valid_from"]
    )
    op.create_index("ix_pieces_as_of", "pieces", ["region", "active", "valid_from", "valid_until"])

    if postgres:
        for table, column in (
            ("regions", "boundary"),
            ("observations", "geometry"),
            ("pieces", "geometry"),
        ):
            op.create_index(f"ix_{table}_{column}_gist", table, [column], postgresql_using="gist")


def downgrade() -> None:
    op.drop_table("pieces")
    op.drop_table("observations")
    op.drop_table("regions")
    op.drop_table("sources")
    op.drop_table("parties")
