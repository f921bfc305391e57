"""Sign-in in Chromium against a real OpenID Connect provider (``oidc-provider`` from npm, tests/oidc/) on 127.0.0.1.

Signed out -> the sign-in page; the allowed user -> the page, and a snapshot taken names them as author; the user
outside the allowed domain -> the refusal. No configured secret ever reaches a rendered page or a saved snapshot.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from snapshots.store import SnapshotStore
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, free_port, require_chromium, wait_for_run

pytestmark = pytest.mark.browser
OIDC_DIR = REPO / "tests" / "oidc"
ALLOWED = "ana@example.com"
REFUSED = "mallory@elsewhere.test"
YAML = """
auth: {allow_domains: [example.com]}
sources:
  - {name: demo, type: demo, options: {seed: 5, requests: 5000, full_trace_limit: 5000}}
"""


@dataclass(frozen=True)
class SignInSetup:
    app_url: str
    snapshot_dir: Path
    client_secret: str
    cookie_secret: str


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early; see {log_path}")
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not become ready; see {log_path}")


@contextmanager
def _process(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path, ready_url: str,
             what: str) -> Iterator[None]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(ready_url, proc, log_path, what)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def signin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInSetup]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (scripts/setup.sh --dev installs it and tests/oidc's npm packages)")
    require_chromium()
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        npm = shutil.which("npm")
        assert npm, "npm is missing: scripts/setup.sh --dev runs `npm ci` in tests/oidc"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, timeout=300)
    tmp = tmp_path_factory.mktemp("signin")
    ARTIFACTS.mkdir(exist_ok=True)
    op_port, app_port = free_port(), free_port()
    issuer, app_url = f"http://127.0.0.1:{op_port}", f"http://127.0.0.1:{app_port}"
    client_secret, cookie_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    (tmp / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "{app_url}/oauth2callback"\n'
        f'cookie_secret = "{cookie_secret}"\n'
        'client_id = "faultline"\n'
        f'client_secret = "{client_secret}"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
        # oidc-provider knows the standard prompts only (not Streamlit's default select_account)
        'client_kwargs = { prompt = "login" }\n', encoding="utf-8")
    (tmp / "sources.yaml").write_text(YAML, encoding="utf-8")
    op_env = {"OIDC_PORT": str(op_port), "OIDC_CLIENT_ID": "faultline", "OIDC_CLIENT_SECRET": client_secret,
              "OIDC_REDIRECT_URI": f"{app_url}/oauth2callback", "OIDC_POST_LOGOUT_URI": app_url}
    app_cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
               f"--server.port={app_port}", "--server.address=127.0.0.1", "--server.fileWatcherType=none",
               "--browser.gatherUsageStats=false", f"--secrets.files={tmp / 'secrets.toml'}"]
    app_env = {"FAULTLINE_SOURCES": str(tmp / "sources.yaml"), "FAULTLINE_SNAPSHOT_DIR": str(tmp / "snaps")}
    with _process([node, "provider.mjs"], OIDC_DIR, op_env, ARTIFACTS / "oidc-provider.log",
                  f"{issuer}/.well-known/openid-configuration", "the OpenID provider"), \
         _process(app_cmd, REPO, app_env, ARTIFACTS / "signin-app.log", f"{app_url}/_stcore/health", "streamlit"):
        yield SignInSetup(app_url, tmp / "snaps", client_secret, cookie_secret)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _sign_in(browser: object, setup: SignInSetup, login: str, link: str = "") -> object:
    """A fresh browser context that opened ``link``, signed in as ``login`` through the provider's pages."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()  # type: ignore[attr-defined]
    page.goto(setup.app_url + link)
    wait_for_run(page)
    main = page.get_by_test_id("stMain")
    assert "Sign in to continue" in main.inner_text()
    assert "Bad requests" not in main.inner_text()
    main.get_by_role("button", name="Sign in").click()
    page.wait_for_url("http://127.0.0.1:*/interaction/**", timeout=30_000)
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any-password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click(timeout=30_000)  # the consent page
    page.wait_for_url(f"{setup.app_url}/**", timeout=30_000)
    wait_for_run(page)
    return page


