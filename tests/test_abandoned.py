"""Work whose client has gone is stopped: a read unit given a Cancellation is interrupted in
its running statement and refuses later ones, rolls back and frees its connection; through a
real uvicorn, a client that disconnects from a request held up in the database leaves no
statement behind (PostGIS, where a statement can be held up)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.storage.database import Cancellation, Cancelled, Database
from tests.conftest import serve

SLOW = {  # a statement that runs for minutes unless it is stopped
    "postgresql": "SELECT pg_sleep(300)",
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT count(*) FROM n WHERE i < 0",
}


def within(seconds: float, condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_cancel_stops_the_running_statement_and_frees_the_connection(
    seeded_engine: Engine,
) -> None:
    db = Database(seeded_engine)
    cancellation = Cancellation()
    outcome: list[BaseException] = []
    started = threading.Event()

    def slow_read() -> None:
        try:
            with db.read(cancellation) as unit:
                started.set()
                unit.c.execute(text(SLOW[seeded_engine.dialect.name]))
        except BaseException as e:
            outcome.append(e)

    reader = threading.Thread(target=slow_read)
    reader.start()
    assert started.wait(10)
    time.sleep(0.3)  # the statement is running
    cancellation.cancel()
    reader.join(30)
    assert not reader.is_alive(), "the statement was not stopped"
    assert len(outcome) == 1
    assert isinstance(outcome[0], Cancelled)
    with db.read() as unit:  # the pool's connections are fine
        assert unit.counts()["regions"] > 0


def test_a_cancelled_unit_runs_no_further_statement_and_a_late_one_none(
    seeded_engine: Engine,
) -> None:
    db = Database(seeded_engine)
    cancellation = Cancellation()
    with db.read(cancellation) as unit:
        assert unit.counts()["regions"] > 0
        cancellation.cancel()  # between statements: nothing runs, the next one is refused
        with pytest.raises(Cancelled):
            unit.counts()
    with pytest.raises(Cancelled):  # begun after the cancel: refused before any work
        db.read(cancellation).__enter__()
    with db.read(Cancellation()) as unit:
        assert unit.counts()["regions"] > 0


@contextmanager
def pieces_locked(engine: Engine) -> Iterator[Callable[[], int]]:
    """Every read of the pieces waits until the block ends (an ACCESS EXCLUSIVE lock on the
    table). Yields a count of the other sessions' statements waiting for a lock."""
    with engine.connect() as locker, engine.connect() as watcher:
        transaction = locker.begin()
        locker.execute(text("LOCK TABLE pieces IN ACCESS EXCLUSIVE MODE"))
        me = locker.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def waiting() -> int:
            query = text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid NOT IN (:me, pg_backend_pid())"
            )
            found = watcher.execute(query, {"me": me}).scalar_one()
            watcher.rollback()  # a fresh snapshot of the activity next time
            return int(found)

        try:
            yield waiting
        finally:
            transaction.rollback()


def _send_and_leave(url: str, path: str, leave_when: Callable[[], Any]) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode())
        leave_when()


@pytest.mark.postgis
def test_a_client_that_leaves_leaves_no_statement_behind(
    postgis_engine: Engine, tmp_path: Path
) -> None:
    """Through uvicorn: the statement of a request held up by a lock is cancelled when its
    client disconnects, while the lock is still held; then the service answers as before.
    (SQLite cannot hold a reader up in a statement that way: in WAL mode readers never wait,
    and a wait for a lock cannot be interrupted; the tests above interrupt it running.)"""
    log = tmp_path / "server.log"
    path = "/collections/control/items?limit=7&datetime=2025-01-01"
    with serve(postgis_engine, "postgis", log=log) as live:
        assert httpx.get(f"{live.url}/healthz", timeout=30).status_code == 200
        with pieces_locked(postgis_engine) as waiting:
            _send_and_leave(live.url, path, lambda: within(10, lambda: waiting() == 1))
            assert within(5, lambda: waiting() == 0), "the statement still waits for the lock"
        gone = "client gone from GET /collections/control/items"
        assert within(10, lambda: gone in log.read_text())
        answer = httpx.get(f"{live.url}{path}", timeout=30)
        assert answer.status_code == 200
        assert answer.json()["type"] == "FeatureCollection"
