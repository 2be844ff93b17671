"""Writers at the same moment: the record cannot fork.

Each scenario sends 8 requests at once (threads released together by a barrier) to a real
uvicorn with two worker processes, on SQLite and on PostGIS, and repeats the burst 20 times.
What must hold (and what the database, not the application, enforces):

| 8 concurrent requests                     | outcome                                        |
|-------------------------------------------|------------------------------------------------|
| corrections of one observation            | 1 x 201, 7 x 409, one successor                |
| POSTs with one Idempotency-Key, same body | 1 record; every answer names it                |
| POSTs with one key, different bodies      | 1 record; the others 409/422                   |
| identical POSTs without a key             | 1 record                                       |
| retractions of one observation            | 1 x 200, 7 x 409; the first reason is kept     |
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from app.domain.tokens import Scope
from app.seed import seed
from app.storage.database import Database
from app.storage.tables import idempotency_keys, observations, pieces
from tests.conftest import DATA_DIR, LiveServer, serve

CLIENTS = 8
BURSTS = 20
SQUARE = [[35.2, 51.15], [35.4, 51.15], [35.4, 51.25], [35.2, 51.25], [35.2, 51.15]]


def feature(note: str, valid_from: str = "2024-08-10") -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
        "properties": {
            "source": "frontline-atlas-illustration",
            "party": "UA",
            "status": "controlled",
            "valid_from": valid_from,
            "citation": {"title": "Race test", "publisher": "Test desk"},
            "illustrative": True,
            "note": note,
        },
    }


class Race:
    def __init__(self, live: LiveServer, token: str) -> None:
        self.live = live
        self.headers = {"Authorization": f"Bearer {token}"}
        self.pool = ThreadPoolExecutor(CLIENTS)
        self.clients = [httpx.Client(base_url=live.url, timeout=60) for _ in range(CLIENTS)]

    def close(self) -> None:
        self.pool.shutdown()
        for client in self.clients:
            client.close()

    def burst(self, send: Callable[[httpx.Client, int], httpx.Response]) -> list[httpx.Response]:
        """``send(client, i)`` for i in 0..7, all released at the same instant."""
        barrier = threading.Barrier(CLIENTS)

        def one(i: int) -> httpx.Response:
            barrier.wait()
            return send(self.clients[i], i)

        return list(self.pool.map(one, range(CLIENTS)))

    def post(self, client: httpx.Client, body: Any, **headers: str) -> httpx.Response:
        return client.post("/observations", json=body, headers={**self.headers, **headers})

    def create(self, note: str) -> int:
        r = self.post(self.clients[0], feature(note))
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def count(self, *where: Any) -> int:
        with self.live.engine.connect() as c:
            query = select(func.count()).select_from(observations).where(*where)
            return int(c.execute(query).scalar_one())


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)]
)
def race(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_databases: Any,
) -> Iterator[Race]:
    from tests.conftest import _new_engine, _require_backend

    _require_backend(request.param)
    engine: Engine = _new_engine(request.param, tmp_path_factory, pg_databases)
    db = Database(engine)
    db.upgrade()
    seed(db, DATA_DIR)
    with db.write() as unit:
        token = unit.tokens.create("racer", Scope.WRITE)
    with serve(engine, request.param, workers=2) as live:
        race = Race(live, token)
        yield race
        race.close()
    engine.dispose()


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def assert_problems(responses: list[httpx.Response], status: int) -> None:
    for r in responses:
        if r.status_code == status:
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["detail"]


def test_concurrent_corrections_make_one_chain(race: Race) -> None:
    for n in range(BURSTS):
        original = race.create(f"correct-{n}")
        replies = race.burst(
            lambda client, i, original=original, n=n: client.post(
                f"/observations/{original}/corrections",
                json=feature(f"correct-{n} by writer {i}"),
                headers=race.headers,
            )
        )
        assert statuses(replies) == {201: 1, 409: CLIENTS - 1}, [r.text for r in replies]
        assert_problems(replies, 409)
        assert race.count(observations.c.supersedes == original) == 1
        with race.live.engine.connect() as c:
            active = c.execute(
                select(func.count())
                .select_from(pieces)
                .join(observations, observations.c.id == pieces.c.observation_id)
                .where(observations.c.note.like(f"correct-{n}%"), pieces.c.active.is_(True))
            ).scalar_one()
        assert active == 1  # only the one successor's piece is in force


def test_one_idempotency_key_one_record(race: Race) -> None:
    for n in range(BURSTS):
        body = feature(f"key-same-{n}")
        replies = race.burst(
            lambda client, i, body=body, n=n: race.post(
                client, body, **{"Idempotency-Key": f"same-{n}"}
            )
        )
        assert {r.status_code for r in replies} <= {200, 201}, [r.text for r in replies]
        assert statuses(replies)[201] >= 1
        assert len({r.json()["id"] for r in replies}) == 1  # every answer names the one record
        assert race.count(observations.c.note == f"key-same-{n}") == 1


def test_one_key_with_different_bodies_writes_once(race: Race) -> None:
    for n in range(BURSTS):
        replies = race.burst(
            lambda client, i, n=n: race.post(
                client, feature(f"key-other-{n}-{i}"), **{"Idempotency-Key": f"other-{n}"}
            )
        )
        counted = statuses(replies)
        assert counted[201] == 1, [r.text for r in replies]
        assert counted[409] + counted[422] == CLIENTS - 1
        assert_problems(replies, 422)
        assert race.count(observations.c.note.like(f"key-other-{n}-%")) == 1
        with race.live.engine.connect() as c:
            stored = c.execute(
                select(idempotency_keys.c.status).where(idempotency_keys.c.key == f"other-{n}")
            ).scalar_one()
        assert stored == 201


def test_identical_posts_without_a_key_store_one_record(race: Race) -> None:
    for n in range(BURSTS):
        body = feature(f"twin-{n}")
        replies = race.burst(lambda client, i, body=body: race.post(client, body))
        assert {r.status_code for r in replies} <= {200, 201}, [r.text for r in replies]
        assert statuses(replies)[201] == 1
        assert len({r.json()["id"] for r in replies}) == 1
        assert race.count(observations.c.note == f"twin-{n}") == 1


def test_concurrent_retractions_happen_once(race: Race) -> None:
    for n in range(BURSTS):
        target = race.create(f"retract-{n}")
        replies = race.burst(
            lambda client, i, target=target: client.delete(
                f"/observations/{target}", params={"reason": f"reason {i}"}, headers=race.headers
            )
        )
        assert statuses(replies) == {200: 1, 409: CLIENTS - 1}, [r.text for r in replies]
        assert_problems(replies, 409)
        [winner] = [r.json() for r in replies if r.status_code == 200]
        with race.live.engine.connect() as c:
            reason = c.execute(
                select(observations.c.retraction_reason).where(observations.c.id == target)
            ).scalar_one()
        assert reason == winner["retraction_reason"]  # the first reason stands
