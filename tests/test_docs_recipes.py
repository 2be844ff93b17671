"""Every recipe in docs/researchers.md, against the service on a real port, on both databases.

Python recipes are executed as written (only the address is changed to the test server's);
recipes in other languages (R, JavaScript, QGIS steps) are checked by fetching every URL they
use, so a renamed endpoint or parameter breaks the build, not the reader's afternoon.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import LiveServer

DOC = Path(__file__).resolve().parent.parent / "docs" / "researchers.md"
DOC_BASE = "http://127.0.0.1:8000"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(DOC.read_text()) if lang == language]


def urls(text: str) -> list[str]:
    """Every service URL in the text (OAPIF: connection strings included)."""
    found = re.findall(re.escape(DOC_BASE) + r"[^\s\"'`)]*", text)
    return sorted({u.rstrip(".,;") for u in found})


PYTHON = blocks("python")


def test_the_page_has_recipes_for_everyone() -> None:
    text = DOC.read_text()
    for heading in ("## pandas", "## geopandas", "## DuckDB", "## R", "## QGIS", "## Leaflet"):
        assert heading in text
    assert "## MapLibre" in text
    assert len(PYTHON) >= 4


@pytest.mark.parametrize(
    "index", range(len(PYTHON)), ids=[f"python-{i}" for i in range(len(PYTHON))]
)
def test_python_recipe_runs(
    live_server: LiveServer, index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # recipes may write files (DuckDB)
    code = PYTHON[index].replace(DOC_BASE, live_server.url)
    namespace: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(code, f"{DOC.name}:python-{index}", "exec"), namespace)
    frames = {k: v for k, v in namespace.items() if isinstance(v, pd.DataFrame)}
    assert frames, "a recipe should leave a data frame behind"
    for name, frame in frames.items():
        assert len(frame) > 0, f"{name} is empty"
    assert printed.getvalue().strip()
    check_known_values(frames)


def check_known_values(frames: dict[str, pd.DataFrame]) -> None:
    """Figures from the shipped seed that the recipes' results must contain."""
    if "latest" in frames:
        by_source = frames["latest"].set_index("source")["area_km2"]
        assert by_source["ua-officials"] == 30.0
        assert by_source["ru-general-staff"] == 0.0
    if "control" in frames:
        control = frames["control"].set_index("source")
        assert control.loc["frontline-atlas-illustration", "area_km2"] == pytest.approx(
            29.999, abs=0.01
        )
        assert control.loc["ua-officials", "reported_area_km2"] == 30.0
    if "timeline" in frames:
        timeline = frames["timeline"]
        assert 1294.0 in set(timeline["reported_area_km2"].dropna())
        assert str(timeline["valid_from"].dtype).startswith("datetime64")
    if "drawn" in frames:  # geodesic areas against an equal-area projection: within 0.5 %
        drawn = frames["drawn"]
        assert (abs(drawn["equal_area_km2"] / drawn["area_km2"] - 1) < 0.005).all()
    if "on_the_day" in frames:
        kursk = frames["on_the_day"]
        kursk = kursk[kursk["region"] == "kursk"]
        assert sorted(kursk["source"]) == sorted(
            [
                "frontline-atlas-illustration",
                "ru-general-staff",
                "ua-officials",
                "ua-general-staff",
                "ua-commander-in-chief",
            ]
        )
    if "per_source" in frames:
        rows = frames["per_source"]
        assert set(rows["region"]) == {"kursk", "belgorod"}
        assert rows["observations"].sum() == 10


@pytest.mark.parametrize("language", ["r", "html", "js"])
def test_every_url_in_the_other_recipes_answers(live_server: LiveServer, language: str) -> None:
    code = "\n".join(blocks(language))
    found = urls(code)
    assert found
    for url in found:
        check_url(live_server, url)


def test_qgis_steps_point_at_a_working_connection(live_server: LiveServer) -> None:
    section = DOC.read_text().split("## QGIS", 1)[1].split("\n## ", 1)[0]
    for url in urls(section):
        check_url(live_server, url)
    collections = httpx.get(f"{live_server.url}/collections").json()["collections"]
    assert [c["id"] for c in collections] == ["regions", "control", "observations"]
    queryables = httpx.get(f"{live_server.url}/collections/control/queryables").json()
    assert {"valid_from", "valid_until"} <= set(queryables["properties"])


def check_url(live: LiveServer, url: str) -> None:
    real = url.replace(DOC_BASE, live.url)
    r = httpx.get(real, headers={"Origin": "https://newsroom.example"})
    assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
    assert r.content
    assert r.headers["access-control-allow-origin"] in ("*", "https://newsroom.example")
    media = r.headers["content-type"]
    if "control?at=" in url:
        assert media == "application/geo+json"
        assert r.json()["features"]
    if "format=csv" in url:
        assert media.startswith("text/csv")
        assert len(r.text.splitlines()) > 1
