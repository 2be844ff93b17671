"""Engines and migrations for both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, CursorResult, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Executable

from app.settings import PROJECT_ROOT

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


class UnsupportedDatabase(ValueError):
    """DATABASE_URL names a database the service does not run on."""


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; for SQLite the file's folder is created and sane pragmas are set."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, **kwargs)
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


def insert_unless_duplicate(c: Connection, statement: Executable) -> CursorResult[Any] | None:
    """Run an INSERT inside the current transaction; None when it breaks a unique constraint
    (e.g. a concurrent writer got there first), leaving the transaction usable.

    PostgreSQL needs a savepoint for that, or the error ends the transaction. SQLite must not
    take one: when the INSERT is the transaction's first write, pysqlite has not begun the
    transaction yet, and releasing the outermost SAVEPOINT would commit at once; a failed
    INSERT in SQLite undoes only itself.
    """
    try:
        if c.dialect.name == "sqlite":
            return c.execute(statement)
        with c.begin_nested():
            return c.execute(statement)
    except IntegrityError:
        return None
