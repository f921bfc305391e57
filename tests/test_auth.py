"""Sign-in without a browser: the allow-list config, the allow rule, the gate and the open-app note (AppTest)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from config import AuthConfig, parse_config
from connectors.errors import ConfigError
from tests.conftest import REPO, app_test
from ui.auth import OPEN_APP_NOTE, is_allowed, safe_return_path

SOURCES = "sources:\n  - {name: demo, type: demo}\n"
AUTH_SECRETS = {"redirect_uri": "http://127.0.0.1:1/oauth2callback", "cookie_secret": "cookie-secret-xyz-123",
                "client_id": "faultline", "client_secret": "client-secret-abc-456",
                "server_metadata_url": "http://127.0.0.1:1/.well-known/openid-configuration"}


def _parse(auth_yaml: str) -> AuthConfig:
    import yaml

    return parse_config(yaml.safe_load(SOURCES + auth_yaml), origin="sources.yaml").auth


def test_allow_list_is_parsed_and_lower_cased() -> None:
    auth = _parse("auth: {allow_domains: [Example.COM, '@ops.example.org'], allow_groups: [oncall]}\n")
    assert auth.allow_domains == ("example.com", "ops.example.org")
    assert auth.allow_groups == ("oncall",)
    assert auth.restricted
    assert not _parse("").restricted


@pytest.mark.parametrize(("auth_yaml", "message"), [
    ("auth: [example.com]\n", "'auth' must be a mapping"),
    ("auth: {allow_domain: [example.com]}\n", "unknown key(s) ['allow_domain']"),
    ("auth: {allow_domains: example.com}\n", "auth.allow_domains must be a list"),
    ("auth: {allow_domains: ['ana@example.com']}\n", "not an e-mail domain"),
    ("auth: {allow_groups: ['']}\n", "auth.allow_groups must be a list of non-empty strings"),
])
def test_bad_allow_list_is_a_clear_error(auth_yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(auth_yaml)
    assert message in info.value.message
    assert "sources.yaml" in info.value.message


def test_allow_rule() -> None:
    policy = AuthConfig(allow_domains=("example.com",), allow_groups=("oncall",))
    assert is_allowed("ana@example.com", (), policy)
    assert is_allowed("Ana@EXAMPLE.com", (), policy)
    assert not is_allowed("eve@example.com.evil.test", (), policy)  # the whole domain, not a prefix
    assert not is_allowed("eve@sub.example.com", (), policy)
    assert not is_allowed("example.com", (), policy)  # no @: not an address
    assert not is_allowed(None, ("guests",), policy)
    assert is_allowed("bob@contractor.test", ("oncall",), policy)
    assert is_allowed("anyone@anywhere.test", (), AuthConfig())  # no allow-list: the provider is the gate


def test_without_auth_the_app_is_open_and_the_sources_page_says_so(small_demo: Path) -> None:
    at = app_test()
    at.run()
    at.switch_page("views/sources.py").run()
    assert not at.exception
    assert any(OPEN_APP_NOTE in c.value for c in at.caption)


def test_with_auth_a_signed_out_session_sees_only_the_sign_in_page(small_demo: Path) -> None:
    small_demo.write_text(SOURCES + "auth: {allow_domains: [example.com]}\n")
    for page in ("overview", "traces", "snapshots", "sources"):
        at: AppTest = app_test()
        at.secrets["auth"] = AUTH_SECRETS
        at.run()
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception
        assert [s.value for s in at.subheader] == ["Sign in to continue"]
        assert [b.label for b in at.button] == ["Sign in"]
        assert not at.get("file_uploader")  # no upload while signed out
        assert not at.metric and not at.dataframe
        rendered = repr(at._tree)
        assert AUTH_SECRETS["client_secret"] not in rendered and AUTH_SECRETS["cookie_secret"] not in rendered


def test_xsrf_protection_stays_on() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config.get("server", {}).get("enableXsrfProtection", True) is True
    assert config.get("server", {}).get("enableCORS", True) is True


@pytest.mark.parametrize(("raw", "want"), [
    ("%2Fsnapshots%3Fsnapshot%3D" + "a" * 32, "/snapshots?snapshot=" + "a" * 32),  # as the sign-in page keeps it
    ("/cohorts?flt_cohort=region%3Deu-west-1", "/cohorts?flt_cohort=region=eu-west-1"),
    ("/?snapshot=" + "a" * 32, "/?snapshot=" + "a" * 32),
    ("/", None), ("", None), (None, None),  # the start page is where st.login lands anyway
    ("//evil.example/x", None), ("%2F%2Fevil.example", None), ("https://evil.example/", None),
    ("/\\evil.example", None), ("javascript:alert(1)", None), ("/x?<script>", None), ('/x?a="b', None),
    ("/x%0d%0aSet-Cookie:a=b", None),
])
def test_only_this_apps_own_links_are_returned_to_after_sign_in(raw: str | None, want: str | None) -> None:
    assert safe_return_path(raw) == want
