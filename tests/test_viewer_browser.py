"""The map viewer, the API docs and the recipe pages in a real browser: Debian's headless
Chromium driven by selenium through chromedriver, against the service on a real port (both
databases).

Every page must load with no console error, no failed request and no request leaving the
service (so it works offline). The map is checked by its pixels: the canvas is read where the
seeded polygons are. The time from a slider change to the map's repaint (its ``idle`` event) is
measured in the browser and printed. Screenshots of each view go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import statistics
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from shapely.geometry import box, mapping, shape
from sqlalchemy import Engine

from app.domain.model import Source, SourceKind
from app.domain.tokens import Scope
from app.seed import seed
from app.settings import PROJECT_ROOT
from tests.conftest import DATA_DIR, LiveServer, serve
from tests.store import Store

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
TIMINGS = PROJECT_ROOT / "artifacts" / "timings.txt"  # .ci/run prints it after the tests


def report(line: str) -> None:
    """A measured figure: printed, and kept in artifacts/timings.txt for CI's log."""
    print(line)
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    with TIMINGS.open("a", encoding="utf-8") as out:
        out.write(line + "\n")


EXAMPLES = PROJECT_ROOT / "docs" / "examples"
DOC_BASE = "http://127.0.0.1:8000"
SUDZHA = (35.27, 51.19)
UA_BLUE = (0, 114, 178)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not CHROMEDRIVER.exists():
        pytest.fail(
            "The browser tests need Chromium and its driver: apt-get install chromium "
            "chromium-driver (.ci/run installs them)."
        )
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1200,800",
        "--use-angle=swiftshader",  # WebGL without a GPU
        "--enable-unsafe-swiftshader",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# --- helpers ----------------------------------------------------------------------------------


def requests_made(driver: WebDriver) -> list[dict[str, Any]]:
    """The requests since the last call, from Chrome's performance log: url, status, failure."""
    seen: dict[str, dict[str, Any]] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message["method"], message.get("params", {})
        if method == "Network.requestWillBeSent":
            seen[params["requestId"]] = {"url": params["request"]["url"], "status": None}
        elif method == "Network.responseReceived" and params["requestId"] in seen:
            seen[params["requestId"]]["status"] = params["response"]["status"]
        elif method == "Network.loadingFailed" and params["requestId"] in seen:
            seen[params["requestId"]]["failed"] = params.get("errorText", "failed")
    return list(seen.values())


def assert_clean(driver: WebDriver, origins: tuple[str, ...]) -> list[dict[str, Any]]:
    """No console error, no failed request, nothing fetched from anywhere else."""
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    made = requests_made(driver)
    assert made, "the page made no request at all"
    for request in made:
        url = request["url"]
        if url.startswith(("data:", "blob:")):
            continue
        assert url.startswith(origins), f"{url} is not served by {origins}: not offline-safe"
        assert "failed" not in request, request
        assert request["status"] is None or request["status"] < 400, request
    return made


def screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def open_viewer(driver: WebDriver, url: str) -> None:
    driver.get("about:blank")  # a new document even when only the hash differs
    driver.get(url)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "atlas.ready.then(() => done(true), (e) => done(String(e)));"
    )


def run_async(driver: WebDriver, body: str, *args: Any) -> Any:
    """Run ``body`` (an async function body, ``args`` as ``args``) and return its result."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "const args = Array.from(arguments).slice(0, -1);"
        f"(async () => {{ {body} }})().then(done, (e) => done({{error: String(e)}}));"
    )
    result = driver.execute_async_script(script, *args)
    assert not (isinstance(result, dict) and "error" in result), result
    return result


PIXELS = """
const [lon, lat, radius] = args;
const map = atlas.map;
const point = map.project([lon, lat]);
const canvas = map.getCanvas();
const ratio = canvas.width / canvas.clientWidth;
const copy = document.createElement("canvas");
copy.width = canvas.width; copy.height = canvas.height;
const context = copy.getContext("2d");
context.drawImage(canvas, 0, 0);
const x = Math.round(point.x * ratio), y = Math.round(point.y * ratio);
const data = context.getImageData(x - radius, y - radius, 2 * radius + 1, 2 * radius + 1).data;
const sum = [0, 0, 0];
for (let i = 0; i < data.length; i += 4) {
  sum[0] += data[i]; sum[1] += data[i + 1]; sum[2] += data[i + 2];
}
const n = data.length / 4;
return sum.map((v) => Math.round(v / n));
"""


def mean_colour(driver: WebDriver, lon: float, lat: float, radius: int = 6) -> list[int]:
    """The mean colour of the map's canvas around a place."""
    colour: list[int] = run_async(driver, PIXELS, lon, lat, radius)
    return colour


