"""Every difference between SQLite and PostgreSQL that the storage layer deals with, here alone.

- Transactions: SQLite is driven in autocommit mode by pysqlite and given explicit ``BEGIN``
  statements (SQLAlchemy's recipe), so savepoints behave as on PostgreSQL; a write unit begins
  ``BEGIN IMMEDIATE``, taking SQLite's one write lock before it reads anything, so that the
  decision a write makes (is this record still current? was this key used?) and the write itself
  happen with no other writer in between. PostgreSQL writers run concurrently under READ
  COMMITTED and are ordered by row locks, advisory locks and unique indexes instead.
- Row locks (``SELECT … FOR UPDATE``) and advisory locks exist on PostgreSQL only; on SQLite
  they are no-ops because the write lock is already held.
- SQLite returns aggregates over timestamp columns as text.
- GeoJSON geometry text is PostGIS's ``ST_AsGeoJSON``; on SQLite it is encoded in Python from
  the stored WKB (:func:`app.domain.geometry.geojson_texts`), the same text.
- Moments as RFC 3339 text in SQL (vector tiles encoded by PostGIS) are PostgreSQL's
  ``to_char``; SQLite tiles are encoded in Python.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    LargeBinary,
    Row,
    case,
    cast,
    event,
    func,
    text,
    type_coerce,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement, Executable, Select

WRITE = "frontline_write"  # execution option of a connection that begins a write transaction


def configure(engine: Engine) -> None:
    """Set up a new engine's connections for the service."""
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


def insert_unless_duplicate(c: Connection, statement: Executable) -> list[Row[Any]] | None:
    """Run an INSERT inside the current transaction: the rows it returns (``RETURNING``; an
    empty list without), or None when it breaks a unique constraint (e.g. a concurrent writer
    got there first), leaving the transaction usable.

    On PostgreSQL an INSERT that meets a row another transaction is still writing waits for that
    transaction, then fails (it committed) or succeeds (it rolled back): the database decides."""
    try:
        with c.begin_nested():  # the rows are read before SQLite may release the savepoint
            result = c.execute(statement)
            return list(result.all()) if result.returns_rows else []
    except IntegrityError:
        return None


def for_update(query: Select[Any]) -> Select[Any]:
    """Lock the rows read until the transaction ends (PostgreSQL; SQLite ignores it, its write
    lock being held already)."""
    return query.with_for_update()


def lock_key(c: Connection, key: str) -> None:
    """Hold a lock named ``key`` until the transaction ends: writers of the same key wait for
    each other (PostgreSQL advisory lock; SQLite serialises writers by itself)."""
    if c.dialect.name == "postgresql":
        c.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


def as_datetime(value: Any) -> dt.datetime | None:
    """A timestamp aggregate (MIN, MAX) as an aware datetime: SQLite gives text."""
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def has_spatial_sql(c: Connection) -> bool:
    """Whether the database tests geometries itself (PostGIS); SQLite stores WKB only."""
    return c.dialect.name == "postgresql"


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


def geojson_or_wkb(c: Connection, column: Any, precision: int = 6) -> Any:
    """A geometry column as the database can give it for GeoJSON out: PostGIS writes the
    geometry's GeoJSON text itself (``ST_AsGeoJSON``, exterior rings counter-clockwise as RFC
    7946 wants, coordinates to ``precision`` decimals); SQLite gives the stored WKB as bytes,
    for :func:`app.domain.geometry.geojson_texts` (:func:`has_spatial_sql` tells which)."""
    if has_spatial_sql(c):
        return func.ST_AsGeoJSON(func.ST_ForcePolygonCCW(column), precision)
    return type_coerce(column, LargeBinary)


def in_byte_order(c: Connection, column: Any) -> Any:
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
