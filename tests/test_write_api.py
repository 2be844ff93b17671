"""Writing through the API: tokens, observations, bad input, corrections, retractions, known_at.

Each test gets its own seeded database (SQLite file and PostGIS), because each one writes.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.utils import get_flat_params
from fastapi.params import Query
from fastapi.testclient import TestClient
from shapely.geometry import box, shape
from sqlalchemy import Engine

from app.api.app import create_app
from app.api.ogc.collections import COLLECTIONS
from app.api.routing import route_table
from app.domain import geometry as geo
from app.domain.tokens import Scope
from app.seed import seed
from app.settings import Settings
from app.storage.published import PublishedArea, SnapshotAreas
from tests.conftest import DATA_DIR
from tests.store import Store

PROBLEM = "application/problem+json"
SUDZHA_BOX = [[35.2, 51.15], [35.4, 51.15], [35.4, 51.25], [35.2, 51.25], [35.2, 51.15]]
BOX_KM2 = geo.geodesic_area_km2(box(35.2, 51.15, 35.4, 51.25))


def feature(**props: Any) -> dict[str, Any]:
    properties = {
        "source": "frontline-atlas-illustration",
        "party": "UA",
        "status": "controlled",
        "valid_from": "2024-08-10",  # before the seed's first illustration (27 Aug)
        "citation": {"title": "Test map", "publisher": "Test desk"},
        "illustrative": True,
    }
    geometry = props.pop("geometry", {"type": "Polygon", "coordinates": [SUDZHA_BOX]})
    properties.update(props)
    return {"type": "Feature", "geometry": geometry, "properties": properties}


class Api:
    def __init__(self, client: TestClient, repo: Store, write: str, admin: str) -> None:
        self.client, self.repo = client, repo
        self.write = {"Authorization": f"Bearer {write}"}
        self.admin = {"Authorization": f"Bearer {admin}"}

    def post(self, body: Any, **kw: Any) -> Any:
        headers = {**self.write, **kw.pop("headers", {})}
        return self.client.post("/observations", json=body, headers=headers, **kw)

    def control(self, at: str = "2024-08-15", **params: Any) -> list[dict[str, Any]]:
        params = {"at": at, "source": "frontline-atlas-illustration", **params}
        r = self.client.get("/regions/kursk/control", params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["features"])


def make_api(engine: Engine, **settings: Any) -> Iterator[Api]:
    repo = Store(engine)
    seed(repo.db, DATA_DIR)
    with repo.writer() as unit:
        write = unit.tokens.create("desk", Scope.WRITE)
        admin = unit.tokens.create("chief", Scope.ADMIN)
    app = create_app(Settings(database_url=str(engine.url), **settings), engine=engine)
    with TestClient(app) as client:
        yield Api(client, repo, write, admin)


@pytest.fixture
def api(empty_engine: Engine) -> Iterator[Api]:
    yield from make_api(empty_engine)


# --- tokens ------------------------------------------------------------------------------------


def test_writes_need_a_token(api: Api) -> None:
    r = api.client.post("/observations", json=feature())
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "frontline tokens create" in r.json()["detail"]
    r = api.client.post("/observations", json=feature(), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert "unknown or has been revoked" in r.json()["detail"]


def test_a_write_token_is_not_an_admin_token(api: Api) -> None:
    source = {"slug": "deepstate", "name": "DeepStateMap", "kind": "osint"}
    r = api.client.post("/sources", json=source, headers=api.write)
    assert r.status_code == 403
    assert "needs 'admin'" in r.json()["detail"]


def test_a_revoked_token_stops_working(api: Api) -> None:
    assert api.post(feature()).status_code == 201
    with api.repo.writer() as unit:
        unit.tokens.revoke("desk")
    assert api.post(feature(valid_from="2024-09-16")).status_code == 401


def test_only_a_hash_of_a_token_is_stored(api: Api) -> None:
    token = api.write["Authorization"].removeprefix("Bearer ")
    with api.repo.engine.connect() as c:
        stored = [row[0] for row in c.exec_driver_sql("SELECT token_hash FROM tokens")]
    assert token not in stored
    assert len(stored) == 2


# --- writing -----------------------------------------------------------------------------------


def test_post_one_observation(api: Api) -> None:
    r = api.post(feature())
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == body["url"]
    assert body["created"] is True
    assert body["areas_km2"] == {"kursk": pytest.approx(BOX_KM2, abs=0.001)}
    record = api.client.get(r.headers["location"]).json()
    assert record["id"] == body["id"]
    assert record["properties"]["recorded_by"] == "desk"
    assert record["properties"]["current"] is True
    assert shape(record["geometry"]).equals(box(35.2, 51.15, 35.4, 51.25))
    [shown] = api.control()
    assert shown["properties"]["observation_id"] == body["id"]


def test_post_a_collection_in_one_transaction_and_resubmit(api: Api) -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            feature(),
            feature(valid_from="2024-10-01", reported_area_km2=5.0, reported_region="kursk"),
        ],
    }
    first = api.post(collection)
    assert first.status_code == 201
    ids = [o["id"] for o in first.json()["observations"]]
    counts = api.repo.counts()
    again = api.post(collection)  # identical content: no duplicate
    assert again.status_code == 200
    assert [o["id"] for o in again.json()["observations"]] == ids
    assert [o["created"] for o in again.json()["observations"]] == [False, False]
    assert api.repo.counts() == counts


def test_idempotency_key_replays_the_first_answer(api: Api) -> None:
    headers = {"Idempotency-Key": "req-1"}
    first = api.post(feature(), headers=headers)
    second = api.post(feature(), headers=headers)
    assert second.status_code == first.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    other = api.post(feature(valid_from="2024-09-16"), headers=headers)
    assert other.status_code == 422
    assert "used before for a different request" in other.json()["detail"]


def bowtie() -> dict[str, Any]:
    ring = [[35.2, 51.15], [35.4, 51.25], [35.4, 51.15], [35.2, 51.25], [35.2, 51.15]]
    return {"type": "Polygon", "coordinates": [ring]}


BAD_INPUTS: list[tuple[str, Any, int, str]] = [
    (
        "not a feature",
        {"type": "Point", "coordinates": [35, 51]},
        422,
        "expected a GeoJSON Feature",
    ),
    (
        "point",
        feature(geometry={"type": "Point", "coordinates": [35.3, 51.2]}),
        422,
        "must be a Polygon or a MultiPolygon",
    ),
    (
        "out of range",
        feature(
            geometry={
                "type": "Polygon",
                "coordinates": [[[35.2, 151.1], [35.4, 151.1], [35.4, 151.2], [35.2, 151.1]]],
            }
        ),
        422,
        "out of range",
    ),
    (
        "swapped",
        feature(
            geometry={
                "type": "Polygon",
                "coordinates": [[[51.15, 135.2], [51.15, 135.4], [51.25, 135.4], [51.15, 135.2]]],
            }
        ),
        422,
        "latitude and longitude are swapped",
    ),
    (
        "unclosed",
        feature(geometry={"type": "Polygon", "coordinates": [SUDZHA_BOX[:-1]]}),
        422,
        "is not closed",
    ),
    (
        "too short",
        feature(
            geometry={
                "type": "Polygon",
                "coordinates": [[[35.2, 51.15], [35.4, 51.15], [35.2, 51.15]]],
            }
        ),
        422,
        "needs at least 4",
    ),
    ("self-intersecting", feature(geometry=bowtie()), 422, "Self-intersection["),
    (
        "nowhere",
        feature(
            geometry={
                "type": "Polygon",
                "coordinates": [[[2.2, 48.8], [2.4, 48.8], [2.4, 48.9], [2.2, 48.8]]],
            }
        ),
        422,
        "touches no known region",
    ),
    ("unknown source", feature(source="tass"), 422, "Known sources: frontline-atlas-illustration"),
    ("unknown party", feature(party="XX"), 422, "Known parties: RU, UA"),
    ("future", feature(valid_from="2999-01-01"), 422, "is in the future"),
    (
        "backwards",
        feature(valid_from="2024-08-10", valid_to="2024-08-01"),
        422,
        "must be after valid_from",
    ),
    ("bad status", feature(status="held"), 422, "status"),
    (
        "one bad in a batch",
        {
            "type": "FeatureCollection",
            "features": [feature(), {**feature(party="XX"), "id": "second"}],
        },
        422,
        'feature 1 (id "second")',
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "needle"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_is_explained_and_writes_nothing(
    api: Api, body: Any, status: int, needle: str
) -> None:
    before = api.repo.counts()
    r = api.post(copy.deepcopy(body))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert needle in r.json()["detail"]
    assert api.repo.counts() == before


def test_malformed_json_says_where(api: Api) -> None:
    before = api.repo.counts()
    r = api.client.post(
        "/observations",
        content=b'{"type": "Feature",\n "geometry": null,, }',
        headers={**api.write, "Content-Type": "application/geo+json"},
    )
    assert r.status_code == 400
    assert "line 2" in r.json()["detail"]
    assert api.repo.counts() == before


def test_a_body_over_the_limit_is_413(empty_engine: Engine) -> None:
    for small in make_api(empty_engine, max_body_bytes=2_000):
        before = small.repo.counts()
        big = {"type": "FeatureCollection", "features": [feature()] * 20}
        r = small.post(big)
        assert r.status_code == 413
        assert "2,000 bytes" in r.json()["detail"]
        assert small.repo.counts() == before


def test_repair_on_request_says_what_it_did(api: Api) -> None:
    r = api.post(feature(geometry=bowtie()), params={"repair": "true"})
    assert r.status_code == 201, r.text
    [warning] = r.json()["warnings"]
    assert "repaired an invalid polygon (Self-intersection" in warning
    assert r.json()["areas_km2"]["kursk"] > 0


# --- corrections, retractions, history, known_at -----------------------------------------------


def test_correction_supersedes_and_the_old_stays_readable(api: Api) -> None:
    old = api.post(feature()).json()["id"]
    small = [[35.2, 51.15], [35.3, 51.15], [35.3, 51.25], [35.2, 51.25], [35.2, 51.15]]
    r = api.client.post(
        f"/observations/{old}/corrections",
        json=feature(geometry={"type": "Polygon", "coordinates": [small]}),
        headers=api.write,
    )
    assert r.status_code == 201, r.text
    new = r.json()["id"]
    assert r.json()["supersedes"] == old
    [shown] = api.control()
    assert shown["properties"]["observation_id"] == new
    old_record = api.client.get(f"/observations/{old}").json()["properties"]
    assert old_record["superseded_by"] == new
    assert old_record["current"] is False
    again = api.client.post(f"/observations/{old}/corrections", json=feature(), headers=api.write)
    assert again.status_code == 409
    assert f"correct or retract {new} instead" in again.json()["detail"]
    history = api.client.get(f"/observations/{old}/history").json()
    assert [(e["event"], e["observation_id"], e["by"]) for e in history["events"]] == [
        ("recorded", old, "desk"),
        ("corrected", new, "desk"),
    ]
    assert history["current"] == new


def test_retraction_keeps_the_record_and_hides_it(api: Api) -> None:
    oid = api.post(feature()).json()["id"]
    no_reason = api.client.delete(f"/observations/{oid}", headers=api.write)
    assert no_reason.status_code == 400
    assert "needs a reason" in no_reason.json()["detail"]
    r = api.client.delete(f"/observations/{oid}", params={"reason": "wrong map"}, headers=api.write)
    assert r.status_code == 200
    assert r.json()["retraction_reason"] == "wrong map"
    assert api.control() == []  # and the source's newer word (27 Aug) is untouched:
    assert len(api.control(at="2024-08-28")) == 1
    record = api.client.get(f"/observations/{oid}").json()["properties"]
    assert record["retracted_by"] == "desk"
    assert record["current"] is False
    again = api.client.delete(f"/observations/{oid}", params={"reason": "x"}, headers=api.write)
    assert again.status_code == 409
    events = api.client.get(f"/observations/{oid}/history").json()["events"]
    assert [e["event"] for e in events] == ["recorded", "retracted"]
    assert events[1]["reason"] == "wrong map"


def test_known_at_replays_the_record_as_it_stood(api: Api) -> None:
    before_anything = time_now()
    first = api.post(feature()).json()["id"]
    after_first = time_now()
    small = [[35.2, 51.15], [35.3, 51.15], [35.3, 51.25], [35.2, 51.25], [35.2, 51.15]]
    corrected = api.client.post(
        f"/observations/{first}/corrections",
        json=feature(geometry={"type": "Polygon", "coordinates": [small]}),
        headers=api.write,
    ).json()["id"]
    after_correction = time_now()
    api.client.delete(f"/observations/{corrected}", params={"reason": "x"}, headers=api.write)

    def shown(known_at: str | None) -> list[int]:
        params = {"known_at": known_at} if known_at else {}
        return [f["properties"]["observation_id"] for f in api.control(**params)]

    assert shown(None) == []
    assert shown(before_anything) == []
    assert shown(after_first) == [first]
    assert shown(after_correction) == [corrected]
    area = api.client.get(
        "/regions/kursk/area",
        params={"party": "UA", "source": "frontline-atlas-illustration", "known_at": after_first},
    ).json()
    ids = [p["observation_id"] for p in area["series"][0]["points"]]
    assert first in ids
    assert corrected not in ids
    assert area["known_at"] == after_first
    gone = api.client.get(f"/observations/{first}", params={"known_at": before_anything})
    assert gone.status_code == 404
    then = api.client.get(f"/observations/{corrected}", params={"known_at": after_correction})
    assert then.json()["properties"]["retracted_at"] is None


# --- admin -------------------------------------------------------------------------------------


def test_admin_adds_sources_and_parties(api: Api) -> None:
    source = {"slug": "deepstate", "name": "DeepStateMap", "kind": "osint", "account": None}
    r = api.client.post("/sources", json=source, headers=api.admin)
    assert r.status_code == 201
    assert api.client.get(r.headers["location"]).json()["name"] == "DeepStateMap"
    assert api.client.post("/sources", json=source, headers=api.admin).status_code == 409
    party = {"code": "KP", "name": "North Korea", "color": "#024fa2"}
    r = api.client.post("/parties", json=party, headers=api.admin)
    assert r.status_code == 201
    assert api.post(feature(source="deepstate", party="KP")).status_code == 201
    bad = api.client.post("/sources", json={**source, "slug": "Deep State"}, headers=api.admin)
    assert bad.status_code == 422


def test_replacing_a_boundary_rebuilds_areas_and_keeps_history(api: Api) -> None:
    api.post(feature())
    before = time_now()
    half = [[35.2, 50.9], [35.3, 50.9], [35.3, 51.6], [35.2, 51.6], [35.2, 50.9]]  # silly
    r = api.client.put(
        "/regions/kursk",
        json={
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [half]},
        },
        headers=api.admin,
    )
    assert r.status_code == 200, r.text
    new_area = geo.geodesic_area_km2(shape({"type": "Polygon", "coordinates": [half]}))
    assert r.json()["properties"]["area_km2"] == pytest.approx(new_area, abs=0.001)
    [piece] = api.control()
    assert piece["properties"]["area_km2"] == pytest.approx(BOX_KM2 / 2, rel=0.01)
    old = api.client.get("/regions/kursk", params={"known_at": before}).json()
    assert old["properties"]["area_km2"] == pytest.approx(30_117, abs=1)
    assert api.client.put("/regions/kursk", json={}, headers=api.write).status_code == 403
    # Kursk is still Russia's, and Russia's ground is its members' again.
    kursk = api.client.get("/regions/kursk").json()["properties"]
    assert kursk["parent"] == "russia"
    members = sum(
        api.client.get(f"/regions/{m}").json()["properties"]["area_km2"]
        for m in ("belgorod", "bryansk", "kursk")
    )
    russia = api.client.get("/regions/russia").json()["properties"]
    assert russia["area_km2"] == pytest.approx(members, rel=1e-4)
    was = api.client.get("/regions/russia", params={"known_at": before}).json()["properties"]
    assert was["area_km2"] == pytest.approx(93_081, abs=1)
    # A country's boundary is not set by hand.
    r = api.client.put(
        "/regions/russia",
        json={
            "type": "Feature",
            "properties": {},
            "geometry": box(30, 50, 31, 51).__geo_interface__,
        },
        headers=api.admin,
    )
    assert r.status_code == 422
    assert "PUT a member region instead" in r.json()["detail"]


def time_now() -> str:
    from app.domain.timeutil import isoformat, now

    time.sleep(0.01)
    value = isoformat(now())
    time.sleep(0.01)
    assert value is not None
    return value


def test_reads_can_require_a_token(empty_engine: Engine) -> None:
    for locked in make_api(empty_engine, require_token_for_reads=True):
        assert locked.client.get("/regions").status_code == 401
        assert locked.client.get("/regions", headers=locked.write).status_code == 200
        assert locked.client.get("/healthz").status_code == 200  # probes stay open


# The routes that answer without a token when reads need one, and why: none of them answers
# with data. Every other GET route must be a 401 without a token (see the test below).
OPEN_WHEN_READS_NEED_A_TOKEN = {
    "/healthz": "liveness probes carry no token",
    "/problems/{slug}": "what a problem type means: linked from every error, 401s included",
    "/openapi.json": "the API definition: what to send, which operations need a token",
    "/api": "the same, as OpenAPI 3.0",
    "/docs": "the page that renders the API definition",
    "/redoc": "the same, another renderer",
    "/": "the landing page (links, name, version); a browser gets the viewer's page",
    "/conformance": "the list of the standards' conformance classes implemented",
    "/map": "the viewer's page: script and style, no data; its reads ask for the token",
    "/static/{path}": "the package's scripts, styles and vendored libraries",
}
SUDZHA_TILE = {"tileMatrixSetId": "WebMercatorQuad", "z": "6", "x": "38", "y": "21"}
REQUIRED_QUERY = {"party": "UA", "from": "2024-08-31", "to": "2025-04-26", "at": "2025-04-26"}


def _get_routes(app: Any) -> list[tuple[str, Any]]:
    """Every path template the app answers GET on (included routers, mounts), with its route."""
    found = []
    for route in route_table(app.routes):
        methods = getattr(route, "methods", None)
        if methods is None or "GET" in methods:  # a mount (static files) answers GET
            found.append((route.path_format, route))
    return found


def _required_query(route: Any) -> dict[str, str]:
    """Values for the query parameters the route cannot do without."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return {}
    names = [
        f.alias
        for f in get_flat_params(dependant)
        if isinstance(f.field_info, Query) and f.field_info.is_required()
    ]
    return {name: REQUIRED_QUERY[name] for name in names}