def is_ua_blue(colour: list[int]) -> bool:
    """The party colour (#0072B2, over the pale land): much more blue than red."""
    red, _, blue = colour
    return blue - red > 30


SLIDE = """
const [date] = args;
const slider = document.getElementById("slider");
const index = atlas.data.dates.indexOf(date);
if (index < 0) throw new Error(`${date} is not a stop of the slider: ${atlas.data.dates}`);
const start = performance.now();
slider.value = String(index);
slider.dispatchEvent(new Event("input"));
await atlas.data.pending;
await new Promise((resolve) => atlas.map.once("idle", resolve));
return performance.now() - start;
"""


def slide_to(driver: WebDriver, date: str) -> float:
    """Move the slider to ``date``; the milliseconds from the change to the map's repaint."""
    elapsed: float = run_async(driver, SLIDE, date)
    return elapsed


def drawn(driver: WebDriver) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = driver.execute_script(
        "return atlas.shownFeatures().map((f) => f.properties);"
    )
    return features


def km2_text(value: float) -> str:
    """A figure as the viewer writes it: thousands separated, at most one decimal."""
    return f"{value:,.1f}".removesuffix(".0") + " km²"


def outlined(driver: WebDriver) -> set[str]:
    """The regions the selected-region layer outlines on the map now."""
    slugs: list[str] = driver.execute_script(
        "return atlas.map.queryRenderedFeatures({ layers: ['region-selected'] })"
        ".map((f) => f.properties.slug);"
    )
    return set(slugs)


def wait_for_totals(driver: WebDriver) -> None:
    """Until the region panel shows a country's claims and its chart."""
    WebDriverWait(driver, 20).until(
        lambda d: (
            d.find_elements("css selector", "table.claims.totals")
            and d.find_elements("css selector", ".chart path.series")
        )
    )


# --- the viewer -------------------------------------------------------------------------------


def test_the_root_opens_on_the_map_clean_and_offline(
    browser: WebDriver, live_server: LiveServer
) -> None:
    browser.get("about:blank")
    requests_made(browser)
    browser.get(f"{live_server.url}/")
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; atlas.ready.then(() => done(true));"
    )
    made = assert_clean(browser, (live_server.url,))
    urls = [r["url"] for r in made]
    assert any("/static/vendor/maplibre-gl-5.17.0/maplibre-gl.js" in u for u in urls)
    assert any("/collections/control/items?datetime=" in u for u in urls)
    notice = browser.find_element("css selector", ".notice").text
    assert "Claims conflict" in notice
    options = browser.find_elements("css selector", "#region option")
    regions = httpx.get(f"{live_server.url}/regions", params={"level": "all"}).json()
    assert len(options) == 1 + len(regions["features"])  # and "whole theatre"
    screenshot(browser, f"viewer-theatre-{live_server.backend}")


def test_kursk_through_time_by_its_pixels(browser: WebDriver, live_server: LiveServer) -> None:
    open_viewer(browser, f"{live_server.url}/map#at=2024-08-01&region=kursk&illustrative=1")
    requests_made(browser)
    assert drawn(browser) == []
    assert not is_ua_blue(mean_colour(browser, *SUDZHA))

    timings = [slide_to(browser, "2024-08-27")]
    run_async(browser, "await atlas.setAt('2024-08-31'); await atlas.whenIdle();")  # date box
    shapes = drawn(browser)
    assert [(f["source"], round(f["area_km2"])) for f in shapes] == [
        ("frontline-atlas-illustration", 1300)
    ]
    assert is_ua_blue(mean_colour(browser, *SUDZHA)), "Sudzha is inside the August polygon"
    screenshot(browser, f"viewer-kursk-2024-08-31-{live_server.backend}")

    timings.append(slide_to(browser, "2025-04-26"))
    shapes = drawn(browser)
    assert [(f["source"], round(f["area_km2"])) for f in shapes] == [
        ("frontline-atlas-illustration", 30)
    ]
    assert not is_ua_blue(mean_colour(browser, *SUDZHA)), "Sudzha is outside the April one"
    control = httpx.get(f"{live_server.url}/regions/kursk/control?at=2025-04-26").json()
    polygon = next(shape(f["geometry"]) for f in control["features"] if f["geometry"])
    inside = polygon.representative_point()
    assert is_ua_blue(mean_colour(browser, inside.x, inside.y, radius=2))
    screenshot(browser, f"viewer-kursk-2025-04-26-{live_server.backend}")
    assert_clean(browser, (live_server.url,))
    report(
        f"slider change to repaint, Kursk ({live_server.backend}): "
        f"{', '.join(f'{t:.0f}' for t in timings)} ms"
    )


