"""An index in the order the control collection pages in, over current pieces only.

A page of ``/collections/control/items`` is ordered by (valid_from, observation_id, region in
byte order) over the active pieces; without an index in that order every page sorts the whole
table, a cost that grows with the history. With it the page's keys come from the index and the
count from an index-only scan. PostgreSQL sorts text in byte order with ``COLLATE "C"``; SQLite
does by default.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The predicate as each database is asked it (SQLAlchemy writes ``active = 1`` on SQLite),
    # so that the planner sees the query's WHERE implies the index's.
    if op.get_bind().dialect.name == "postgresql":
        region, active = 'region COLLATE "C"', "active"
    else:
        region, active = "region", "active = 1"
    op.execute(
        f"CREATE INDEX ix_pieces_paging ON pieces (valid_from, observation_id, {region}) "
        f"WHERE {active}"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_pieces_paging")