def _targets(template: str, client: TestClient, token: dict[str, str], snapshot: str) -> list[str]:
    """Real paths for a template: every collection, a seeded region and country, source, party,
    observation, snapshot, problem type, a tile over Sudzha, a feature of each collection. A
    new path parameter is a KeyError here until it is given a value."""
    values: dict[str, list[str]] = {
        "collectionId": list(COLLECTIONS),
        "observation_id": ["1"],
        "code": ["UA"],
        "snapshot": [snapshot],
        "path": ["viewer/viewer.js"],
        **{name: [value] for name, value in SUDZHA_TILE.items()},
    }
    if template.startswith("/regions/"):
        values["slug"] = ["kursk", "russia"]
    elif template.startswith("/sources/"):
        values["slug"] = ["ua-general-staff"]
    elif template.startswith("/problems/"):
        values["slug"] = ["unauthorized"]
    paths = [template]
    for name in re.findall(r"{(\w+)}", template):
        if name == "featureId":
            continue
        paths = [p.replace(f"{{{name}}}", v) for p in paths for v in values[name]]
    if "{featureId}" in template:
        with_feature = []
        for path in paths:
            items = path.removesuffix("/{featureId}")
            page = client.get(items, params={"limit": 1}, headers=token).json()
            with_feature.append(path.replace("{featureId}", str(page["features"][0]["id"])))
        paths = with_feature
    return paths


