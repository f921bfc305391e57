"""Every page at desktop (1440x900) and phone (390x844) size in Debian's Chromium, saved under
test-artifacts/screenshots/ for a person to look at; checks what a screenshot review found (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium, streamlit_server, wait_for_run
from ui.routes import ROUTES

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "screenshots"
VIEWPORTS = {"desktop": (1440, 900), "phone": (390, 844)}
MAX_SHOT_HEIGHT = 9_000
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
    tmp = tmp_path_factory.mktemp("shots")
    (tmp / "sources.yaml").write_text(YAML)
    SHOTS.mkdir(parents=True, exist_ok=True)
    env = {"FAULTLINE_SOURCES": str(tmp / "sources.yaml"), "FAULTLINE_SNAPSHOT_DIR": str(tmp / "snaps")}
    with streamlit_server(env, ARTIFACTS / "screenshots-streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.mark.parametrize("size", list(VIEWPORTS))
@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_screenshot_every_page(browser: object, app_url: str, route: object, size: str) -> None:
    width, height = VIEWPORTS[size]
    context = browser.new_context(viewport={"width": width, "height": height})  # type: ignore[attr-defined]
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if urlsplit(r.url).hostname not in ("127.0.0.1", None) else None)
    try:
        page.goto(f"{app_url}/{route.url_path}")  # type: ignore[attr-defined]
        wait_for_run(page)
        page.get_by_test_id("stMain").get_by_role("heading", name=route.title).first.wait_for(timeout=60_000)  # type: ignore[attr-defined]
        # a rerun can still be filling placeholders after the script finished
        page.wait_for_function("() => !document.querySelector('[data-testid=stSkeleton]')", timeout=60_000)
        if page.locator(".js-plotly-plot").count():
            page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=30_000)
        page.wait_for_timeout(800)  # plotly's resize pass
        page.screenshot(path=str(SHOTS / f"{route.name}-{width}x{height}-first-screen.png"))
        assert page.get_by_test_id("stException").count() == 0
        assert outside == [], "the app fetches nothing from outside (page icon, fonts)"
        if route.name == "overview" and size == "phone":
            suspect = page.get_by_text("Top suspect cohort").bounding_box()
            assert suspect is not None and suspect["y"] + suspect["height"] <= height, "top suspect on the first screen"
        legends = page.locator(".js-plotly-plot .legend")
        for i in range(legends.count()):
            box, plot = legends.nth(i).bounding_box(), page.locator(".js-plotly-plot").nth(i).bounding_box()
            if box and plot:  # below the plot area, where the toolbar (top right) cannot cover it
                assert box["y"] > plot["y"] + 40, f"legend {i} sits under the toolbar"
        # Streamlit scrolls inside its main container, so a "full page" shot needs a viewport that tall
        tall = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                             "'[data-testid=stMain], [data-testid=stAppViewContainer]')].map(e => e.scrollHeight))")
        page.set_viewport_size({"width": width, "height": min(int(tall), MAX_SHOT_HEIGHT)})
        page.wait_for_timeout(800)
        page.screenshot(path=str(SHOTS / f"{route.name}-{width}x{height}.png"))
    finally:
        context.close()
