"""Every difference between SQLite and PostgreSQL that the storage layer deals with, here alone.

- Transactions: SQLite is driven in autocommit mode by pysqlite and given explicit ``BEGIN``
  statements (SQLAlchemy's recipe), so savepoints behave as on PostgreSQL; a write unit begins
  ``BEGIN IMMEDIATE``, taking SQLite's one write lock before it reads anything, so that the
  decision a write makes (is this record still current? was this key used?) and the write itself
  happen with no other writer in between. PostgreSQL writers run concurrently under READ
  COMMITTED and are ordered by row locks, advisory locks and unique indexes instead.
- Read units: on SQLite one deferred transaction, one snapshot for all its statements; on
  PostgreSQL no transaction at all (:func:`read_options`), each statement seeing what was
  committed when it began, as it did under READ COMMITTED, without the round trips of
  ``BEGIN`` and ``COMMIT``.
- Row locks (``SELECT … FOR UPDATE``) and advisory locks exist on PostgreSQL only; on SQLite
  they are no-ops because the write lock is already held.
- SQLite returns aggregates over timestamp columns as text.
- GeoJSON geometry text is PostGIS's ``ST_AsGeoJSON``; on SQLite it is encoded in Python from
  the stored WKB (:func:`app.domain.geometry.geojson_texts`), the same text.
- Moments as RFC 3339 text in SQL (vector tiles encoded by PostGIS) are PostgreSQL's
  ``to_char``; SQLite tiles are encoded in Python.
- Which validity intervals meet a moment or a window: on PostgreSQL through a GiST index of
  their ranges (migration 0011), on SQLite by the as-of index alone.
- Stopping a running statement from another thread: PostgreSQL takes a cancel request (over a
  connection of its own), SQLite ``interrupt()``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import weakref
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    LargeBinary,
    Row,
    Table,
    case,
    cast,
    column,
    event,
    func,
    literal_column,
    select,
    table,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.sql import ColumnElement, Select

WRITE = "frontline_write"  # execution option of a connection that begins a write transaction


# A pooled PostgreSQL connection unused for this long is tested (a round trip) before use.
IDLE_PING_SECONDS = 1.0


def configure(engine: Engine) -> None:
    """Set up a new engine's connections for the service."""
    if engine.dialect.name == "postgresql":
        ping_when_idle(engine, IDLE_PING_SECONDS)
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN: see _sqlite_begin
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def read_options(engine: Engine) -> dict[str, Any]:
    """The execution options of a read unit's connection. On PostgreSQL, ``AUTOCOMMIT``: under
    READ COMMITTED (the default, which read units ran under) a transaction gives a reader
    nothing, every statement taking a snapshot of its own, but costs two round trips, ``BEGIN``
    before the first statement and ``COMMIT`` after the last: half of the statements of an
    as-of answer. What a reader needs to see as of one moment it reads in one statement (e.g.
    the boundaries with their version, :attr:`app.storage.regions.Regions.boundaries`). The
    pool gives the connection back to writers in a transaction again. SQLite: none (a deferred
    ``BEGIN``, which costs no round trip and holds one snapshot for the whole unit)."""
    return {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql" else {}


def ping_when_idle(engine: Engine, seconds: float) -> None:
    """Test a pooled connection before it is handed out only if it has been back in the pool
    for ``seconds`` or more: one that the server or the network dropped meanwhile (a restart,
    an idle timeout) is replaced instead of failing the request that gets it. SQLAlchemy's
    ``pool_pre_ping`` tests every checkout, a round trip and some 0.15 ms of Python before
    every request's first statement, when under load a connection comes back within
    milliseconds. A connection dropped within ``seconds`` of its last use fails the statement
    that finds it so; SQLAlchemy then replaces every connection of the pool older than that."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("returned_at", -math.inf) < seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as e:
            if engine.dialect.is_disconnect(e, dbapi_connection, None):
                raise DisconnectionError(f"a pooled connection was dropped: {e}") from e
            raise


def interrupter(c: Connection) -> Callable[[], None]:
    """A function that stops the statement ``c`` is running, callable from any thread; the
    statement fails (PostgreSQL ``QueryCanceled``, SQLite "interrupted") and the transaction
    can be rolled back. Between statements it does nothing (PostgreSQL ignores a cancel request
    that finds the connection idle, and SQLite one that finds no statement running).
    ``cancel_safe`` returns once the server has passed the request on, so the connection is
    not handed to anyone else while a cancel meant for this unit is in flight."""
    raw = c.connection.dbapi_connection
    if c.dialect.name == "postgresql":
        return lambda: raw.cancel_safe(timeout=10)  # type: ignore[union-attr]
    return raw.interrupt  # type: ignore[union-attr,no-any-return]


def intervals_meeting(
    c: Connection | Engine,
    valid_from: ColumnElement[Any],
    valid_until: ColumnElement[Any],
    start: dt.datetime | ColumnElement[dt.datetime] | None,
    end: dt.datetime | ColumnElement[dt.datetime] | None,
) -> list[ColumnElement[bool]]:
    """On PostgreSQL, ``[valid_from, valid_until] && [start, end]`` as ranges, which the GiST
    index of migration 0011 answers: the few intervals that meet a moment are found through it
    and the planner, which has statistics on the ranges, expects a few rows. By the plain
    comparisons alone (which stay, as the exact test: these closed ranges hold a little more
    than the half-open intervals), the as-of query read every earlier interval of the region
    and was expected to return hundreds of rows, so it hash-joined a scan of every
    observation: 1.3 ms where 0.3 ms do, growing with the history. SQLite: nothing to add.

    The bounds ``'[]'`` are written into the SQL, not bound: a statement psycopg prepares
    (from its fifth run on a connection) may then get a generic plan, which matches the
    index's expression only with them constant. Planning the as-of statement anew each time
    (the custom plans PostgreSQL kept choosing while the generic one missed the index) cost
    0.3 ms of its 0.8."""
    if c.dialect.name != "postgresql":
        return []
    moment = postgresql.TIMESTAMP(timezone=True)
    closed: ColumnElement[str] = literal_column("'[]'")  # in the SQL, not a parameter
    asked = func.tstzrange(cast(start, moment), cast(end, moment), closed)
    return [func.tstzrange(valid_from, valid_until, closed).op("&&")(asked)]


def insert_unless_duplicate(
    c: Connection, table: Table, values: dict[str, Any], *returning: ColumnElement[Any]
) -> Row[Any] | None:
    """INSERT one row unless it breaks a unique constraint (e.g. a concurrent writer got there
    first): the row it returns (``returning``, by default the primary key), or None for a
    duplicate, the transaction going on. One statement, ``ON CONFLICT DO NOTHING RETURNING`` on
    both databases (no savepoint, no error to recover from).

    On PostgreSQL an INSERT that meets a row another transaction is still writing waits for that
    transaction, then does nothing (it committed) or inserts (it rolled back): the database
    decides."""
    statement = _insert_or_nothing(c.dialect.name, table, returning or tuple(table.primary_key))
    return c.execute(statement, values).first()


@cache
def _insert_or_nothing(dialect: str, table: Table, returning: tuple[Any, ...]) -> Any:
    """Built once per table (building a statement costs more than running it)."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return insert.on_conflict_do_nothing().returning(*returning)


def for_update(query: Select[Any]) -> Select[Any]:
    """Lock the rows read until the transaction ends (PostgreSQL; SQLite ignores it, its write
    lock being held already)."""
    return query.with_for_update()


def lock_keys(c: Connection, keys: list[str]) -> None:
    """Hold a lock named by each of ``keys`` until the transaction ends: writers of the same key
    wait for each other (PostgreSQL advisory locks, taken in one statement and in the order of
    their hashes, so that two writers never wait on each other; SQLite serialises writers by
    itself)."""
    if c.dialect.name == "postgresql" and keys:
        c.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(h)) FROM"
                " (SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) AS k"
                " ORDER BY h) AS ordered"
            ),
            {"keys": keys},
        )


