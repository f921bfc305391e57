"""A trace source dies mid-session: the page keeps its last good data behind a "stale since" badge,
and the panels fed by the other source keep working (real Zipkin-API server, real browser)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, require_chromium, streamlit_server, wait_for_run
from tests.replay_server import ReplayServer
from tests.trace_payloads import spans_from_frame, zipkin_document

pytestmark = pytest.mark.browser
YAML = """
window: {{start: 2026-03-14T02:00:00Z, end: 2026-03-14T03:00:00Z}}
slo: {{default_ms: 2000}}
sources:
  - {{name: demo, type: demo, options: {{seed: 5, requests: 20000, kinds: [breakers, pools, pool_holders, events]}}}}
  - {{name: zipkin, type: zipkin, timeout_s: 2, options: {{url: "{url}"}}}}
"""


def _zipkin_traces(n_traces: int) -> list[list[dict[str, object]]]:
    """Demo traces written as Zipkin v2 JSON, the way a Zipkin server answers /api/v2/traces."""
    from connectors.demo import demo_frames

    spans = demo_frames(seed=5, requests=20_000, full_trace_limit=20_000)["spans"]
    keep = spans.filter(pl.col("is_root")).sort("start").gather_every(max(1, 20_000 // n_traces)).select("trace_id")
    chosen = spans.join(keep, on="trace_id", how="semi")
    return [zipkin_document(spans_from_frame(chosen))]


def serve_forever() -> None:
    """Entry point of the Zipkin stand-in process: prints its URL, then serves until killed."""
    server = ReplayServer()
    server.route("/api/v2/services", ["gateway", "payments"])
    server.route("/api/v2/traces", _zipkin_traces(1500))
    server.start()
    print(server.url, flush=True)
    threading.Event().wait()


@pytest.fixture()
def zipkin() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A Zipkin-API server in its own process, so killing it drops every open connection, as a crash does."""
    proc = subprocess.Popen([sys.executable, "-c", "from tests.test_e2e_stale import serve_forever; serve_forever()"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        assert url.startswith("http://127.0.0.1:"), "the Zipkin stand-in did not start"
        yield url, proc
    finally:
        proc.kill()
        proc.wait(10)


def test_dead_source_shows_stale_badge_and_the_rest_works(zipkin: tuple[str, subprocess.Popen[str]],
                                                          tmp_path: Path) -> None:
    zipkin_url, zipkin_proc = zipkin
    require_chromium()
    from playwright.sync_api import sync_playwright

    config = tmp_path / "sources.yaml"
    config.write_text(YAML.format(url=zipkin_url))
    ARTIFACTS.mkdir(exist_ok=True)
    env = {"FAULTLINE_SOURCES": str(config), "FAULTLINE_DEADLINE_S": "4"}
    with streamlit_server(env, ARTIFACTS / "e2e-stale-streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(url)
        wait_for_run(page)
        page.get_by_text("Bad requests (excess)").wait_for(timeout=90_000)
        assert "Degraded" not in page.get_by_test_id("stMain").inner_text(), "no degraded notice while Zipkin is up"
        main = page.get_by_test_id("stMain")
        assert "stale since" not in main.inner_text()

        zipkin_proc.kill()  # the backend dies mid-session
        zipkin_proc.wait(10)
        page.get_by_role("button", name="Reload data").click()
        wait_for_run(page)
        page.get_by_text("Stale since").first.wait_for(timeout=60_000)
        body = main.inner_text()
        assert "Bad requests (excess)" in body, "the last good data must still be drawn"
        assert "zipkin" in body and "Traceback" not in body
        page.screenshot(path=str(ARTIFACTS / "stale_overview.png"), full_page=True)

        page.get_by_role("link", name="Breakers").click()
        wait_for_run(page)
        page.get_by_text("Breakers").first.wait_for(timeout=60_000)
        breakers_body = main.inner_text()
        assert "open right now" in breakers_body and "When they were open" in breakers_body, \
            "breakers come from the healthy source and must still show"
        assert "No circuit-breaker data" not in breakers_body
        assert "Traceback" not in breakers_body
        browser.close()
