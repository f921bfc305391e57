"""Snapshots in a real browser: open by link, keep the id across page navigation, download the HTML export."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapshots.capture import build_snapshot
from snapshots.store import SnapshotStore
from tests import snapshot_data as sd
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium, streamlit_server, wait_for_run

pytestmark = pytest.mark.browser
YAML = """
sources:
  - {name: demo, type: demo, options: {seed: 5, requests: 5000, full_trace_limit: 5000}}
"""


def test_snapshot_link_survives_navigation_and_exports(tmp_path: Path) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    (tmp_path / "sources.yaml").write_text(YAML)
    store = SnapshotStore(tmp_path / "snaps")
    sid = store.create(build_snapshot(sd.all_frames(50), title="Checkout <i>slow</i>", notes="see pool main"), "e2e")
    ARTIFACTS.mkdir(exist_ok=True)
    env = {"FAULTLINE_SOURCES": str(tmp_path / "sources.yaml"), "FAULTLINE_SNAPSHOT_DIR": str(tmp_path / "snaps")}
    with streamlit_server(env, ARTIFACTS / "snapshots-e2e.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True).new_page()
        page.goto(f"{url}/snapshots?snapshot={sid}")
        wait_for_run(page)
        main = page.get_by_test_id("stMain")
        assert "Open snapshot" in main.inner_text()
        assert "Checkout <i>slow</i>" in main.inner_text()  # shown as text, not markup
        with page.expect_download() as download:
            main.get_by_role("button", name="Export HTML (postmortem)").first.click()
        saved = tmp_path / "export.html"
        download.value.save_as(saved)
        assert "Checkout &lt;i&gt;slow&lt;/i&gt;" in saved.read_text(encoding="utf-8")
        page.get_by_test_id("stSidebar").get_by_text("Overview").first.click()
        wait_for_run(page)
        page.wait_for_timeout(500)
        assert f"snapshot={sid}" in page.url  # still in snapshot mode after navigation
        page.get_by_test_id("stSidebar").get_by_text("Snapshots").first.click()
        wait_for_run(page)
        assert "Open snapshot" in page.get_by_test_id("stMain").inner_text()
        browser.close()