def test_every_read_needs_the_token_when_reads_do(empty_engine: Engine) -> None:
    """Every GET route of the app, with real path values on the seeded database: a 401 without
    a token, and a 200 with one, but for the few service routes that hold no data. A route
    added later is walked too; one that forgets ``read_access`` fails here."""
    for api in make_api(empty_engine, require_token_for_reads=True):
        snapshot = "1745625600"
        api.repo.save_published(
            SnapshotAreas(
                "ua-general-staff",
                snapshot,
                dt.datetime(2025, 4, 26, tzinfo=dt.UTC),
                (PublishedArea("#a52714", "occupied", 30.0, None, 29.9, 0.3, False),),
            )
        )
        routes = _get_routes(api.client.app)
        templates = {template for template, _ in routes}
        assert set(OPEN_WHEN_READS_NEED_A_TOKEN) <= templates, "the list names live routes"
        walked = {"/parties", "/sources", "/regions/{slug}/claims", "/collections/{collectionId}"}
        assert walked <= templates  # included routers are walked, nested or copied
        assert any("/tiles/" in t for t in templates)
        document = api.client.get("/openapi.json").json()["paths"]
        checked = 0
        for template, route in routes:
            query = _required_query(route)
            for path in _targets(template, api.client, api.write, snapshot):
                open_ = template in OPEN_WHEN_READS_NEED_A_TOKEN
                anonymous = api.client.get(path, params=query)
                assert anonymous.status_code == (200 if open_ else 401), (path, anonymous.text)
                if not open_:
                    assert anonymous.headers["content-type"] == PROBLEM
                    # and the API definition says so
                    assert "401" in document[template]["get"]["responses"], template
                with_token = api.client.get(path, params=query, headers=api.write)
                assert with_token.status_code == 200, (path, with_token.text)
                checked += 1
        assert checked >= len(routes)


