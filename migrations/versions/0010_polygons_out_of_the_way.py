"""Polygons out of the way of the other columns: last in their row on SQLite, out of line
first on PostgreSQL.

SQLite stores a row's columns one after the other and spills what does not fit on the row's
page onto a chain of overflow pages, which it can only follow from the start. A polygon
(observations: 64 KB on average in a whole-theatre history; pieces: 18 KB) placed before
other columns pushed those columns onto the end of that chain: reading a record's citation,
its as-drawn area or a piece's bounding box or area meant reading the whole polygon first,
page by page. Donetsk's area series on 1,000 days read 804 such records in 45 ms, 14 ms with
the polygons last. There the tables are rebuilt with the same columns, keys and indexes,
polygon last.

PostgreSQL moves large values out of line (TOAST), but PostGIS declares its geometry type
``STORAGE MAIN``: keep inline, move out only as a last resort. So a row with a large polygon
first had every other text longer than a TOAST pointer moved out of line, one by one (a
record's note, citation title and URL, its hashes), and only then the polygon: reading the
note of 1,812 records touched 5,488 pages instead of 89 (14 ms against 0.9). The polygons
are now ``STORAGE EXTERNAL`` (out of line first, uncompressed: coordinates hardly compress),
and the tables are rewritten (``CLUSTER`` on their keys) so the rows already stored are laid
out the same way.

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


def _out_of_line_first(table: str, key: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE {table} ALTER COLUMN geometry SET STORAGE EXTERNAL")
    op.execute(f"CLUSTER {table} USING {key}")  # rewritten: each row toasted anew


def upgrade() -> None:
    _reorder("observations", "geometry")
    _reorder("pieces", "geometry")
    _out_of_line_first("observations", "pk_observations")
    _out_of_line_first("pieces", "pk_pieces")
    # statistics: SQLite's went with the dropped tables; PostgreSQL's, for the rewritten ones
    op.execute("ANALYZE observations")
    op.execute("ANALYZE pieces")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("observations", "pieces"):
            op.execute(f"ALTER TABLE {table} ALTER COLUMN geometry SET STORAGE MAIN")
    # on SQLite the order of columns changes no answer: nothing to undo
