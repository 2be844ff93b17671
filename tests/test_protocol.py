"""Security and protocol: CORS for reads and for writes, no credentials in URLs or in the access
log, expiring tokens and their last use, security headers, OPTIONS, and the problems the
OpenAPI documents declare. Both databases, through the ASGI app and through a real uvicorn."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.app import create_app
from app.api.ogc.openapi import PROBLEMS
from app.api.server import redact
from app.domain.errors import InvalidInput
from app.domain.timeutil import now
from app.domain.tokens import Scope, expiry
from app.seed import seed
from app.settings import Settings
from app.storage.database import Database
from app.storage.tables import tokens as tokens_table
from app.storage.tokens import LAST_USED_PRECISION
from tests.conftest import DATA_DIR, LiveServer, free_port, serve, wait_until_healthy
from tests.store import StoreTokens as Tokens
from tests.test_cli import run

PROBLEM = "application/problem+json"
DESK = "https://desk.example"  # allowed to write in these tests
ELSEWHERE = "https://elsewhere.example"  # allowed to read only
WRITES = [
    ("POST", "/observations"),
    ("POST", "/observations/1/corrections"),
    ("DELETE", "/observations/1"),
    ("POST", "/sources"),
    ("POST", "/parties"),
    ("PUT", "/regions/kursk"),
]


@pytest.fixture
def desk_client(seeded_engine: Engine) -> Iterator[TestClient]:
    """The seeded service with one origin allowed to write."""
    settings = Settings(database_url=str(seeded_engine.url), cors_write_origins=[DESK])
    with TestClient(create_app(settings, engine=seeded_engine)) as c:
        yield c


@pytest.fixture
def writable(empty_engine: Engine) -> Iterator[tuple[TestClient, Tokens]]:
    """A seeded database of its own (these tests write tokens), and its tokens."""
    seed(Database(empty_engine), DATA_DIR)
    app = create_app(Settings(database_url=str(empty_engine.url)), engine=empty_engine)
    with TestClient(app) as c:
        yield c, Tokens(empty_engine)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- CORS ---------------------------------------------------------------------------------------


def preflight(client: TestClient, path: str, origin: str, method: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    return client.options(path, headers=headers)


def test_any_origin_may_read(desk_client: TestClient) -> None:
    r = preflight(desk_client, "/regions/kursk/control", ELSEWHERE, "GET")
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert set(r.headers["access-control-allow-methods"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    r = desk_client.get("/regions/kursk/control?at=2025-04-26", headers={"Origin": ELSEWHERE})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_only_the_write_origins_may_write(desk_client: TestClient, method: str, path: str) -> None:
    refused = preflight(desk_client, path, ELSEWHERE, method)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM
    assert "access-control-allow-origin" not in refused.headers
    assert "CORS_WRITE_ORIGINS" in refused.json()["detail"]

    allowed = preflight(desk_client, path, DESK, method)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == DESK
    assert method in allowed.headers["access-control-allow-methods"].split(", ")
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    assert "Origin" in allowed.headers["vary"]

    # The request itself: refused from elsewhere (a browser does not always preflight) ...
    r = desk_client.request(method, path, headers={"Origin": ELSEWHERE})
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    # ... and from the desk it reaches the service (here: no token), readable by the page.
    r = desk_client.request(method, path, headers={"Origin": DESK})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == DESK
    assert "WWW-Authenticate" in r.headers["access-control-expose-headers"]


def test_no_origin_may_write_by_default(client: TestClient) -> None:
    assert Settings().cors_write_origins == []
    r = preflight(client, "/observations", DESK, "POST")
    assert r.status_code == 403
    assert client.post("/observations", headers={"Origin": DESK}).status_code == 403
    # the service's own pages (/docs) and clients that send no Origin are not cross-origin
    assert client.post("/observations", headers={"Origin": "http://testserver"}).status_code == 401
    assert client.post("/observations").status_code == 401


def test_the_public_url_is_the_services_own_origin(seeded_engine: Engine) -> None:
    """Behind a proxy that rewrites Host, the pages of PUBLIC_URL are still the service's own."""
    settings = Settings(database_url=str(seeded_engine.url), public_url="https://atlas.example/")
    with TestClient(create_app(settings, engine=seeded_engine)) as c:
        assert (
            c.post("/observations", headers={"Origin": "https://atlas.example"}).status_code == 401
        )
        assert c.post("/observations", headers={"Origin": DESK}).status_code == 403


