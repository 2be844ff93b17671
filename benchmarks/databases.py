"""Databases for the benchmarks: throwaway PostGIS databases and the reference data an import
needs (regions, the two parties, the generated archive's source)."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.storage.database import Database

SOURCE = "deepstate-bench"


@contextmanager
def throwaway_postgis() -> Iterator[Any]:
    """Yields a factory of fresh PostGIS database URLs; every one is dropped at the end. The
    server is ``FRONTLINE_TEST_POSTGRES_URL``, as for the tests (default: the local one)."""
    with warnings.catch_warnings():  # the test fixtures' imports warn about test clients
        warnings.simplefilter("ignore")
        from tests.conftest import PostgresDatabases

    databases = PostgresDatabases()
    try:
        yield databases.create
    finally:
        databases.drop_all()


def admin_url() -> str:
    """The PostgreSQL server the tests use (``FRONTLINE_TEST_POSTGRES_URL``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tests.conftest import ADMIN_URL
    return ADMIN_URL


def named_postgis(name: str, fresh: bool = False) -> str:
    """The URL of the database ``name`` on that server, created if missing (and emptied first
    when ``fresh``): for a benchmark that keeps its imported data between runs."""
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            if fresh:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            exists = c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists.first() is None:
                c.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(admin_url()).set(database=name).render_as_string(hide_password=False)


def prepare(db: Database) -> None:
    """Migrate, and load what an import of the generated archive needs."""
    from app.domain.model import Party, Source, SourceKind
    from app.seed import load_regions
    from app.settings import PROJECT_ROOT

    db.upgrade()
    with db.write("bench") as unit:
        load_regions(unit, PROJECT_ROOT / "data" / "regions" / "boundaries.geojson")
        unit.reference.save_party(Party("UA", "Ukraine", "#0057b7"))
        unit.reference.save_party(Party("RU", "Russia", "#d52b1e"))
        unit.reference.save_source(
            Source(SOURCE, "DeepStateMap (generated)", SourceKind.OSINT, None)
        )


def size_bytes(url: str) -> int:
    """The database's size on disk (for SQLite, after its WAL is checkpointed into it)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path)) as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return Path(path).stat().st_size
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    finally:
        engine.dispose()


def dead_tuples(url: str, tables: tuple[str, ...] = ("pieces", "observations")) -> dict[str, Any]:
    """PostGIS: live, dead and updated rows per table (``pg_stat_user_tables``; the dead ones
    counted on the pages by ``pgstattuple`` where the server has it), {} on SQLite.
    Read after the writers have closed their connections, which flushes their statistics."""
    if url.startswith("sqlite"):
        return {}
    engine = create_engine(url)
    query = text(
        "SELECT relname, n_live_tup, n_dead_tup, n_tup_upd, autovacuum_count"
        " FROM pg_stat_user_tables WHERE relname = ANY(:tables)"
    )
    counted: dict[str, int] = {}
    try:
        with engine.connect() as c:
            rows = c.execute(query, {"tables": list(tables)}).all()
            # The statistics count dead rows a second or so late (a backend reports at most once
            # a second), so a count that lands after the closing VACUUM shows rows it removed.
            # pgstattuple reads the pages themselves: the dead rows that are there.
            try:
                c.execute(text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))
                for table in tables:
                    found = c.execute(
                        text("SELECT dead_tuple_count FROM pgstattuple(:t)"), {"t": table}
                    )
                    counted[table] = int(found.scalar_one())
                c.commit()
            except Exception:  # no contrib on this server: the statistics, then
                c.rollback()
    finally:
        engine.dispose()
    return {
        r.relname: {
            "live": r.n_live_tup,
            "dead": counted.get(r.relname, r.n_dead_tup),
            "updated": r.n_tup_upd,
            "autovacuums": r.autovacuum_count,
        }
        for r in rows
    }