def test_illustrations_are_off_until_asked_for_and_keys_step_through_time(
    browser: WebDriver, live_server: LiveServer
) -> None:
    open_viewer(browser, f"{live_server.url}/map#at=2024-08-31&region=kursk")
    assert drawn(browser) == []
    assert not is_ua_blue(mean_colour(browser, *SUDZHA))
    assert "schematic illustration hidden" in browser.find_element("id", "status").text
    browser.find_element("id", "illustrative").click()
    run_async(browser, "await atlas.data.pending; await atlas.whenIdle();")
    assert len(drawn(browser)) == 1
    assert is_ua_blue(mean_colour(browser, *SUDZHA))
    assert "illustrative=1" in browser.execute_script("return location.hash")

    # the keyboard: arrows step between the dates on which sources changed, Home and End
    body = browser.find_element("tag name", "body")
    browser.execute_script("document.activeElement.blur()")
    for key, expected in ((Keys.ARROW_RIGHT, "2024-11-23"), (Keys.END, "2025-04-26")):
        body.send_keys(key)
        run_async(browser, "await atlas.data.pending; await atlas.whenIdle();")
        assert browser.find_element("id", "date").get_attribute("value") == expected
    body.send_keys(Keys.HOME)
    run_async(browser, "await atlas.data.pending;")
    assert browser.find_element("id", "date").get_attribute("value") == "2024-08-12"
    assert drawn(browser) == []


def test_the_region_panel_sets_claims_side_by_side_and_one_step_line_per_source(
    browser: WebDriver, live_server: LiveServer
) -> None:
    open_viewer(browser, f"{live_server.url}/map#at=2025-04-26&region=kursk&illustrative=1")
    WebDriverWait(browser, 10).until(
        lambda d: d.find_elements("css selector", ".chart path.series")
    )
    claims = httpx.get(
        f"{live_server.url}/regions/kursk/claims",
        params={"at": "2025-04-26", "party": "UA", "status": ["controlled", "contested"]},
    ).json()["claims"]
    rows = browser.find_elements("css selector", "table.claims tr")[1:]
    assert len(rows) == len(claims) == 5
    assert "1,294 km²" in rows[0].text  # Syrskyi's August figure, still in force
    assert "243 days old" in rows[0].text
    series = httpx.get(
        f"{live_server.url}/regions/kursk/area",
        params={"party": "UA", "status": ["controlled", "contested"]},
    ).json()["series"]
    lines = browser.find_elements("css selector", ".chart path.series")
    assert sorted(line.get_attribute("data-source") for line in lines) == sorted(
        s["source"] for s in series
    )
    for line in lines:
        path = line.get_attribute("d") or ""
        assert set(path) - set("MHV0123456789.,") == set(), "step lines: only H and V moves"
        points = next(s for s in series if s["source"] == line.get_attribute("data-source"))
        circles = browser.find_elements(
            "css selector", f'.chart circle.point[data-source="{points["source"]}"]'
        )
        assert len(circles) == len(points["points"])
    panel = browser.find_element("id", "side")
    browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", panel)
    screenshot(browser, f"viewer-kursk-panel-{live_server.backend}")


def test_a_permalink_restores_the_view(browser: WebDriver, live_server: LiveServer) -> None:
    hash_ = (
        "#at=2025-04-26&region=kursk&sources=frontline-atlas-illustration,ua-officials"
        "&illustrative=1&max_age=30&change=2024-08-31,2025-04-26"
    )
    open_viewer(browser, f"{live_server.url}/map{hash_}")
    assert browser.find_element("id", "region").get_attribute("value") == "kursk"
    assert browser.find_element("id", "date").get_attribute("value") == "2025-04-26"
    assert browser.find_element("id", "age-on").is_selected()
    ticked = [
        box.get_attribute("value")
        for box in browser.find_elements("css selector", ".source-toggle")
        if box.is_selected()
    ]
    assert ticked == ["frontline-atlas-illustration", "ua-officials"]
    assert [round(f["area_km2"]) for f in drawn(browser)] == [30]
    assert browser.execute_script("return location.hash") == hash_
    WebDriverWait(browser, 10).until(
        lambda d: (
            d.execute_script(
                "return (atlas.data.changes || []).map((f) => f.properties.change).join()"
            )
            == "gained,lost"
        )
    )
    run_async(browser, "await atlas.whenIdle();")
    screenshot(browser, f"viewer-permalink-change-{live_server.backend}")
    assert_clean(browser, (live_server.url,))