# --- credentials in URLs and in the access log ---------------------------------------------------


@pytest.mark.parametrize(
    "query", ["access_token=fat_x", "token=abc", "api_key=abc", "access%5Ftoken=abc"]
)
def test_a_token_in_the_url_is_refused(client: TestClient, query: str) -> None:
    for method, path in [("GET", "/regions"), ("POST", "/observations")]:
        r = client.request(method, f"{path}?{query}")
        assert r.status_code == 400
        assert r.headers["content-type"] == PROBLEM
        assert "Authorization: Bearer" in r.json()["detail"]
        assert r.json()["parameter"] in ("access_token", "token", "api_key")


def test_redaction_of_logged_urls() -> None:
    assert (
        redact("/regions?access_token=s3cret&at=2025") == "/regions?access_token=[redacted]&at=2025"
    )
    assert redact("/x?TOKEN=a&access%5Ftoken=b") == "/x?TOKEN=[redacted]&access%5Ftoken=[redacted]"
    assert redact("/x?q=fat_abcDEF123-_") == "/x?q=fat_[redacted]"
    assert redact("/observations/fat_abc") == "/observations/fat_[redacted]"
    assert redact("/regions?at=2025-04-26") == "/regions?at=2025-04-26"


def test_the_access_log_never_shows_a_token(seeded_engine: Engine, tmp_path: Path) -> None:
    backend = "postgis" if seeded_engine.dialect.name == "postgresql" else "sqlite"
    log = tmp_path / "uvicorn.log"
    secret = "fat_" + "S3cr3t" * 7
    with serve(seeded_engine, backend, log=log) as live:
        for target in [
            f"/regions?access_token={secret}",
            f"/regions/kursk/control?at=2025-04-26&token={secret}",
            f"/observations/{secret}",
            "/regions/kursk/control?at=2025-04-26",
        ]:
            httpx.get(live.url + target, timeout=30)
        httpx.post(f"{live.url}/observations?api_key=hunter2", json={}, timeout=30)
    written = log.read_text()
    assert "S3cr3t" not in written
    assert "hunter2" not in written
    assert '"GET /regions?access_token=[redacted] HTTP/1.1" 400' in written
    assert "&token=[redacted]" in written
    assert '"GET /observations/fat_[redacted] HTTP/1.1" 4' in written
    assert '"GET /regions/kursk/control?at=2025-04-26 HTTP/1.1" 200' in written  # the rest stays


# --- tokens that expire, and their last use ------------------------------------------------------


def test_expiry_spans_and_dates() -> None:
    at = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    assert expiry("90d", at) == at + dt.timedelta(days=90)
    assert expiry("12h", at) == at + dt.timedelta(hours=12)
    assert expiry("30m", at) == at + dt.timedelta(minutes=30)
    assert expiry("2w", at) == at + dt.timedelta(weeks=2)
    assert expiry("2026-12-31", at) == dt.datetime(2026, 12, 31, 23, 59, 59, 999999, dt.UTC)
    assert expiry("2027-01-01T06:00:00+02:00", at) == dt.datetime(2027, 1, 1, 4, tzinfo=dt.UTC)
    for bad in ["soon", "90", "-1d", "2025-01-01", "0d"]:
        with pytest.raises(InvalidInput):
            expiry(bad, at)


def test_an_expired_token_is_refused_saying_when(writable: tuple[TestClient, Tokens]) -> None:
    client, tokens = writable
    past = now() - dt.timedelta(hours=1)
    old = tokens.create("old-desk", Scope.WRITE, expires_at=past)
    fresh = tokens.create("new-desk", Scope.WRITE, expires_at=now() + dt.timedelta(days=90))
    r = client.post("/observations", json={}, headers=bearer(old))
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert "'old-desk' expired at" in body["detail"]
    assert dt.datetime.fromisoformat(body["expired_at"]) == past
    assert r.headers["www-authenticate"].startswith("Bearer")
    # the valid one gets past authentication (to the body's problem)
    assert client.post("/observations", json={}, headers=bearer(fresh)).status_code == 422
    listed = {t.name: t for t in tokens.list()}
    assert listed["old-desk"].expires_at == past
    assert listed["old-desk"].last_used_at is None  # an expired token's attempt is no use


