"""Published areas: a source's own area figures per map snapshot, next to what was measured here.

DeepStateMap publishes, for each snapshot, its own area per status (fill colour); the sync
stores them with the geodesic area measured here of the same drawing as drawn, and flags any
snapshot where the two differ by more than SYNC_AREA_TOLERANCE_PCT.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.storage.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_areas",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), sa.ForeignKey("sources.slug"), nullable=False),
        sa.Column("snapshot", sa.String(64), nullable=False),
        sa.Column("moment", UTCDateTime(), nullable=False),
        sa.Column("fill", sa.String(32), nullable=False),
        sa.Column("kind", sa.Text, nullable=True),
        sa.Column("published_km2", sa.Float, nullable=True),
        sa.Column("published_percent", sa.Float, nullable=True),
        sa.Column("measured_km2", sa.Float, nullable=True),
        sa.Column("difference_pct", sa.Float, nullable=True),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint(
            "source", "snapshot", "fill", name="uq_published_areas_source_snapshot_fill"
        ),
    )
    op.create_index("ix_published_areas_source_moment", "published_areas", ["source", "moment"])


def downgrade() -> None:
    op.drop_index("ix_published_areas_source_moment", table_name="published_areas")
    op.drop_table("published_areas")