def test_retraction_reason_can_come_in_a_json_body(api: Api) -> None:
    oid = api.post(feature()).json()["id"]
    r = api.client.request(
        "DELETE", f"/observations/{oid}", json={"reason": "duplicate"}, headers=api.write
    )
    assert r.status_code == 200, r.text
    assert r.json()["retraction_reason"] == "duplicate"
    missing = api.client.delete("/observations/99999", params={"reason": "x"}, headers=api.write)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM


def test_a_correction_is_one_feature(api: Api) -> None:
    oid = api.post(feature()).json()["id"]
    two = {"type": "FeatureCollection", "features": [feature(), feature()]}
    r = api.client.post(f"/observations/{oid}/corrections", json=two, headers=api.write)
    assert r.status_code == 422
    assert "one Feature, not a FeatureCollection" in r.json()["detail"]
    missing = api.client.post("/observations/99999/corrections", json=feature(), headers=api.write)
    assert missing.status_code == 404


def test_an_idempotency_key_on_a_resubmission_is_remembered(api: Api) -> None:
    """The key's answer is then the only write of its transaction (a SQLite savepoint trap)."""
    first = api.post(feature())
    again = api.post(feature(), headers={"Idempotency-Key": "late-key"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    replay = api.post(feature(), headers={"Idempotency-Key": "late-key"})
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == again.json()