def as_datetime(value: Any) -> dt.datetime | None:
    """A timestamp aggregate (MIN, MAX) as an aware datetime: SQLite gives text."""
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def has_spatial_sql(c: Connection | Engine) -> bool:
    """Whether the database tests geometries itself (PostGIS); SQLite stores WKB only."""
    return c.dialect.name == "postgresql"


SPAN_EPOCH = dt.datetime(2000, 1, 1, 12, tzinfo=dt.UTC)  # julianday() 2451545, as 0012 counts
SPAN_WINDOW = dt.timedelta(days=31)  # the longest window read through the R*Tree
_spans = table(
    "pieces_span", *(column(n) for n in ("id", "t0", "t1", "lon0", "lon1", "lat0", "lat1"))
)
_has_spans: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def spans_meeting(
    c: Connection,
    start: dt.datetime | None,
    end: dt.datetime | None,
    box: tuple[float, float, float, float] | None,
) -> list[ColumnElement[bool]]:
    """On SQLite, the current pieces whose interval meets ``[start, end]`` and whose bounding
    box meets ``box``, found through the R*Tree of migration 0012 (a superset: the caller keeps
    the exact tests): without it, SQLite walks the paging index from the start of the history.
    PostgreSQL (the GiST indexes of the ranges and the polygons), or an SQLite without the
    R*Tree module: nothing to add. Only for a window of at most :data:`SPAN_WINDOW`: a longer
    one (or none) is met by much of the history, which the paging index reads in order and
    stops at the page's end, where the R*Tree's answer would be sorted whole first (items over
    the whole history: 127 ms that way, 207 through the R*Tree)."""
    if c.dialect.name != "sqlite" or start is None or end is None or end - start > SPAN_WINDOW:
        return []
    if c.engine not in _has_spans:
        found = c.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'pieces_span'")
        _has_spans[c.engine] = found.first() is not None
    if not _has_spans[c.engine]:
        return []

    def days(moment: dt.datetime) -> float:
        return (moment - SPAN_EPOCH).total_seconds() / 86400

    meets = [_spans.c.t0 <= days(end), _spans.c.t1 >= days(start)]
    if box is not None:
        min_lon, min_lat, max_lon, max_lat = box
        meets += [
            _spans.c.lon0 <= max_lon,
            _spans.c.lon1 >= min_lon,
            _spans.c.lat0 <= max_lat,
            _spans.c.lat1 >= min_lat,
        ]
    return [literal_column("pieces.rowid").in_(select(_spans.c.id).where(*meets))]


