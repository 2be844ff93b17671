"""The database: engines, migrations, and the units of work that are the only way in.

``Database(engine)`` hands out :class:`~app.storage.unit.UnitOfWork`s: ``db.read()`` for a
consistent read, ``db.write(recorded_by)`` for one all-or-nothing write transaction. Dialect
differences live in :mod:`app.storage.dialect`. A read given a :class:`Cancellation` can be
stopped from another thread when whoever asked for it is gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from app.settings import PROJECT_ROOT
from app.storage import dialect
from app.storage.tables import confirmations, data_version, import_files, observations, pieces
from app.storage.unit import UnitOfWork

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# What an import writes, file after file (see Database.after_bulk_write).
BULK_WRITTEN = (observations, pieces, confirmations, import_files, data_version)
CANCELLATION = "frontline_cancellation"  # execution option: the Cancellation of a read unit
log = logging.getLogger("app.storage")


class UnsupportedDatabase(ValueError):
    """DATABASE_URL names a database the service does not run on."""


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; for SQLite the file's folder is created and sane pragmas are set."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        dialect.configure(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        # Per worker process: up to 10 connections, so 8 workers stay within PostgreSQL's
        # default max_connections of 100 (a request holds one, a write a second).
        kwargs = {"pool_size": 5, "max_overflow": 5, **kwargs}
        engine = create_engine(url, **kwargs)
        dialect.configure(engine)  # connections idle for a while are tested before use
        return engine
    raise UnsupportedDatabase(
        f"Unsupported DATABASE_URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DBNAME"
    )


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every pending migration (the same ones on SQLite and PostGIS)."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


class Cancelled(Exception):
    """The unit's work was stopped by :meth:`Cancellation.cancel`: nobody waits for it."""


class Cancellation:
    """Stops the read units it is given to (``db.read(cancellation)``) from another thread,
    e.g. when the client of a request has gone: the statement each unit is running is
    interrupted (:func:`app.storage.dialect.interrupter`), every later statement of theirs
    raises :class:`Cancelled` before it reaches the database, and so does a unit begun after
    the cancel. Each unit then rolls back and its connection goes back to the pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, Callable[[], None]] = {}
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:  # a unit cannot end (and free its connection) while it is interrupted
            if self.cancelled:
                return
            self.cancelled = True
            for interrupt in self._running.values():
                try:
                    interrupt()
                except Exception:  # the statement ends by itself; later ones are refused
                    log.warning("could not interrupt a statement", exc_info=True)

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled("the work was cancelled: nobody is waiting for it")

    @contextmanager
    def guarding(self, connection: Connection) -> Iterator[None]:
        with self._lock:
            self.check()
            self._running[id(connection)] = dialect.interrupter(connection)
        connection.execution_options(**{CANCELLATION: self})
        try:
            yield
        except Exception as e:
            if not self.cancelled or isinstance(e, Cancelled):
                raise
            raise Cancelled("the work was cancelled: nobody is waiting for it") from e
        finally:
            with self._lock:
                del self._running[id(connection)]


def _refuse_cancelled(connection: Connection, *_: Any) -> None:
    """Before each statement: none for a unit whose work was cancelled."""
    cancellation = connection.get_execution_options().get(CANCELLATION)
    if cancellation is not None:
        cancellation.check()


class Database:
    """The one door to storage: units of work over an engine nobody else holds."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._on_commit: list[Callable[[], None]] = []
        self._read_options = dialect.read_options(engine)
        if not event.contains(engine, "before_cursor_execute", _refuse_cancelled):
            event.listen(engine, "before_cursor_execute", _refuse_cancelled)

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every write unit of this process commits."""
        self._on_commit.append(listener)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(create_db_engine(url, **kwargs))

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL with any password hidden, for messages."""
        return self._engine.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self, cancellation: Cancellation | None = None) -> Iterator[UnitOfWork]:
        """A unit for reading: on SQLite one transaction, so every read in it sees the same
        data; on PostgreSQL each statement sees what was committed when it began (no
        transaction: :func:`app.storage.dialect.read_options`). With a
        ``cancellation``, its ``cancel()`` stops the unit's work (it raises
        :class:`Cancelled`). The unit takes a connection from the pool at its first statement,
        in the thread that runs it, not when the block begins, and may be ended before the
        block does (:meth:`UnitOfWork.end`), in the thread that used it: a request's unit is
        made on the event loop and used, and ended, in the route's worker thread
        (:mod:`app.api.deps`)."""
        if cancellation is not None:
            cancellation.check()
        with ExitStack() as opened:

            def connect() -> Connection:
                connection = opened.enter_context(self._engine.connect())
                if self._read_options:
                    connection.execution_options(**self._read_options)
                opened.enter_context(connection.begin())  # PostgreSQL: no BEGIN is sent
                if cancellation is not None:
                    opened.enter_context(cancellation.guarding(connection))
                return connection

            yield UnitOfWork(connect, end=opened.close)

    @contextmanager
    def write(
        self, recorded_by: str | None = None, *, dry_run: bool = False, changes_answers: bool = True
    ) -> Iterator[UnitOfWork]:
        """A unit for writing: everything done in it commits together when the block ends, or
        nothing does (any exception; always, with ``dry_run``). Derived pieces are brought up to
        date before the commit, and the data version is bumped unless the write is bookkeeping
        that no answer shows (``changes_answers=False``)."""
        options = {dialect.WRITE: True}
        with self._engine.connect().execution_options(**options) as connection:
            transaction = connection.begin()
            try:
                unit = UnitOfWork(connection, recorded_by)
                yield unit
                unit.regions.flush()
                unit.derived.flush()
                if changes_answers and not dry_run:
                    unit.bump_data_version()
            except BaseException:
                transaction.rollback()
                raise
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
                for listener in self._on_commit:
                    listener()

    def after_bulk_write(self) -> None:
        """After many write units (an import): PostgreSQL vacuums and analyses the tables they
        wrote, so that the rows of the pieces they ended leave no dead tuples and the planner's
        estimates follow the new data; SQLite analyses the whole file (some 25 ms for 1,000
        days of the whole theatre, holding off writers that long, never readers).
        ``PRAGMA optimize``, which it ran before, analyses again only after a tenfold growth:
        statistics taken at 2,000 pieces sent the area series of 11,600 through the wrong
        index (18 ms for its query where 10 ms do)."""
        if self.dialect == "postgresql":
            tables = ", ".join(t.name for t in BULK_WRITTEN)
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql(f"VACUUM (ANALYZE) {tables}")
            return
        with self._engine.connect() as c:
            c.exec_driver_sql("ANALYZE")
            c.commit()

    def upgrade(self, revision: str = "head") -> None:
        upgrade(self._engine, revision)

    def current_revision(self) -> str | None:
        return current_revision(self._engine)

    def head_revision(self) -> str | None:
        return head_revision(self._engine)

    def dispose(self) -> None:
        self._engine.dispose()
