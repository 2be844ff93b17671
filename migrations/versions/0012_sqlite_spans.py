"""On SQLite, an R*Tree of the current pieces' validity intervals and bounding boxes.

"What was in force at T, across the whole theatre, inside this box" (a vector tile; a page of
``/collections/control/items`` with ``datetime`` and ``bbox``) had SQLite walk the paging index
from the start of the history up to T and test every piece's interval and box: 8 ms for a z6
tile at 1,000 days, growing with the history. SQLite has no range type to index (PostgreSQL's
GiST index of migration 0011 answers it there); its R*Tree module, part of the SQLite that
Python ships, indexes boxes in several dimensions. ``pieces_span`` holds one box per current
piece: the interval in days since 2000-01-01 12:00 UTC (``julianday() - 2451545``; an open end
far in the future) and the piece's bounding box (the whole world for a piece without a
polygon). The R*Tree stores 32-bit floats rounded outwards, so it finds a few pieces more than
those that meet, never fewer; the exact tests stay in the query. Triggers keep it in step with
``pieces`` (an insert, any change of the interval, the box or ``active``, a delete), whatever
writes it. Keyed by the rowid of ``pieces``: a later migration that rebuilds ``pieces`` must
fill it again (``fill()``).

Where the SQLite build lacks the R*Tree module, nothing is created and the queries read
without it (``app.storage.dialect.spans_meeting``). PostgreSQL: nothing to do.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The box of a piece's row (``r``: NEW in a trigger, pieces in fill()), in the R*Tree's columns.
_DAYS = "julianday({r}.{c}) - 2451545.0"
_OPEN_END = "1.0e7"  # days after 2000: an interval without an end


def _box(r: str) -> str:
    days_from = _DAYS.format(r=r, c="valid_from")
    days_until = f"coalesce({_DAYS.format(r=r, c='valid_until')}, {_OPEN_END})"
    bbox = (
        f"coalesce({r}.min_lon, -180.0), coalesce({r}.max_lon, 180.0), "
        f"coalesce({r}.min_lat, -90.0), coalesce({r}.max_lat, 90.0)"
    )
    return f"{r}.rowid, {days_from}, {days_until}, {bbox}"


def has_rtree() -> bool:
    options = op.get_bind().exec_driver_sql("PRAGMA compile_options").scalars()
    return "ENABLE_RTREE" in set(options)


def fill() -> None:
    """Every current piece's box, afresh."""
    op.execute("DELETE FROM pieces_span")
    op.execute(f"INSERT INTO pieces_span SELECT {_box('pieces')} FROM pieces WHERE active = 1")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite" or not has_rtree():
        return
    op.execute("CREATE VIRTUAL TABLE pieces_span USING rtree(id, t0, t1, lon0, lon1, lat0, lat1)")
    op.execute(
        "CREATE TRIGGER pieces_span_insert AFTER INSERT ON pieces WHEN NEW.active = 1 "
        f"BEGIN INSERT INTO pieces_span VALUES ({_box('NEW')}); END"
    )
    op.execute(
        "CREATE TRIGGER pieces_span_update AFTER UPDATE OF valid_from, valid_until, active, "
        "min_lon, min_lat, max_lon, max_lat ON pieces "
        "BEGIN DELETE FROM pieces_span WHERE id = OLD.rowid; "
        f"INSERT INTO pieces_span SELECT {_box('NEW')} WHERE NEW.active = 1; END"
    )
    op.execute(
        "CREATE TRIGGER pieces_span_delete AFTER DELETE ON pieces "
        "BEGIN DELETE FROM pieces_span WHERE id = OLD.rowid; END"
    )
    fill()


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS pieces_span_{trigger}")
    op.execute("DROP TABLE IF EXISTS pieces_span")