def test_a_country_from_the_region_choice_and_its_permalink(
    browser: WebDriver, live_server: LiveServer
) -> None:
    """Russia by Kyiv's account on the seed: the sums over Belgorod, Bryansk and Kursk (only
    Kursk has claims), the member regions outlined, and the link that brings it back."""
    open_viewer(browser, f"{live_server.url}/map#at=2025-04-26&illustrative=1")
    countries = httpx.get(
        f"{live_server.url}/regions", params={"level": "country", "geometry": "false"}
    ).json()["features"]
    group = browser.find_element("css selector", '#region optgroup[label^="Countries"]')
    labels = [o.text for o in group.find_elements("tag name", "option")]
    assert labels == ["Russia (Belgorod, Bryansk, Kursk)", "Ukraine (27 regions)"]
    assert [c["id"] for c in countries] == ["russia", "ukraine"]
    assert len(countries[1]["properties"]["members"]) == 27

    Select(browser.find_element("id", "region")).select_by_value("russia")
    wait_for_totals(browser)
    assert "region=russia" in browser.execute_script("return location.hash")
    assert browser.find_element("css selector", "#region-body h3").text == "Russia at 2025-04-26"
    claims = httpx.get(
        f"{live_server.url}/regions/russia/claims",
        params={"at": "2025-04-26", "party": "UA", "status": ["controlled", "contested"]},
    ).json()["claims"]
    rows = browser.find_elements("css selector", "table.claims.totals tr")[1:]
    assert len(rows) == len(claims) == 4
    for row, claim in zip(rows, claims, strict=True):
        assert claim["source_name"] in row.text
        assert km2_text(claim["area_km2"]) in row.text
        assert row.text.endswith("Kursk")  # the member its figure comes from
    assert "1,294 km²" in rows[0].text  # Syrskyi's August figure, still in force
    series = httpx.get(
        f"{live_server.url}/regions/russia/area",
        params={"party": "UA", "status": ["controlled", "contested"]},
    ).json()["series"]
    lines = browser.find_elements("css selector", ".chart path.series")
    assert sorted(line.get_attribute("data-source") for line in lines) == sorted(
        s["source"] for s in series
    )
    run_async(browser, "await atlas.whenIdle();")
    assert outlined(browser) == {"belgorod", "bryansk", "kursk"}
    panel = browser.find_element("id", "side")
    browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", panel)
    screenshot(browser, f"viewer-russia-{live_server.backend}")

    permalink, shown = browser.current_url, [row.text for row in rows]
    open_viewer(browser, permalink)
    assert browser.find_element("id", "region").get_attribute("value") == "russia"
    wait_for_totals(browser)
    again = browser.find_elements("css selector", "table.claims.totals tr")[1:]
    assert [row.text for row in again] == shown
    assert_clean(browser, (live_server.url,))


