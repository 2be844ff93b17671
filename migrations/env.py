"""Alembic environment: one set of migrations for SQLite and PostGIS.

The URL comes from the engine handed over by ``app.storage.database.upgrade`` or, when run as
``alembic upgrade head``, from ``DATABASE_URL`` via the settings.
"""

from __future__ import annotations

from alembic import context

from app.storage.tables import metadata

config = context.config


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from app.settings import get_settings
        from app.storage.database import create_db_engine

        engine = create_db_engine(get_settings().database_url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported; run against a database.")
run_migrations()