def test_last_use_is_recorded_once_a_minute(writable: tuple[TestClient, Tokens]) -> None:
    client, tokens = writable
    token = tokens.create("reader", Scope.WRITE)
    assert tokens.list()[0].last_used_at is None
    started = now()
    client.post("/observations", json={}, headers=bearer(token))
    first = tokens.list()[0].last_used_at
    assert first is not None
    assert first >= started
    for _ in range(3):
        client.post("/observations", json={}, headers=bearer(token))
    assert tokens.list()[0].last_used_at == first  # no write per request
    with tokens.engine.begin() as c:  # as if the last use were longer ago
        c.execute(tokens_table.update().values(last_used_at=first - LAST_USED_PRECISION))
    client.post("/observations", json={}, headers=bearer(token))
    later = tokens.list()[0].last_used_at
    assert later is not None
    assert later > first


def test_tokens_create_with_expiry_and_list(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'atlas.db'}"}
    created = run(
        "tokens", "create", "--name", "desk", "--scope", "write", "--expires", "90d", env=env
    )
    assert created.returncode == 0, created.stderr
    assert "expires 20" in created.stderr
    run("tokens", "create", "--name", "chief", "--scope", "admin", env=env)
    lines = run("tokens", "list", env=env).stdout.splitlines()
    assert lines[0].split("\t") == ["name", "scope", "state", "created", "expires", "last_used"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    expires = dt.datetime.fromisoformat(rows["desk"][4])
    assert abs(expires - now() - dt.timedelta(days=90)) < dt.timedelta(minutes=5)
    assert rows["desk"][5] == "never"
    assert rows["chief"][2:] == ["active", rows["chief"][3], "never", "never"]
    bad = run("tokens", "create", "--name", "x", "--scope", "write", "--expires", "soon", env=env)
    assert bad.returncode == 2
    assert "--expires takes a span such as 90d" in bad.stderr
    assert "--expires" in run("tokens", "create", "--help").stdout


# --- security headers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/regions", {}),
        ("/regions/kursk/area?party=UA&format=csv", {}),
        ("/", {"Accept": "text/html"}),
        ("/collections/control/items?f=html&limit=2", {}),
        ("/docs", {}),
        ("/nowhere", {}),
        ("/regions?at=never", {}),
    ],
)
def test_security_headers_on_every_answer(
    client: TestClient, path: str, headers: dict[str, str]
) -> None:
    r = client.get(path, headers=headers)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "server" not in r.headers
    if r.headers["content-type"].startswith("text/html"):
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert re.search(r"script-src 'self'( 'sha256-[^']+')*;", csp)
    else:
        assert "content-security-policy" not in r.headers


def test_html_pages_run_only_allowed_scripts(client: TestClient) -> None:
    """Every inline script of the HTML pages is allowed by its hash; every other script,
    style sheet and image comes from this origin (no CDN: the /docs JavaScript is served
    from /static)."""
    for path in ["/?f=html", "/collections?f=html", "/conformance?f=html", "/docs"]:
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        for script in re.findall(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", r.text, re.S):
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in csp, f"an inline script of {path} would not run"
    for path in ["/?f=html", "/collections?f=html", "/collections/control/items?f=html"]:
        page = client.get(path).text
        assert not re.findall(r"""<(?:script|link|img)[^>]*(?:src|href)=["']https?://""", page)


def test_frontline_serve_sends_no_banner_and_logs_no_token(
    seeded_engine: Engine, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": seeded_engine.url.render_as_string(hide_password=False),
        "AUTO_MIGRATE": "false",
        "AUTO_SEED": "false",
    }
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, process)
            r = httpx.get(f"{url}/regions", timeout=30)
            assert r.status_code == 200
            assert "server" not in r.headers
            assert r.headers["x-content-type-options"] == "nosniff"
            secret = "fat_" + "Hidden" * 7
            assert httpx.get(f"{url}/regions?access_token={secret}").status_code == 400
        finally:
            process.terminate()
            process.wait(timeout=20)
    written = log.read_text()
    assert '"GET /regions?access_token=[redacted] HTTP/1.1" 400' in written
    assert "Hidden" not in written