@pytest.fixture
def ukraine_server(empty_engine: Engine) -> Iterator[LiveServer]:
    """The seed, and a desk's map of Russian-held ground in two Ukrainian regions: Kharkiv
    from 1 March 2025, and Donetsk too from 1 April (the map redrawn with both)."""
    repo = Store(empty_engine)
    seed(repo.db, DATA_DIR)
    repo.save_source(Source("test-desk", "Test desk map", SourceKind.OSINT, None, None))
    with repo.writer() as unit:
        token = unit.tokens.create("desk", Scope.WRITE)
    kharkiv = box(37.5, 49.55, 37.75, 49.7)  # near Kupiansk
    donetsk = box(37.1, 48.2, 37.3, 48.35)  # around Pokrovsk
    backend = "postgis" if empty_engine.dialect.name == "postgresql" else "sqlite"
    with serve(empty_engine, backend) as live:
        for since, geometry in (("2025-03-01", kharkiv), ("2025-04-01", kharkiv.union(donetsk))):
            properties = {
                "source": "test-desk",
                "party": "RU",
                "status": "controlled",
                "valid_from": since,
                "citation": {"title": "Desk map", "publisher": "Test desk"},
            }
            r = httpx.post(
                f"{live.url}/observations",
                json={"type": "Feature", "properties": properties, "geometry": mapping(geometry)},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
        yield live


def test_ukraine_from_a_permalink_shows_the_sums_over_its_regions(
    browser: WebDriver, ukraine_server: LiveServer
) -> None:
    """The link opens Ukraine's panel: each figure the API's sum over its regions (here Kharkiv
    and Donetsk), the chart's points those of its area series, the union drawn, the 27 regions
    outlined, the change between two dates, and a click on the union."""
    url = ukraine_server.url
    open_viewer(browser, f"{url}/map#at=2025-04-26&region=ukraine&change=2025-03-01,2025-04-26")
    wait_for_totals(browser)
    assert browser.find_element("id", "region").get_attribute("value") == "ukraine"
    assert browser.find_element("css selector", "#region-body h3").text == "Ukraine at 2025-04-26"
    params = {"party": "RU", "status": ["controlled", "contested"]}

    def claims(region: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{url}/regions/{region}/claims", params={**params, "at": "2025-04-26"})
        found: list[dict[str, Any]] = body.json()["claims"]
        return found

    [claim] = claims("ukraine")
    own = [claims(region)[0]["area_km2"] for region in ("kharkiv", "donetsk")]
    assert claim["area_km2"] == pytest.approx(sum(own), abs=0.15)  # a sum over its regions
    [row] = browser.find_elements("css selector", "table.claims.totals tr")[1:]
    assert "Test desk map" in row.text
    assert km2_text(claim["area_km2"]) in row.text
    regions = ", ".join(slug.capitalize() for slug in claim["regions"])  # what it sums
    assert regions == "Donetsk, Kharkiv"
    assert regions in row.text

    # the chart: the API's series, point by point
    [series] = httpx.get(f"{url}/regions/ukraine/area", params=params).json()["series"]
    assert [p["at"][:10] for p in series["points"]] == ["2025-03-01", "2025-04-01"]
    titles = [
        c.get_attribute("textContent")
        for c in browser.find_elements(
            "css selector", '.chart circle.point[data-source="test-desk"]'
        )
    ]
    assert titles == [
        f"Test desk map: {km2_text(p['area_km2'])} (measured) on {p['at'][:10]}"
        for p in series["points"]
    ]

    # the map: the union over its regions drawn, its 27 regions outlined, the slider's stops
    assert [round(f["area_km2"]) for f in drawn(browser)] == [round(claim["area_km2"])]
    run_async(browser, "await atlas.whenIdle();")
    members = httpx.get(f"{url}/regions/ukraine").json()["properties"]["members"]
    assert outlined(browser) == set(members)
    assert browser.execute_script("return atlas.data.dates") == ["2025-03-01", "2025-04-01"]
    # the change between the two dates: the Donetsk ground gained, nothing lost
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return atlas.data.changes"))
    changes = browser.execute_script(
        "return atlas.data.changes.map((f) => [f.properties.change, f.properties.area_km2])"
    )
    assert [kind for kind, _ in changes] == ["gained"]
    assert changes[0][1] == pytest.approx(own[1], abs=0.15)
    # a click on the Kharkiv square: the country's union, whose figure is the sum
    x, y = browser.execute_script(
        "const p = atlas.map.project([37.625, 49.625]); const c = atlas.map.getCanvas();"
        "return [p.x - c.clientWidth / 2, p.y - c.clientHeight / 2];"
    )
    canvas = browser.find_element("css selector", "#map canvas")
    ActionChains(browser).move_to_element_with_offset(canvas, round(x), round(y)).click().perform()
    popup = WebDriverWait(browser, 10).until(
        lambda d: d.find_element("css selector", ".maplibregl-popup-content")
    )
    assert "Test desk map" in popup.text
    assert f"sum over {regions}: {km2_text(claim['area_km2'])}" in popup.text
    panel = browser.find_element("id", "side")
    browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", panel)
    screenshot(browser, f"viewer-ukraine-{ukraine_server.backend}")
    assert_clean(browser, (url,))


def test_when_reads_need_a_token_the_viewer_says_so(
    browser: WebDriver, seeded_engine: Engine
) -> None:
    """The page and its scripts stay open; the data does not, and the page says why."""
    backend = "postgis" if seeded_engine.dialect.name == "postgresql" else "sqlite"
    with serve(seeded_engine, backend, require_token_for_reads=True) as locked:
        browser.get("about:blank")
        requests_made(browser)
        open_viewer(browser, f"{locked.url}/")
        status = browser.find_element("id", "status").text
        assert "asks for a token for every read" in status
        assert "Authorization: Bearer" in status
        made = {r["url"].removeprefix(locked.url): r.get("status") for r in requests_made(browser)}
        assert made["/"] == 200
        assert made["/static/viewer/viewer.js"] == 200
        assert made["/regions"] == 401
        # The only errors in the console are those 401s: no script failed.
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors
        assert all("401" in e["message"] for e in errors), errors
        screenshot(browser, f"viewer-token-needed-{backend}")


@pytest.mark.parametrize(("view", "hash_"), [("Kursk", "&region=kursk"), ("whole theatre", "")])
def test_slider_change_to_repaint_time(
    browser: WebDriver, live_server: LiveServer, view: str, hash_: str
) -> None:
    """Every stop of the slider forward, then back: the time from the slider's change to the
    map's ``idle`` event after it drew the new moment (goal: 100 ms for a region, 250 ms for
    the whole theatre). Neighbouring stops are prefetched, as a person stepping would have
    them."""
    open_viewer(browser, f"{live_server.url}/map#at=2024-08-12&illustrative=1{hash_}")
    dates: list[str] = browser.execute_script("return atlas.data.dates")
    assert len(dates) >= 5
    timings = [slide_to(browser, date) for date in [*dates[1:], *reversed(dates[:-1])]]
    median = statistics.median(timings)
    report(
        f"slider change to repaint, {view} ({live_server.backend}): median {median:.0f} ms, "
        f"max {max(timings):.0f} ms over {len(timings)} changes"
    )
    assert median < 500, "the goal is 100 ms (region) and 250 ms (whole theatre)"


# --- the API docs -----------------------------------------------------------------------------


def test_docs_and_redoc_render_from_the_package(
    browser: WebDriver, live_server: LiveServer
) -> None:
    browser.get("about:blank")
    requests_made(browser)
    browser.get(f"{live_server.url}/docs")
    WebDriverWait(browser, 20).until(lambda d: len(d.find_elements("css selector", ".opblock")))
    assert len(browser.find_elements("css selector", ".opblock")) > 20
    assert "/regions/{slug}/control" in browser.page_source
    screenshot(browser, f"docs-swagger-{live_server.backend}")
    assert_clean(browser, (live_server.url,))
    browser.get(f"{live_server.url}/redoc")
    WebDriverWait(browser, 20).until(
        lambda d: "Control polygons in force at a moment" in d.page_source
    )
    screenshot(browser, f"docs-redoc-{live_server.backend}")
    assert_clean(browser, (live_server.url,))


# --- the recipe pages, from another origin ----------------------------------------------------


@pytest.fixture
def examples_site(tmp_path: Path, live_server: LiveServer) -> Iterator[str]:
    """docs/examples served by a second web server on another port, the address of the API
    in them changed to the test server's (as a reader would change it)."""
    for page in EXAMPLES.glob("*.html"):
        (tmp_path / page.name).write_text(page.read_text().replace(DOC_BASE, live_server.url))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_leaflet_example_draws_from_another_origin(
    browser: WebDriver, live_server: LiveServer, examples_site: str
) -> None:
    browser.get("about:blank")
    requests_made(browser)
    browser.get(f"{examples_site}/leaflet.html")
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return window.drawnFeatures"))
    shapes = browser.find_elements("css selector", "path.leaflet-interactive[stroke='#0072B2']")
    assert len(shapes) == 1
    assert shapes[0].get_attribute("stroke-dasharray") == "6 4"  # illustrative: dashed
    screenshot(browser, f"example-leaflet-{live_server.backend}")
    assert_clean(browser, (live_server.url, examples_site))


def test_maplibre_example_draws_from_another_origin(
    browser: WebDriver, live_server: LiveServer, examples_site: str
) -> None:
    browser.get("about:blank")
    requests_made(browser)
    browser.get(f"{examples_site}/maplibre.html")
    count = run_async(
        browser,
        """
        const map = window.map;
        for (let i = 0; i < 100; i++) {
          const found = map.loaded() &&
            map.queryRenderedFeatures({ layers: ["control-schematic"] }).length;
          if (found) return found;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return 0;
        """,
    )
    assert count >= 1
    screenshot(browser, f"example-maplibre-{live_server.backend}")
    assert_clean(browser, (live_server.url, examples_site))
