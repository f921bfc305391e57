"""Seconds from `streamlit run app.py` to the Overview drawn in Chromium, on the repo's sources.yaml.

    .venv/bin/python -m bench.startup_time
"""

from __future__ import annotations

import json
import time

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_run


def main() -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    started = time.perf_counter()
    with streamlit_server({}, ARTIFACTS / "startup-streamlit.log") as url:
        healthy = time.perf_counter() - started
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(url)
            wait_for_run(page)
            page.get_by_text("Bad requests (excess)").wait_for(timeout=180_000)
            page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=180_000)
            drawn = time.perf_counter() - started
            started_warm = time.perf_counter()
            page.reload()
            wait_for_run(page)
            page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=180_000)
            warm = time.perf_counter() - started_warm
            browser.close()
    print(json.dumps({"server_healthy_s": round(healthy, 2), "overview_drawn_cold_s": round(drawn, 2),
                      "overview_drawn_warm_reload_s": round(warm, 2)}))


if __name__ == "__main__":
    main()
