"""Alembic environment: one set of migrations for SQLite and PostGIS.

The URL comes from the engine handed over by ``app.storage.database.upgrade`` or, when run as
``alembic upgrade head``, from ``DATABASE_URL`` via the settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app.storage.tables import metadata

config = context.config


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from app.settings import get_settings
        from app.storage.database import create_db_engine

        engine = create_db_engine(get_settings().database_url)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # SQLite's way to change a table's shape (make a new one, copy, drop, rename):
            # foreign keys off, which it only takes outside a transaction, then checked whole
            # before the commit (https://www.sqlite.org/lang_altertable.html#otheralter).
            _foreign_keys(connection, on=False)
        try:
            with connection.begin():
                context.configure(
                    connection=connection,
                    target_metadata=metadata,
                    render_as_batch=sqlite,
                    compare_type=True,
                )
                migrations = context.get_context()
                start = migrations.get_current_revision()
                context.run_migrations()
                if sqlite and migrations.get_current_revision() != start:  # only after work
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                _foreign_keys(connection, on=True)


def _foreign_keys(connection: Connection, on: bool) -> None:
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported; run against a database.")
run_migrations()
