"""End-to-end in a real browser: Debian Chromium driven by Playwright against `streamlit run app.py`."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium, streamlit_server, wait_for_run

pytestmark = pytest.mark.browser
YAML = """
slo:
  default_ms: 2000
  rules: [{service: gateway, operation: "POST /checkout", ms: 3000}]
sources:
  - {name: demo, type: demo, options: {seed: 7, requests: 60000, full_trace_limit: 60000}}
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "sources.yaml").write_text(YAML)
    ARTIFACTS.mkdir(exist_ok=True)
    env = {"FAULTLINE_SOURCES": str(tmp / "sources.yaml"), "FAULTLINE_SNAPSHOT_DIR": str(tmp / "snaps")}
    with streamlit_server(env, ARTIFACTS / "e2e-streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser: object, url: str) -> object:
    context = browser.new_context(viewport={"width": 1500, "height": 1100})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(url)
    wait_for_run(page)
    return page


def _sidebar_text(page: object) -> str:
    sidebar = page.get_by_test_id("stSidebar")  # type: ignore[attr-defined]
    sidebar.get_by_text("Showing:").wait_for(timeout=60_000)  # the filter bar, not the bare page list
    return sidebar.inner_text()


def test_deep_link_on_a_fresh_server_runs_the_whole_app(browser: object, app_url: str) -> None:
    """The first session of a just-started server opens a shared deep link: it must get the app (filter
    bar, navigation), not a bare page script (Streamlit runs a ``pages/`` file directly until some session
    has called st.navigation, which is why our views live in ``views/``)."""
    page = _open(browser, app_url + "/cohorts?cohort=region%3Deu-west-1")
    assert "region = eu-west-1" in _sidebar_text(page)
    assert "Overview" in page.get_by_test_id("stSidebar").inner_text()  # type: ignore[attr-defined]


def test_overview_draws_the_incident(browser: object, app_url: str) -> None:
    started = time.monotonic()
    page = _open(browser, app_url)
    page.get_by_text("Bad requests (excess)").wait_for(timeout=90_000)  # type: ignore[attr-defined]
    page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=90_000)  # type: ignore[attr-defined]
    drawn_s = time.monotonic() - started
    (ARTIFACTS / "overview_drawn_s.txt").write_text(f"{drawn_s:.2f}\n")
    body = page.get_by_test_id("stMain").inner_text()  # type: ignore[attr-defined]
    assert "Top suspect cohort" in body
    assert "region=eu-west-1" in body and "client_version=5.2.0" in body
    assert "Traceback" not in body
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)  # type: ignore[attr-defined]


def test_brush_click_filters_every_page_and_url_reproduces_view(browser: object, app_url: str) -> None:
    page = _open(browser, app_url + "/cohorts")
    chart = page.get_by_test_id("stPlotlyChart").first  # type: ignore[attr-defined]
    chart.wait_for(timeout=90_000)
    drag = chart.locator(".nsewdrag").first.bounding_box()
    assert drag is not None
    # brush the upper band (slow requests) over the right half of the time axis
    x0, x1 = drag["x"] + drag["width"] * 0.45, drag["x"] + drag["width"] * 0.95
    y0, y1 = drag["y"] + 5, drag["y"] + drag["height"] * 0.5
    page.mouse.move(x0, y0)  # type: ignore[attr-defined]
    page.mouse.down()  # type: ignore[attr-defined]
    page.mouse.move(x1, y1, steps=8)  # type: ignore[attr-defined]
    page.mouse.up()  # type: ignore[attr-defined]
    page.get_by_text(re.compile("Selection: the brushed region")).wait_for(timeout=60_000)  # type: ignore[attr-defined]
    wait_for_run(page)
    page.screenshot(path=str(ARTIFACTS / "cohorts_brushed.png"), full_page=True)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Filter to this").first.click()  # type: ignore[attr-defined]
    wait_for_run(page)
    page.wait_for_function("() => window.location.search.includes('cohort=')", timeout=30_000)  # type: ignore[attr-defined]
    sidebar = _sidebar_text(page)
    assert "client_version = 5.2.0" in sidebar and "region = eu-west-1" in sidebar
    shared_url = page.url  # type: ignore[attr-defined]

    for path, marker in (("/overview", "Bad requests (excess)"), ("/traces", "Traces"), ("/breakers", "Breakers"),
                         ("/pools", "Pools")):
        page.get_by_role("link", name=re.compile(path.strip("/").replace("-", " "), re.I)).first.click()  # type: ignore[attr-defined]
        wait_for_run(page)
        page.get_by_text(marker).first.wait_for(timeout=60_000)  # type: ignore[attr-defined]
        assert "client_version = 5.2.0" in _sidebar_text(page), path
        assert "Traceback" not in page.get_by_test_id("stMain").inner_text()  # type: ignore[attr-defined]
        page.screenshot(path=str(ARTIFACTS / f"filtered{path.replace('/', '_')}.png"), full_page=True)  # type: ignore[attr-defined]

    fresh = _open(browser, shared_url)
    assert "client_version = 5.2.0" in _sidebar_text(fresh)
    assert "region = eu-west-1" in _sidebar_text(fresh)


def _metric_values(page: object) -> list[str]:
    return page.get_by_test_id("stMetricValue").all_inner_texts()  # type: ignore[attr-defined]


def test_snapshot_link_reopens_the_same_view(browser: object, app_url: str) -> None:
    page = _open(browser, app_url + "/?cohort=platform%3Dandroid")
    page.get_by_text("Bad requests (excess)").wait_for(timeout=90_000)  # type: ignore[attr-defined]
    wait_for_run(page)
    live_values = _metric_values(page)
    page.get_by_test_id("stPopoverButton").first.click()  # type: ignore[attr-defined]
    page.get_by_label("Title").fill("android during the incident")  # type: ignore[attr-defined]
    page.get_by_label("Notes").fill('"><img src=x onerror=alert(1)> checked payments')  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save snapshot").click()  # type: ignore[attr-defined]
    page.get_by_text("Saved. Anyone with this link").wait_for(timeout=90_000)  # type: ignore[attr-defined]
    link = page.get_by_test_id("stCode").last.inner_text().strip()  # type: ignore[attr-defined]
    assert re.search(r"\?snapshot=[0-9a-f]{32}$", link), link
    page.screenshot(path=str(ARTIFACTS / "snapshot_saved.png"), full_page=True)  # type: ignore[attr-defined]

    fresh = _open(browser, link)
    fresh.get_by_text("Read-only snapshot", exact=True).wait_for(timeout=90_000)  # type: ignore[attr-defined]
    fresh.get_by_text("Bad requests (excess)").wait_for(timeout=90_000)  # type: ignore[attr-defined]
    assert _metric_values(fresh) == live_values
    fresh.screenshot(path=str(ARTIFACTS / "snapshot_opened.png"), full_page=True)  # type: ignore[attr-defined]
    assert "platform = android" in _sidebar_text(fresh)
    fresh.get_by_role("link", name="Cohorts").first.click()  # type: ignore[attr-defined]
    wait_for_run(fresh)
    fresh.get_by_text("Read-only snapshot", exact=True).wait_for(timeout=60_000)  # type: ignore[attr-defined]
    assert "snapshot=" in fresh.url  # type: ignore[attr-defined]
