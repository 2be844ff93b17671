"""The `frontline` command, run as a user runs it: in a subprocess, against real databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from app.settings import PROJECT_ROOT
from tests.conftest import free_port, wait_until_healthy


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=PROJECT_ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["db"],
        ["db", "upgrade"],
        ["db", "current"],
        ["seed"],
        ["rebuild"],
        ["tokens"],
        ["tokens", "create"],
        ["tokens", "list"],
        ["tokens", "revoke"],
        ["import"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: frontline" in result.stdout


def test_upgrade_seed_current_rebuild_on_a_new_sqlite_file(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'nested' / 'atlas.db'}"}
    behind = run("db", "current", env=env)
    assert behind.returncode == 1
    assert "run `frontline db upgrade`" in behind.stdout
    assert run("db", "upgrade", env=env).returncode == 0
    assert "up to date" in run("db", "current", env=env).stdout
    first = run("seed", env=env)
    assert first.returncode == 0, first.stderr
    assert "observations added: 10" in first.stdout
    again = run("seed", env=env)
    assert "observations added: 0 (already present: 10)" in again.stdout
    rebuilt = run("rebuild", env=env)
    assert rebuilt.returncode == 0
    assert "pieces rebuilt" in rebuilt.stdout


def test_a_bad_database_url_is_explained() -> None:
    result = run("db", "current", env={"DATABASE_URL": "mysql://nobody@localhost/x"})
    assert result.returncode != 0
    assert "sqlite:///FILE or postgresql+psycopg://" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_explained() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/nowhere"
    result = run("db", "upgrade", env={"DATABASE_URL": url})
    assert result.returncode == 2
    assert (
        "cannot use the database postgresql+psycopg://nobody@127.0.0.1:1/nowhere" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_serve_migrates_seeds_and_answers_over_http(empty_engine: Engine) -> None:
    """`frontline serve` on an empty database: prints its URLs, then answers real HTTP."""
    url = empty_engine.url.render_as_string(hide_password=False)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "2"],
        env={**os.environ, "DATABASE_URL": url},
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process)
        r = httpx.get(
            f"{base}/regions/kursk/change",
            params={"party": "UA", "from": "2024-08-31", "to": "2025-04-26", "account": "UA"},
        )
        [change] = r.json()["changes"]
        assert (change["from"]["area_km2"], change["to"]["area_km2"]) == (1294, 30)
        geojson = httpx.get(f"{base}/regions/kursk/control?at=2025-04-26")
        assert geojson.headers["content-type"] == "application/geo+json"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"API:  {base}/" in output
    assert f"docs: {base}/docs" in output
    assert "2 worker processes" in output


def test_tokens_create_list_revoke(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'atlas.db'}"}
    created = run("tokens", "create", "--name", "kyiv-desk", "--scope", "write", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("fat_")
    assert len(token) > 40
    assert "shown this once" in created.stderr
    listed = run("tokens", "list", env=env).stdout
    assert "kyiv-desk\twrite" in listed
    assert token not in listed
    again = run("tokens", "create", "--name", "kyiv-desk", "--scope", "admin", env=env)
    assert again.returncode == 2
    assert "exists already" in again.stderr
    assert run("tokens", "revoke", "kyiv-desk", env=env).returncode == 0
    assert "revoked" in run("tokens", "list", env=env).stdout
    missing = run("tokens", "revoke", "nobody", env=env)
    assert missing.returncode == 2
    assert "No active token named 'nobody'" in missing.stderr
