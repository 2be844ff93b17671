"""Writes that cannot fork: the database itself refuses a second copy or a second successor.

- observations.content_hash becomes unique: identical content is stored once, also when two
  writers send it at the same moment (the second INSERT fails and answers with the first);
- observations.supersedes becomes unique: a record is corrected at most once (its chain of
  corrections cannot fork).

A database that already holds duplicates (written before this revision by concurrent writers)
cannot take the indexes; the migration says which records to look at.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNIQUE = (
    ("ix_observations_content_hash", "uq_observations_content_hash", "content_hash"),
    ("ix_observations_supersedes", "uq_observations_supersedes", "supersedes"),
)


def upgrade() -> None:
    bind = op.get_bind()
    for _old, _new, column in UNIQUE:
        twins = bind.execute(
            sa.text(
                f"SELECT {column}, COUNT(*) FROM observations WHERE {column} IS NOT NULL "
                f"GROUP BY {column} HAVING COUNT(*) > 1"
            )
        ).all()
        if twins:
            raise RuntimeError(
                f"observations has {len(twins)} values of {column} held by more than one record "
                f"(e.g. {twins[0][0]!r}), written twice by concurrent writers before revision "
                "0003; keep the lowest id of each and move its pieces, confirmations and "
                "successors onto it by hand, then run the migration again."
            )
    for old, new, column in UNIQUE:
        op.drop_index(old, table_name="observations")
        op.create_index(new, "observations", [column], unique=True)


def downgrade() -> None:
    for old, new, column in UNIQUE:
        op.drop_index(new, table_name="observations")
        op.create_index(old, "observations", [column])
