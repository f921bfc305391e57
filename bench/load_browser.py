"""Burst load run: N browser sessions open the same incident link at once (or within ``--spread-s``).

    .venv/bin/python -m bench.load_browser --sessions 30 --rounds 2 [--spread-s 60] [--requests 200000]

1. One warm-up session fills the shared caches (the demo's frames and the analyses of its window).
2. A **lone session** opens the link, then visits every page from the sidebar: its first view is the
   yardstick, and the bytes the server sends over the websocket per page (figure JSON, dataframes,
   everything) are the page's payload.
3. The **burst**: N sessions (each its own browser context, so its own Streamlit session) open the link,
   starting evenly within ``--spread-s`` (0: all at once), then switch Cohorts ↔ Overview ``--rounds``
   times. Every session stays open until the last has finished, so the server then holds all N.

Reports the first-view p50/p95/max of the burst and its ratio to the lone session's, p50/p95 seconds
per interaction (click → script finished and the view drawn), and the server's resident memory: after
warm-up, with all N sessions open, and per extra session. Everything stays on 127.0.0.1; Chromium draws
all N tabs on the same cores, so the figures include its cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, streamlit_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

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
        state="attached", timeout=300_000)
    await page.wait_for_timeout(200)
    await page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=300_000)


FIRST_VIEW_MARKER = "Bad requests (excess)"  # the Overview's headline: the first view is drawn
TOUR = ("Cohorts", "Traces", "Service map", "Breakers", "Pools", "Snapshots", "Sources")


@dataclass
class _Burst:
    first_s: list[float] = field(default_factory=list)
    interaction_s: list[float] = field(default_factory=list)
    done: int = 0
    all_done: asyncio.Event = field(default_factory=asyncio.Event)


async def _open(browser: Browser, url: str, received: list[int] | None = None) -> tuple[BrowserContext, Page, float]:
    """A new session on ``url`` and its first view (seconds); ``received[0]`` counts the websocket bytes sent to it."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(300_000)  # a burst of N tabs on the same cores: the figure, not a timeout
    page = await context.new_page()
    if received is not None:
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.__setitem__(
            0, received[0] + len(payload))))
    started = time.perf_counter()
    await page.goto(url)
    await _wait(page)
    await page.get_by_text(FIRST_VIEW_MARKER).wait_for(timeout=300_000)
    return context, page, time.perf_counter() - started


async def _click(page: Page, name: str) -> float:
    started = time.perf_counter()
    await page.get_by_role("link", name=name).first.click()
    await _wait(page)
    return time.perf_counter() - started


async def _lone(browser: Browser, url: str) -> tuple[float, dict[str, int]]:
    """The lone session's first view (seconds) and the websocket bytes the server sent per page."""
    received = [0]
    context, page, first = await _open(browser, url, received)
    await page.wait_for_timeout(500)  # late messages (fragments, forward messages) belong to this page
    payload = {"Overview": received[0]}
    for name in TOUR:
        received[0] = 0
        await _click(page, name)
        await page.wait_for_timeout(500)
        payload[name] = received[0]
    await context.close()
    return first, payload


async def _session(browser: Browser, url: str, rounds: int, delay_s: float, burst: _Burst, sessions: int) -> None:
    await asyncio.sleep(delay_s)
    context, page, first = await _open(browser, url)
    burst.first_s.append(first)
    for _ in range(rounds):
        for name, marker in (("Cohorts", "Who is affected"), ("Overview", FIRST_VIEW_MARKER)):
            seconds = await _click(page, name)
            await page.get_by_text(marker).first.wait_for(timeout=300_000)
            burst.interaction_s.append(seconds)
    burst.done += 1
    if burst.done == sessions:
        burst.all_done.set()
    await burst.all_done.wait()  # hold the session open: the server holds all N at once
    await context.close()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


async def run(sessions: int, rounds: int, requests: int, spread_s: float, link: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sources.yaml"
        cfg.write_text(YAML % requests)
        ARTIFACTS.mkdir(exist_ok=True)
        with streamlit_server({"FAULTLINE_SOURCES": str(cfg)}, ARTIFACTS / "load-streamlit.log") as base:
            pid = _server_pid(base)
            url = base + link
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context, _, _ = await _open(browser, url)  # warm the shared caches (demo frames, analyses)
                await context.close()
                lone_s, payload = await _lone(browser, url)
                rss_before = _rss_mb(pid)
                burst = _Burst()
                wall = time.perf_counter()
                await asyncio.gather(*(_session(browser, url, rounds, spread_s * i / max(1, sessions - 1), burst,
                                                sessions) for i in range(sessions)))
                wall = time.perf_counter() - wall
                rss_held = _rss_mb(pid)  # sampled before the last contexts close: all N sessions open
                await browser.close()
    return {
        "requests": requests, "sessions": sessions, "spread_s": spread_s, "link": link,
        "lone_first_view_s": round(lone_s, 3),
        "burst_first_view_p50_s": round(statistics.median(burst.first_s), 3),
        "burst_first_view_p95_s": round(_p95(burst.first_s), 3),
        "burst_first_view_max_s": round(max(burst.first_s), 3),
        "burst_p95_over_lone": round(_p95(burst.first_s) / lone_s, 2),
        "interactions": len(burst.interaction_s), "wall_s": round(wall, 2),
        "interaction_p50_s": round(statistics.median(burst.interaction_s), 3) if burst.interaction_s else None,
        "interaction_p95_s": round(_p95(burst.interaction_s), 3) if burst.interaction_s else None,
        "server_rss_warm_mb": round(rss_before, 1), "server_rss_all_open_mb": round(rss_held, 1),
        "rss_per_extra_session_mb": round((rss_held - rss_before) / sessions, 1),
        "page_payload_bytes": payload,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--spread-s", type=float, default=0.0, help="start the sessions evenly within this many s")
    parser.add_argument("--link", default="/", help="the incident link every session opens (path and query)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.sessions, args.rounds, args.requests, args.spread_s, args.link)),
                     indent=2))


if __name__ == "__main__":
    main()
