"""HTTP caching: ETags from the data version, 304s, Cache-Control, and the in-process cache,
on both databases, through the ASGI app and across two server processes."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import httpx
import pytest
import shapely.affinity
from shapely.geometry import mapping, shape
from sqlalchemy import Engine, select, text

from app.api.caching import Entry, Store
from app.domain.timeutil import isoformat, now
from app.domain.tokens import Scope
from app.seed import seed
from app.storage.database import Database
from app.storage.tables import observations, region_boundaries
from tests.conftest import DATA_DIR, serve
from tests.test_write_api import Api, feature, make_api

CONTROL = "/regions/kursk/control"
AT = {"at": "2025-04-26"}


@pytest.fixture
def api(empty_engine: Engine) -> Iterator[Api]:
    yield from make_api(empty_engine)


def test_a_read_carries_an_etag_and_a_304_saves_the_answer(api: Api) -> None:
    first = api.client.get(CONTROL, params=AT)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert first.headers["cache-control"] == "public, max-age=30"
    assert "Accept" in first.headers["vary"]
    again = api.client.get(CONTROL, params=AT, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = api.client.get(CONTROL, params={"at": "2024-08-31"}, headers={"If-None-Match": etag})
    assert other.status_code == 200  # another question, another tag
    assert other.headers["etag"] != etag


def test_a_write_changes_the_etag_and_the_answer(api: Api) -> None:
    before = api.client.get(CONTROL, params={"at": "2024-08-15"})
    assert api.post(feature(valid_from="2024-08-12", note="new")).status_code == 201
    after = api.client.get(
        CONTROL, params={"at": "2024-08-15"}, headers={"If-None-Match": before.headers["etag"]}
    )
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert "new" not in before.text
    assert "new" in {f["properties"]["note"] for f in after.json()["features"]}


def backdate(engine: Engine, by: dt.timedelta) -> None:
    """Make the seeded record older, as a database that has served for a while is."""
    with engine.begin() as c:
        for table in (observations, region_boundaries):
            for row_id, recorded_at in c.execute(select(table.c.id, table.c.recorded_at)).all():
                moved = table.update().where(table.c.id == row_id)
                c.execute(moved.values(recorded_at=recorded_at - by))


def test_an_answer_pinned_by_a_past_known_at_is_immutable(api: Api) -> None:
    backdate(api.repo.engine, dt.timedelta(hours=2))
    pinned = {**AT, "known_at": isoformat(now() - dt.timedelta(hours=1))}
    first = api.client.get(CONTROL, params=pinned)
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert api.post(feature(valid_from="2024-08-12")).status_code == 201
    again = api.client.get(CONTROL, params=pinned, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304  # later writes cannot change what was known then
    about_now = api.client.get(CONTROL, params={"known_at": pinned["known_at"]})
    assert about_now.headers["cache-control"] == "public, max-age=30"  # 'at' is now: it moves
    recent = api.client.get(CONTROL, params={**AT, "known_at": isoformat(now())})
    assert recent.headers["cache-control"] == "public, max-age=30"  # not settled yet
    region = api.client.get("/regions/kursk").json()
    shifted = shapely.affinity.translate(shape(region["geometry"]), xoff=0.001)
    resurveyed = {"type": "Feature", "geometry": mapping(shifted), "properties": {}}
    moved = api.client.put("/regions/kursk", json=resurveyed, headers=api.admin)
    assert moved.status_code == 200, moved.text
    assert moved.json()["properties"]["changed"]
    after = api.client.get(CONTROL, params=pinned, headers={"If-None-Match": first.headers["etag"]})
    assert after.status_code == 200  # areas are re-measured against the new boundary
    assert after.headers["etag"] != first.headers["etag"]


def test_errors_and_health_are_not_cached(api: Api) -> None:
    missing = api.client.get("/regions/atlantis/control")
    assert missing.status_code == 404
    assert "etag" not in missing.headers
    assert "etag" not in api.client.get("/healthz").headers


def test_a_repeated_read_is_answered_from_memory(api: Api) -> None:
    """Proved by changing a table behind the service's back (no data version bump): the
    cached answer still comes back until a real write moves the version."""
    first = api.client.get("/sources")
    with api.repo.engine.begin() as c:
        c.execute(text("UPDATE sources SET name = 'Renamed behind the back'"))
    assert api.client.get("/sources").json() == first.json()
    assert api.post(feature(valid_from="2024-08-11")).status_code == 201
    assert "Renamed behind the back" in api.client.get("/sources").text


def test_the_cache_keeps_answers_up_to_a_quarter_of_its_bound() -> None:
    """A 1,000-feature page is the answer a map asks for again and again: it is kept, unless it
    alone would take more than a quarter of the memory (then it would flush the rest)."""
    store = Store(max_bytes=40_000)
    kept = Entry(200, [], b"x" * 8_000, float("inf"))  # a fifth of the bound, with its overhead
    store.put("kept", kept)
    assert store.get("kept") is kept
    too_large = Entry(200, [], b"x" * 10_000, float("inf"))
    store.put("too large", too_large)
    assert store.get("too large") is None
    assert store.get("kept") is kept  # and nothing was flushed for it


def test_worker_processes_agree_after_a_write_elsewhere(empty_engine: Engine) -> None:
    """Two uvicorn workers; a write through one of them: every worker's answer changes within
    CACHE_VERSION_SECONDS, because the data version lives in the database."""
    db = Database(empty_engine)
    seed(db, DATA_DIR)
    with db.write() as unit:
        token = unit.tokens.create("desk", Scope.WRITE)
    backend = "postgis" if empty_engine.dialect.name == "postgresql" else "sqlite"
    with (
        serve(empty_engine, backend, workers=2, cache_version_seconds=0.2) as live,
        httpx.Client(base_url=live.url, timeout=30) as client,
    ):
        tags = {client.get(CONTROL, params={"at": "2024-08-15"}).headers["etag"] for _ in range(8)}
        assert len(tags) == 1  # both workers name the same answer the same way
        posted = client.post(
            "/observations",
            json=feature(valid_from="2024-08-12", note="elsewhere"),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert posted.status_code == 201
        time.sleep(0.5)
        answers = [client.get(CONTROL, params={"at": "2024-08-15"}) for _ in range(8)]
        assert {r.headers["etag"] for r in answers}.isdisjoint(tags)
        assert all("elsewhere" in r.text for r in answers)
