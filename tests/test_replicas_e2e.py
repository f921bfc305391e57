"""Two replicas behind the real nginx (scripts/serve.sh) in Chromium: kill the replica serving a session, and
the next action lands on the other one with the same view (the state is in the URL) and no snapshot lost."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from snapshots.store import SnapshotStore
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, free_port, require_chromium, wait_for_run

pytestmark = [pytest.mark.browser, pytest.mark.services]
NGINX = "/usr/sbin/nginx"
YAML = """
sources:
  - {name: demo, type: demo, options: {seed: 5, requests: 5000, full_trace_limit: 5000}}
"""


@dataclass(frozen=True)
class Served:
    url: str
    run_dir: Path
    replica_ports: tuple[int, ...]
    snaps: Path

    def replicas_of(self, route: str) -> list[int]:
        """The replica port that finally answered each request of this browser (its route cookie), in order.
        (A websocket is logged when it closes; the health and config calls around it are logged at once.)"""
        text = (self.run_dir / "access.log").read_text(encoding="utf-8", errors="replace")
        tried = re.findall(rf"upstream=(.*?) route={re.escape(route)} ", text)
        return [int(t.split(",")[-1].strip().rsplit(":", 1)[1]) for t in tried if ":" in t]


def _consecutive_free_ports(n: int) -> int:
    for _ in range(50):
        first = free_port()
        try:
            for p in range(first, first + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return first
        except OSError:
            continue
    raise RuntimeError("no consecutive free ports")


@contextlib.contextmanager
def _serve(tmp_path: Path, *args: str, scheme: str = "http") -> Iterator[Served]:
    """``scripts/serve.sh --replicas 2`` on free ports (``args``: more of its options), stopped afterwards."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (scripts/setup.sh --dev installs it)")
    (tmp_path / "sources.yaml").write_text(YAML)
    port, first = free_port(), _consecutive_free_ports(2)
    run_dir, snaps = tmp_path / "run", tmp_path / "snaps"
    env = {**os.environ, "FAULTLINE_SKIP_SETUP": "1", "FAULTLINE_RUN_DIR": str(run_dir),
           "FAULTLINE_COOKIE_SECRET_FILE": str(tmp_path / "cookie_secret"),
           "FAULTLINE_SOURCES": str(tmp_path / "sources.yaml"), "FAULTLINE_SNAPSHOT_DIR": str(snaps)}
    env.pop("FAULTLINE_SNAPSHOT_STORE", None)
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / f"replicas-serve-{scheme}.log").open("wb")
    proc = subprocess.Popen(["bash", "scripts/serve.sh", "--replicas", "2", "--port", str(port),
                             "--first-replica-port", str(first), *args], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1, verify=False).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve.sh did not come up; see {ARTIFACTS / f'replicas-serve-{scheme}.log'}")
            time.sleep(0.3)
        yield Served(url, run_dir, (first, first + 1), snaps)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        for name in ("access.log", "error.log"):
            if (run_dir / name).exists():
                shutil.copy(run_dir / name, ARTIFACTS / f"replicas-nginx-{scheme}-{name}")


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[Served]:
    require_chromium()
    with _serve(tmp_path) as served:
        yield served