def test_signed_out_sees_the_sign_in_page_even_on_a_snapshot_link(browser: object, signin: SignInSetup) -> None:
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    page.goto(f"{signin.app_url}/snapshots?snapshot={'a' * 32}")
    wait_for_run(page)
    main = page.get_by_test_id("stMain").inner_text()
    assert "Sign in to continue" in main
    assert "Open snapshot" not in main and "Read-only snapshot" not in main
    cookies = {c["name"] for c in page.context.cookies()}
    assert "_streamlit_xsrf" in cookies  # XSRF protection is on
    page.context.close()


def test_after_sign_in_the_link_that_was_opened_opens(browser: object, signin: SignInSetup) -> None:
    """st.login comes back to the start page; the link the user followed (page and query) must come back too."""
    link = f"/snapshots?snapshot={'b' * 32}"
    page = _sign_in(browser, signin, ALLOWED, link)
    page.wait_for_url(f"{signin.app_url}{link}", timeout=30_000)  # type: ignore[attr-defined]
    wait_for_run(page)
    main = page.get_by_test_id("stMain").inner_text()  # type: ignore[attr-defined]
    assert "Sign in to continue" not in main and "b" * 32 in main, main  # the snapshot page answers for that id
    assert "faultline_return_to" not in {c["name"] for c in page.context.cookies()}  # type: ignore[attr-defined]
    page.context.close()  # type: ignore[attr-defined]


def test_allowed_user_gets_the_page_and_is_the_snapshot_author(browser: object, signin: SignInSetup) -> None:
    page = _sign_in(browser, signin, ALLOWED)
    page.get_by_text("Bad requests (excess)").wait_for(timeout=90_000)  # type: ignore[attr-defined]
    assert f"Signed in as {ALLOWED}" in page.get_by_test_id("stSidebar").inner_text()  # type: ignore[attr-defined]
    page.get_by_test_id("stPopoverButton").first.click()  # type: ignore[attr-defined]
    page.get_by_label("Title").fill("signed-in snapshot")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save snapshot").click()  # type: ignore[attr-defined]
    page.get_by_text("Saved. Anyone with this link").wait_for(timeout=90_000)  # type: ignore[attr-defined]
    rendered = [page.content()]  # type: ignore[attr-defined]
    page.get_by_test_id("stSidebar").get_by_text("Sources").first.click()  # type: ignore[attr-defined]
    wait_for_run(page)
    sources_text = page.get_by_test_id("stMain").inner_text()  # type: ignore[attr-defined]
    assert "Sign-in is on (OpenID Connect): only e-mail addresses at example.com" in sources_text
    rendered.append(page.content())  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "signin_allowed.png"), full_page=True)  # type: ignore[attr-defined]

    infos = SnapshotStore(signin.snapshot_dir).list()
    assert [(i.title, i.author) for i in infos] == [("signed-in snapshot", ALLOWED)]
    saved = b"".join(p.read_bytes() for p in signin.snapshot_dir.rglob("*") if p.is_file())
    app_log = (ARTIFACTS / "signin-app.log").read_bytes()
    assert saved and b"snapshot_audit" in app_log  # something was scanned
    for secret in (signin.client_secret, signin.cookie_secret):
        assert secret.encode() not in saved
        assert secret.encode() not in app_log
        assert all(secret not in html for html in rendered)
    page.context.close()  # type: ignore[attr-defined]


def test_user_outside_the_allow_list_is_refused(browser: object, signin: SignInSetup) -> None:
    page = _sign_in(browser, signin, REFUSED)
    main = page.get_by_test_id("stMain")  # type: ignore[attr-defined]
    main.get_by_text("Not allowed").wait_for(timeout=30_000)
    text = main.inner_text()
    assert f"you are signed in as {REFUSED}" in text and "e-mail addresses at example.com" in text
    assert "Bad requests" not in text
    assert page.get_by_test_id("stSidebarNav").count() == 0  # type: ignore[attr-defined]  # no way to other pages
    page.screenshot(path=str(ARTIFACTS / "signin_refused.png"), full_page=True)  # type: ignore[attr-defined]
    main.get_by_role("button", name="Sign out").click()
    # st.logout ends the provider's session too (its end_session_endpoint asks to confirm)
    page.get_by_role("button", name="Yes, sign me out").click(timeout=30_000)  # type: ignore[attr-defined]
    page.wait_for_url(f"{signin.app_url}/**", timeout=30_000)  # type: ignore[attr-defined]
    wait_for_run(page)
    page.get_by_test_id("stMain").get_by_text("Sign in to continue").wait_for(timeout=30_000)  # type: ignore[attr-defined]
    page.context.close()  # type: ignore[attr-defined]
