"""The view state in a real browser (Debian Chromium + Playwright against `streamlit run app.py`):
every box select applies, out-of-window links show a notice and no error box on every page, a Cohorts
URL with outcome + brush reopens the same, and a snapshot link opens its page with its state."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium, streamlit_server, wait_for_run

pytestmark = pytest.mark.browser
YAML = """
slo:
  default_ms: 2000
  rules: [{service: gateway, operation: "POST /checkout", ms: 3000}]
sources:
  - {name: demo, type: demo, options: {seed: 7, requests: 30000, full_trace_limit: 30000}}
"""
PAGES = ("", "cohorts", "traces", "service-map", "breakers", "pools", "snapshots", "sources")
OUT_OF_WINDOW = "from=2026-03-14T01%3A50%3A00Z&to=2026-03-14T01%3A55%3A00Z"
BRUSH = "2026-03-14T02:30:00Z~2026-03-14T02:50:00Z~9000.0~13000.0"
CAPTION = re.compile(r"Selection: the brushed region (\d\d:\d\d–\d\d:\d\d) UTC")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("e2e_view_state")
    (tmp / "sources.yaml").write_text(YAML)
    ARTIFACTS.mkdir(exist_ok=True)
    env = {"FAULTLINE_SOURCES": str(tmp / "sources.yaml"), "FAULTLINE_SNAPSHOT_DIR": str(tmp / "snaps")}
    with streamlit_server(env, ARTIFACTS / "e2e-view-state-streamlit.log") as url:
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
    page.goto(url, timeout=120_000)
    wait_for_run(page)
    return page


def _no_error_box(page: object) -> None:
    text = page.get_by_test_id("stApp").inner_text()  # type: ignore[attr-defined]
    assert "This app has encountered an error" not in text and "Traceback" not in text
    assert page.get_by_test_id("stException").count() == 0  # type: ignore[attr-defined]


def _brush(page: object, fx0: float, fx1: float, fy0: float = 0.02, fy1: float = 0.5) -> str:
    """Drag a box over the latency scatter (fractions of its plot area); returns the caption it produced."""
    chart = page.get_by_test_id("stPlotlyChart").first  # type: ignore[attr-defined]
    chart.wait_for(timeout=90_000)
    before = _caption(page)
    drag = chart.locator(".nsewdrag").first.bounding_box()
    assert drag is not None
    page.mouse.move(drag["x"] + drag["width"] * fx0, drag["y"] + drag["height"] * fy0)  # type: ignore[attr-defined]
    page.mouse.down()  # type: ignore[attr-defined]
    page.mouse.move(drag["x"] + drag["width"] * fx1, drag["y"] + drag["height"] * fy1, steps=8)  # type: ignore[attr-defined]
    page.mouse.up()  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "before => { const m = [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
        ".map(e => e.innerText).find(t => t.startsWith('Selection:')); return m && m !== before; }",
        arg=before, timeout=60_000)
    wait_for_run(page)
    return _caption(page)


def _caption(page: object) -> str:
    texts = page.get_by_test_id("stCaptionContainer").all_inner_texts()  # type: ignore[attr-defined]
    return next((t for t in texts if t.startswith("Selection:")), "")


def test_consecutive_box_selects_all_apply(browser: object, app_url: str) -> None:
    page = _open(browser, app_url + "/cohorts")
    seen = []
    for i, (fx0, fx1) in enumerate(((0.45, 0.95), (0.10, 0.40), (0.55, 0.75))):
        caption = _brush(page, fx0, fx1)
        found = CAPTION.search(caption)
        assert found, f"box {i + 1} was not applied: {caption!r}"
        seen.append(found.group(1))
        assert "brush=" in page.url  # type: ignore[attr-defined]
        page.screenshot(path=str(ARTIFACTS / f"view_state_box_{i + 1}.png"), full_page=True)  # type: ignore[attr-defined]
    assert len(set(seen)) == 3, seen  # three boxes, three selections


@pytest.mark.parametrize("path", PAGES)
def test_an_out_of_window_link_shows_a_notice_and_no_error_on_every_page(
        browser: object, app_url: str, path: str) -> None:
    page = _open(browser, f"{app_url}/{path}?{OUT_OF_WINDOW}")
    sidebar = page.get_by_test_id("stSidebar")  # type: ignore[attr-defined]
    sidebar.get_by_text("lies outside the data").wait_for(timeout=60_000)
    wait_for_run(page)
    _no_error_box(page)
    assert "from=" not in page.url  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / f"view_state_out_of_window_{path or 'overview'}.png"))  # type: ignore[attr-defined]


def test_a_cohorts_url_with_outcome_and_brush_reopens_the_same(browser: object, app_url: str) -> None:
    page = _open(browser, app_url + f"/cohorts?outcome=slow&brush={BRUSH}")
    page.get_by_text(CAPTION).wait_for(timeout=90_000)  # type: ignore[attr-defined]
    assert "02:30–02:50" in _caption(page)
    assert page.get_by_role("radio", name="slow only").is_checked()  # type: ignore[attr-defined]
    _no_error_box(page)
    page.get_by_role("radio", name="errors only").check(force=True)  # type: ignore[attr-defined]
    wait_for_run(page)
    page.wait_for_function("() => window.location.search.includes('outcome=error')", timeout=30_000)  # type: ignore[attr-defined]
    shared = page.url  # type: ignore[attr-defined]
    assert "brush=" in shared
    fresh = _open(browser, shared)
    fresh.get_by_text(CAPTION).wait_for(timeout=90_000)  # type: ignore[attr-defined]
    assert "02:30–02:50" in _caption(fresh)
    assert fresh.get_by_role("radio", name="errors only").is_checked()  # type: ignore[attr-defined]
    fresh.screenshot(path=str(ARTIFACTS / "view_state_cohorts_url.png"), full_page=True)  # type: ignore[attr-defined]


def test_a_snapshot_link_opens_its_page_with_its_state(browser: object, app_url: str) -> None:
    page = _open(browser, app_url + f"/cohorts?outcome=slow&brush={BRUSH}")
    page.get_by_text(CAPTION).wait_for(timeout=90_000)  # type: ignore[attr-defined]
    live_caption = _caption(page)
    page.get_by_test_id("stPopoverButton").first.click()  # type: ignore[attr-defined]
    page.get_by_label("Title").fill("slow band after the deploy")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save snapshot").click()  # type: ignore[attr-defined]
    page.get_by_text("Saved. Anyone with this link").wait_for(timeout=90_000)  # type: ignore[attr-defined]
    link = page.get_by_test_id("stCode").last.inner_text().strip()  # type: ignore[attr-defined]
    assert re.search(r"/cohorts\?snapshot=[0-9a-f]{32}$", link), link
    snapshot_id = link.rsplit("=", 1)[1]

    for url in (link, f"{app_url}/?snapshot={snapshot_id}"):  # the page's link, and one that names no page
        fresh = _open(browser, url)
        fresh.get_by_text("Read-only snapshot", exact=True).wait_for(timeout=90_000)  # type: ignore[attr-defined]
        fresh.get_by_text(CAPTION).wait_for(timeout=90_000)  # type: ignore[attr-defined]
        assert "/cohorts" in fresh.url  # type: ignore[attr-defined]
        assert _caption(fresh) == live_caption
        assert fresh.get_by_role("radio", name="slow only").is_checked()  # type: ignore[attr-defined]
        _no_error_box(fresh)
    fresh.screenshot(path=str(ARTIFACTS / "view_state_snapshot_cohorts.png"), full_page=True)  # type: ignore[attr-defined]


def test_unknown_values_in_a_link_are_named_and_shown_as_applied(browser: object, app_url: str) -> None:
    page = _open(browser, app_url + "/?service=nosuch&cohort=region%3D")
    sidebar = page.get_by_test_id("stSidebar")  # type: ignore[attr-defined]
    sidebar.get_by_text("No span of service “nosuch”").wait_for(timeout=60_000)
    wait_for_run(page)
    _no_error_box(page)
    text = sidebar.inner_text()
    assert "No request has region = “”" in text
    assert "Showing: region = “” AND service = nosuch" in text  # no stray ** from empty emphasis
    # the control shows what is applied
    assert sidebar.get_by_role("combobox", name="Service").input_value() == "nosuch"
    sidebar.get_by_text("Add a cohort chip").click()
    sidebar.get_by_text("Choose an attribute and one of its values, then Add.").wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "view_state_unknown_values.png"), full_page=True)  # type: ignore[attr-defined]