def test_behind_tls_every_cookie_is_secure_and_xsrf_is_on(tmp_path: Path) -> None:
    """With --tls-cert/--tls-key nginx speaks HTTPS and marks the route cookie and Streamlit's own cookies
    Secure (Streamlit sees plain HTTP from nginx, so it cannot); XSRF protection is on in every replica."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    with _serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https") as served:
        response = httpx.get(served.url + "/_stcore/health", verify=ssl.create_default_context(cafile=cert))
        cookies = {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
        assert {"faultline_route", "_streamlit_xsrf"} <= set(cookies), cookies
        for name in ("faultline_route", "_streamlit_xsrf"):
            assert "secure" in cookies[name].lower().replace(" ", "").split(";"), cookies[name]
        assert "HttpOnly" in cookies["faultline_route"]
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port is refused, not served
            httpx.get(served.url.replace("https:", "http:") + "/_stcore/health", timeout=5).raise_for_status()
        for port in served.replica_ports:  # behind nginx, not instead of it: the replicas still speak plain HTTP
            assert "secure" not in httpx.get(f"http://127.0.0.1:{port}/_stcore/health").headers["set-cookie"].lower()


def test_every_replica_shares_the_cookie_secret_and_nginx_sticks_and_upgrades(served: Served) -> None:
    first = httpx.get(served.url + "/")
    cookie = first.cookies.get("faultline_route")
    assert first.status_code == 200 and cookie and "HttpOnly" in first.headers["set-cookie"]
    again = httpx.get(served.url + "/", cookies={"faultline_route": cookie})
    assert "set-cookie" not in again.headers  # set once, then kept by the browser
    for _ in range(6):
        httpx.get(served.url + "/_stcore/health", cookies={"faultline_route": cookie})
    log = (served.run_dir / "access.log").read_text()
    upstreams = re.findall(rf"upstream=(\S+) route={cookie} ", log)
    assert len(upstreams) == 8 and len(set(upstreams)) == 1  # the first request too: one browser, one replica
    secret = (served.run_dir.parent / "cookie_secret").read_text().strip()
    assert len(secret) == 64
    for port in served.replica_ports:
        environ = Path(f"/proc/{(served.run_dir / f'replica-{port}.pid').read_text().strip()}/environ").read_bytes()
        assert f"STREAMLIT_SERVER_COOKIE_SECRET={secret}".encode() in environ.split(b"\0")
        cmdline = Path(f"/proc/{(served.run_dir / f'replica-{port}.pid').read_text().strip()}/cmdline").read_bytes()
        assert secret.encode() not in cmdline  # not visible in `ps`


def test_killing_the_serving_replica_keeps_the_view_and_the_snapshots(served: Served) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page: Any = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
        page.goto(served.url + "/cohorts?cohort=region%3Deu-west-1")
        wait_for_run(page)
        page.get_by_test_id("stSidebar").get_by_text("Showing:").wait_for(timeout=90_000)
        assert "region = eu-west-1" in page.get_by_test_id("stSidebar").inner_text()
        page.get_by_test_id("stPopoverButton").first.click()
        page.get_by_label("Title").fill("before the replica died")
        page.get_by_role("button", name="Save snapshot").click()
        page.get_by_text("Saved. Anyone with this link").wait_for(timeout=90_000)
        link = page.get_by_test_id("stCode").last.inner_text().strip()
        found = re.search(r"snapshot=([0-9a-f]{32})", link)
        assert found, link
        sid = found.group(1)
        page.keyboard.press("Escape")

        route = next(c["value"] for c in page.context.cookies() if c["name"] == "faultline_route")
        assert len(set(served.replicas_of(route))) == 1  # sticky so far
        serving = served.replicas_of(route)[-1]
        before_kill = len(served.replicas_of(route))
        survivor = next(p for p in served.replica_ports if p != serving)
        os.kill(int((served.run_dir / f"replica-{serving}.pid").read_text()), signal.SIGKILL)

        # the browser notices and reconnects through nginx to the survivor (a new, empty session there)
        deadline = time.monotonic() + 60
        while survivor not in served.replicas_of(route)[before_kill:] and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        survivor_log = served.run_dir / f"replica-{survivor}.log"
        lines_before = len(survivor_log.read_text().splitlines())
        # the next action, a click on another page in the sidebar, runs on the survivor (a new session there, which
        # knows nothing of this one): the link itself carries the view (Streamlit's own links drop the query string)
        page.get_by_test_id("stSidebar").get_by_role("link", name="Snapshots").first.click()
        deadline = time.monotonic() + 60
        while len(survivor_log.read_text().splitlines()) == lines_before and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert len(survivor_log.read_text().splitlines()) > lines_before, "the click did not reach the survivor"
        wait_for_run(page)
        page.get_by_text("Saved snapshots").wait_for(timeout=90_000)
        page.get_by_test_id("stSidebar").get_by_text("Showing:").wait_for(timeout=90_000)
        assert "region = eu-west-1" in page.get_by_test_id("stSidebar").inner_text()  # the same view
        assert "/snapshots" in page.url
        page.screenshot(path=str(ARTIFACTS / "replicas-after-kill.png"), full_page=True)
        after = served.replicas_of(route)[before_kill:]
        assert after and after[-1] == survivor and set(after) <= {serving, survivor}
        assert "cohort=region%3Deu-west-1" in page.url or "cohort=region=eu-west-1" in page.url
        # the list is a canvas grid; its accessible (hidden) cells carry the text
        page.get_by_test_id("stMain").get_by_text("before the replica died").first.wait_for(state="attached",
                                                                                         timeout=30_000)
        assert [i.id for i in SnapshotStore(served.snaps).list()] == [sid]
        browser.close()