def test_no_server_banner_from_uvicorn(live_server: LiveServer) -> None:
    """``live_server`` is ``uvicorn app.api.app:create_app --factory`` as anyone may start it."""
    for path in ["/healthz", "/nowhere", "/"]:
        r = httpx.get(live_server.url + path, timeout=30)
        assert "server" not in r.headers
        assert r.headers["x-content-type-options"] == "nosniff"


# --- OPTIONS and the problems each operation declares --------------------------------------------


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/regions", "GET, HEAD, OPTIONS"),
        ("/regions/kursk", "GET, HEAD, OPTIONS, PUT"),
        ("/observations", "OPTIONS, POST"),
        ("/observations/1", "DELETE, GET, HEAD, OPTIONS"),
        ("/collections/control/items", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_lists_the_methods(client: TestClient, path: str, allow: str) -> None:
    r = client.options(path)
    assert r.status_code == 204
    assert r.headers["allow"] == allow
    assert r.content == b""


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/observations/1", "DELETE, GET, HEAD, OPTIONS"),
        ("POST", "/regions", "GET, HEAD, OPTIONS"),
        ("DELETE", "/observations", "OPTIONS, POST"),
    ],
)
def test_a_405_lists_every_method(client: TestClient, method: str, path: str, allow: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 405
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["allow"] == allow


def test_options_on_nothing_is_a_404(client: TestClient) -> None:
    r = client.options("/nowhere")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method, operation


@pytest.mark.parametrize("where", ["/openapi.json", "/api"])
def test_every_operation_declares_its_problems(client: TestClient, where: str) -> None:
    document = client.get(where).json()
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert "HTTPValidationError" not in str(document)
    for path, method, operation in operations(document):
        declared = {int(s) for s in operation["responses"] if s.isdigit() and int(s) >= 400}
        expected = {400}
        if "{" in path:
            expected.add(404)
        if method in ("post", "put", "delete"):
            expected |= {401, 403, 409, 413, 415, 422}
            assert operation["security"] == [{"bearerToken": []}]
            assert operation["x-token-scope"] in ("write", "admin")
        assert declared >= expected, f"{method.upper()} {path} declares {sorted(declared)}"
        assert declared <= set(PROBLEMS)
        for status in declared:
            content = operation["responses"][str(status)]["content"]
            assert list(content) == [PROBLEM]
            assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_the_declared_problems_are_the_answers(desk_client: TestClient) -> None:
    """A sample of real answers: each status is declared for its operation."""
    document = desk_client.get("/openapi.json").json()["paths"]
    answers = [
        ("post", "/observations", "/observations", 401),
        ("delete", "/observations/{observation_id}", "/observations/999999", 401),
        ("get", "/observations/{observation_id}", "/observations/999999", 404),
        ("get", "/regions/{slug}/control", "/regions/nowhere/control", 404),
        ("get", "/regions/{slug}/control", "/regions/kursk/control?at=never", 400),
        ("get", "/exports/observations", "/exports/observations?region=nowhere", 400),
        ("get", "/regions", "/regions?token=abc", 400),
    ]
    for method, template, target, status in answers:
        r = desk_client.request(method.upper(), target)
        assert r.status_code == status, (target, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert str(status) in document[template][method]["responses"]


def test_reads_declare_401_when_they_need_a_token(seeded_engine: Engine) -> None:
    settings = Settings(database_url=str(seeded_engine.url), require_token_for_reads=True)
    with TestClient(create_app(settings, engine=seeded_engine)) as c:
        document = c.get("/openapi.json").json()
        operation = document["paths"]["/regions/{slug}/control"]["get"]
        assert "401" in operation["responses"]
        assert operation["security"] == [{"bearerToken": []}]
        assert c.get("/regions/kursk/control").status_code == 401
