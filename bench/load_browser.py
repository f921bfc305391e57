"""Bounded load run: N concurrent browser sessions on the demo incident.

    .venv/bin/python -m bench.load_browser --sessions 10 --rounds 3

One warm-up session fills the shared caches; then each of N sessions (its own browser context = its
own Streamlit session) opens the Overview and switches Cohorts ↔ Overview ``--rounds`` times, all at
once. Reports the first-load times, p50/p95 seconds per interaction (click → script finished and the
view drawn) and the server's resident memory after warm-up and after the run, per session. Everything
stays on 127.0.0.1; Chromium renders all N tabs on the same 2 cores, so the figures include its cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, streamlit_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

YAML = "sources:\n  - {name: demo, type: demo, options: {seed: 7, requests: %d}}\n"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _server_pid(port_url: str) -> int:
    port = port_url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "streamlit" in cmd and f"--server.port={port}" in cmd:
                return int(proc.name)
    raise RuntimeError("streamlit server process not found")


async def _wait(page: Page) -> None:
    await page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']").wait_for(
        state="attached", timeout=120_000)
    await page.wait_for_timeout(200)
    await page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=120_000)


async def _session(browser: Browser, url: str, rounds: int, timings: list[float], first: list[float]) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    started = time.perf_counter()
    await page.goto(url)
    await _wait(page)
    await page.get_by_text("Bad requests (excess)").wait_for(timeout=120_000)
    first.append(time.perf_counter() - started)
    for _ in range(rounds):
        for name, marker in (("Cohorts", "Who is affected"), ("Overview", "Bad requests (excess)")):
            started = time.perf_counter()
            await page.get_by_role("link", name=name).first.click()
            await _wait(page)
            await page.get_by_text(marker).first.wait_for(timeout=120_000)
            timings.append(time.perf_counter() - started)
    await context.close()


async def run(sessions: int, rounds: int, requests: int) -> dict[str, float]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sources.yaml"
        cfg.write_text(YAML % requests)
        ARTIFACTS.mkdir(exist_ok=True)
        with streamlit_server({"FAULTLINE_SOURCES": str(cfg)}, ARTIFACTS / "load-streamlit.log") as url:
            pid = _server_pid(url)
            timings: list[float] = []
            first: list[float] = []
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                await _session(browser, url, 0, [], [])  # warm the shared caches (demo frames, analysis)
                rss_before = _rss_mb(pid)
                wall = time.perf_counter()
                await asyncio.gather(*(_session(browser, url, rounds, timings, first) for _ in range(sessions)))
                wall = time.perf_counter() - wall
                rss_after = _rss_mb(pid)
                await browser.close()
    ordered = sorted(timings)
    return {
        "sessions": sessions, "interactions": len(timings), "wall_s": round(wall, 2),
        "first_load_p50_s": round(statistics.median(first), 3), "first_load_max_s": round(max(first), 3),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "server_rss_warm_mb": round(rss_before, 1), "server_rss_after_mb": round(rss_after, 1),
        "rss_per_session_mb": round((rss_after - rss_before) / sessions, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.sessions, args.rounds, args.requests)), indent=2))


if __name__ == "__main__":
    main()