def intersects_box(
    c: Connection, column: Any, box: tuple[float, float, float, float]
) -> list[ColumnElement[bool]]:
    """The exact test that a geometry column meets a lon/lat box, where the database can make
    it (PostGIS: ``&&`` on the GiST index, then ``ST_Intersects``); none on SQLite, where the
    bounding-box columns are the cut and the caller tests the polygons."""
    if not has_spatial_sql(c):
        return []
    envelope = func.ST_MakeEnvelope(*box, 4326)
    return [column.op("&&")(envelope), func.ST_Intersects(column, envelope)]


def geojson_or_wkb(c: Connection | Engine, column: Any, precision: int = 6) -> Any:
    """A geometry column as the database can give it for GeoJSON out: PostGIS writes the
    geometry's GeoJSON text itself (``ST_AsGeoJSON``, exterior rings counter-clockwise as RFC
    7946 wants, coordinates to ``precision`` decimals); SQLite gives the stored WKB as bytes,
    for :func:`app.domain.geometry.geojson_texts` (:func:`has_spatial_sql` tells which)."""
    if has_spatial_sql(c):
        return func.ST_AsGeoJSON(func.ST_ForcePolygonCCW(column), precision)
    return type_coerce(column, LargeBinary)


def in_byte_order(c: Connection | Engine, column: Any) -> Any:
    """A text column to sort by code points, as Python and SQLite do (PostgreSQL otherwise
    sorts by the database's locale)."""
    return column.collate("C") if c.dialect.name == "postgresql" else column


def rfc3339(moment: Any) -> ColumnElement[str]:
    """A timestamptz as :func:`app.domain.timeutil.isoformat` writes it (PostgreSQL): UTC, a
    ``Z``, whole seconds unless there is a fraction; NULL stays NULL."""
    utc = func.timezone("UTC", moment)
    fraction = case(
        (
            cast(func.date_part("microseconds", moment), BigInteger) % 1000000 != 0,
            func.to_char(utc, ".US"),
        ),
        else_="",
    )
    return func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS').concat(fraction).concat("Z")
