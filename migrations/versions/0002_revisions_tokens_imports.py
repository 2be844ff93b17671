"""Revisions, tokens and imports: what writing through the API and bulk imports need.

- observations: geometry_hash (finds unchanged maps), idempotency_key, retracted_by,
  import_file_id (which archive file it came from);
- confirmations: "the same map again on this date", without storing the geometry again;
- import_files: each file imported once per source (resumable, atomic per file);
- tokens: bearer tokens, stored as SHA-256 hashes only;
- idempotency_keys: the answer given to a write with an Idempotency-Key header;
- region_boundaries: every boundary a region has had, the current one included.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.storage.types import Geometry, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"

    op.create_table(
        "import_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), sa.ForeignKey("sources.slug"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("moment", UTCDateTime(), nullable=True),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.UniqueConstraint("source", "sha256", name="uq_import_files_source_sha256"),
    )
    with op.batch_alter_table("observations") as batch:
        batch.add_column(sa.Column("geometry_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("retracted_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("import_file_id", sa.Integer, nullable=True))
    op.create_index(
        "ix_observations_group_head",
        "observations",
        ["source", "party", "status", "basis", "valid_from"],
    )
    op.create_index("ix_observations_idempotency_key", "observations", ["idempotency_key"])

    op.create_table(
        "confirmations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("observation_id", sa.Integer, sa.ForeignKey("observations.id"), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=True),
        sa.Column("import_file_id", sa.Integer, sa.ForeignKey("import_files.id"), nullable=True),
        sa.UniqueConstraint(
            "observation_id", "confirmed_at", name="uq_confirmations_observation_id_confirmed_at"
        ),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "region_boundaries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("region", sa.String(64), sa.ForeignKey("regions.slug"), nullable=False),
        sa.Column("boundary", Geometry(), nullable=False),
        sa.Column("area_km2", sa.Float, nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("replaced_at", UTCDateTime(), nullable=True),
        sa.Column("recorded_by", sa.String(64), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_region_boundaries_region", "region_boundaries", ["region", "recorded_at"])
    # The boundaries in place now are the first version of each region's history.
    op.execute(
        "INSERT INTO region_boundaries (region, boundary, area_km2, recorded_at, note) "
        "SELECT slug, boundary, area_km2, updated_at, 'boundary in place before history was kept' "
        "FROM regions"
    )
    if postgres:
        op.create_index(
            "ix_region_boundaries_boundary_gist",
            "region_boundaries",
            ["boundary"],
            postgresql_using="gist",
        )


def downgrade() -> None:
    op.drop_table("region_boundaries")
    op.drop_table("idempotency_keys")
    op.drop_table("tokens")
    op.drop_table("confirmations")
    op.drop_index("ix_observations_idempotency_key", "observations")
    op.drop_index("ix_observations_group_head", "observations")
    with op.batch_alter_table("observations") as batch:
        batch.drop_column("import_file_id")
        batch.drop_column("retracted_by")
        batch.drop_column("idempotency_key")
        batch.drop_column("geometry_hash")
    op.drop_table("import_files")
