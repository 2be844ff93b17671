"""On SQLite, each polygon is the last column of its row.

SQLite stores a row's columns one after the other and spills what does not fit on the row's
page onto a chain of overflow pages, which it can only follow from the start. A polygon
(observations: 64 KB on average in a whole-theatre history; pieces: 18 KB) placed before
other columns pushed those columns onto the end of that chain: reading a record's citation,
its as-drawn area or a piece's bounding box or area meant reading the whole polygon first,
page by page. Donetsk's area series on 1,000 days read 804 such records in 45 ms, 12 ms with
the polygons last. The tables are rebuilt with the same columns, keys and indexes, polygon
last; PostgreSQL keeps large values out of line (TOAST) and is left as it is.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Partial indexes are written as in 0008 and 0009: batch mode's copy of a table does not
# carry an index's WHERE, so these are dropped before and made again after.
PARTIAL = {
    "pieces": {
        "ix_pieces_paging": "(valid_from, observation_id, region)",
        "ix_pieces_open": "(source, basis, valid_until)",
    }
}


def _columns(table: str) -> list[str]:
    return [c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)]


def _reorder(table: str, last: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    partial = PARTIAL.get(table, {})
    for name in partial:
        op.execute(f"DROP INDEX {name}")
    columns = _columns(table)
    order = [c for c in columns if c != last] + [last]
    with op.batch_alter_table(table, recreate="always", partial_reordering=[tuple(order)]):
        pass
    for name, keys in partial.items():
        op.execute(f"CREATE INDEX {name} ON {table} {keys} WHERE active = 1")


def upgrade() -> None:
    _reorder("observations", "geometry")
    _reorder("pieces", "geometry")
    if op.get_bind().dialect.name == "sqlite":  # a dropped table's statistics go with it
        op.execute("ANALYZE observations")
        op.execute("ANALYZE pieces")


def downgrade() -> None:
    pass  # the order of columns changes no answer: nothing to undo
