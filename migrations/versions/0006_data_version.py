"""The data version: a counter every write bumps, so that caches know when an answer changed.

- ``data_version.version``: bumped by every committed write unit (any table);
- ``data_version.boundaries``: bumped when a region boundary changes, the one write that changes
  answers pinned by ``known_at`` (areas are measured against the boundaries in force now).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "data_version",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("boundaries", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "version": 1, "boundaries": 1}])


def downgrade() -> None:
    op.drop_table("data_version")
