"""Sign-in: the gate in front of every page when ``[auth]`` (OpenID Connect via ``st.login``) is configured.

Without ``[auth]`` in ``.streamlit/secrets.toml`` the app stays open (the local demo) and the Sources page says so.
With it: signed out -> a sign-in page; signed in and on the allow-list (``auth:`` in sources.yaml) -> the page;
signed in but not allowed -> a refusal with a sign-out button. Every page (snapshot links too) goes through here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from urllib.parse import unquote, urlsplit

import streamlit as st
import streamlit.components.v1 as components

from config import AuthConfig

OPEN_APP_NOTE = "Sign-in is off: anyone who can reach this port can use Faultline."
# st.login comes back to the app's start page, not to the link that was opened: the sign-in page keeps the link
# in this cookie (browser side, 15 minutes) and the first signed-in run goes back to it
RETURN_COOKIE = "faultline_return_to"
RETURN_MAX_AGE_S = 900


def sign_in_enabled() -> bool:
    """True when ``.streamlit/secrets.toml`` has an ``[auth]`` table (its values are never read here)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 — no secrets.toml (or a broken one): Streamlit raises; sign-in is off then
        return False


def is_allowed(email: str | None, groups: Collection[str], policy: AuthConfig) -> bool:
    """Whether a signed-in user may use Faultline: any user when the allow-list is empty, else an e-mail in an
    allowed domain (exact domain, case-insensitive) or membership of an allowed group."""
    if not policy.restricted:
        return True
    domain = (email or "").rpartition("@")[2].strip().lower() if "@" in (email or "") else ""
    if domain and domain in policy.allow_domains:
        return True
    return any(group in policy.allow_groups for group in groups)


def _user_claims() -> Mapping[str, object]:
    try:
        return st.user.to_dict()
    except Exception:  # noqa: BLE001 — st.user raises outside a browser session (AppTest): nobody is signed in
        return {}


def _groups(claims: Mapping[str, object]) -> tuple[str, ...]:
    raw = claims.get("groups")
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list | tuple):
        return tuple(str(g) for g in raw)
    return ()


def gate(policy: AuthConfig) -> None:
    """Let the session through, or render the sign-in page / the refusal and stop the run."""
    if not sign_in_enabled():
        return
    claims = _user_claims()
    if not claims.get("is_logged_in"):
        st.title("Faultline")
        st.subheader("Sign in to continue")
        st.write("This Faultline requires sign-in. Incident links and snapshots open after you sign in.")
        _remember_the_link()
        if st.button("Sign in", type="primary", key="auth_sign_in"):
            st.login()
        st.stop()
    email = str(claims.get("email") or "") or None
    who = email or str(claims.get("name") or "") or "this account"
    if not is_allowed(email, _groups(claims), policy):
        st.title("Faultline")
        st.error(f"**Not allowed** — you are signed in as {who}, but this Faultline is only for "
                 + _allowed_words(policy) + ". Ask the on-call lead to add you, or sign in with another account.")
        if st.button("Sign out", key="auth_sign_out_refused"):
            st.logout()
        st.stop()
    _return_to_the_link()
    with st.sidebar:
        st.caption(f"Signed in as {who}")
        if st.button("Sign out", key="auth_sign_out"):
            st.logout()


def safe_return_path(raw: str | None) -> str | None:
    """The link to go back to after sign-in, if it is one of this app's own (a path on this origin, with its
    query): never another host (``//evil``, ``https://…``, ``/\\evil``), never the start page itself."""
    if not raw:
        return None
    link = unquote(raw)
    if not link.startswith("/") or link.startswith(("//", "/\\")) or any(c in link for c in "\\\r\n\t<>\"'`"):
        return None
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or (parts.path in ("", "/") and not parts.query):
        return None
    return link


def _script(js: str) -> None:
    """Run ``js`` in the page (the components iframe is same-origin, so it reaches the app's cookies and URL)."""
    components.html(f"<script>{js}</script>", height=0)


def _remember_the_link() -> None:
    """On the sign-in page of a link (a page, a snapshot, a view): keep it for after the sign-in."""
    _script(f"""const at = window.parent.location, here = at.pathname + at.search;
if (here !== "/") {{ document.cookie = "{RETURN_COOKIE}=" + encodeURIComponent(here) +
  "; Path=/; Max-Age={RETURN_MAX_AGE_S}; SameSite=Lax" + (at.protocol === "https:" ? "; Secure" : ""); }}""")


def _return_to_the_link() -> None:
    """The first run after sign-in: back to the link that was opened (and forget it), if it is one of ours."""
    raw = st.context.cookies.get(RETURN_COOKIE)  # the cookies of the session's start: once per session
    if raw is None or st.session_state.get("_auth_returned"):
        return
    st.session_state["_auth_returned"] = True
    link = safe_return_path(raw)
    forget = f'document.cookie = "{RETURN_COOKIE}=; Path=/; Max-Age=0; SameSite=Lax";'
    # json.dumps quotes the (already checked) link as a JS string; "</" cannot occur in it (no "<")
    # the components iframe may not navigate the page (no allow-top-navigation): a script in the page does
    go = ("const s = window.parent.document.createElement('script');"
          f"s.textContent = {json.dumps(f'window.location.replace({json.dumps(link)})')};"
          "window.parent.document.body.appendChild(s);") if link and not st.query_params else ""
    _script(forget + go)


def _allowed_words(policy: AuthConfig) -> str:
    parts = []
    if policy.allow_domains:
        parts.append("e-mail addresses at " + ", ".join(policy.allow_domains))
    if policy.allow_groups:
        parts.append("members of " + ", ".join(policy.allow_groups))
    return " or ".join(parts)


def may_upload() -> bool:
    """Uploads need a signed-in, allowed user when sign-in is on (the gate has let this run through only then)."""
    return not sign_in_enabled() or bool(_user_claims().get("is_logged_in"))


def sign_in_status(policy: AuthConfig) -> str:
    """One line for the Sources page: whether sign-in is on and who may use the app."""
    if not sign_in_enabled():
        extra = " (the auth: allow-list in the config applies only once sign-in is on)" if policy.restricted else ""
        return OPEN_APP_NOTE + extra
    if policy.restricted:
        return "Sign-in is on (OpenID Connect): only " + _allowed_words(policy) + " may use Faultline."
    return "Sign-in is on (OpenID Connect): anyone the identity provider signs in may use Faultline."
