"""An index of the pieces of each source by the end of their interval, over current pieces.

What a source has in force at a moment (the pieces with ``valid_from <= at`` and
``valid_until`` null or after it) is what an import asks before every map. Through the as-of
index, whose second key is ``valid_from``, that costs a scan of the source's whole history
before the moment: the import's cost per file grew with the history. Keyed by the end instead,
the pieces still open at the head of an import are a handful of index entries however long
the history is.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The predicate as each database is asked it (see 0008).
    active = "active" if op.get_bind().dialect.name == "postgresql" else "active = 1"
    op.execute(f"CREATE INDEX ix_pieces_open ON pieces (source, basis, valid_until) WHERE {active}")


def downgrade() -> None:
    op.execute("DROP INDEX ix_pieces_open")
