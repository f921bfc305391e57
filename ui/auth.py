"""Sign-in: the gate in front of every page when ``[auth]`` (OpenID Connect via ``st.login``) is configured.

Without ``[auth]`` in ``.streamlit/secrets.toml`` the app stays open (the local demo) and the Sources page says so.
With it: signed out -> a sign-in page; signed in and on the allow-list (``auth:`` in sources.yaml) -> the page;
signed in but not allowed -> a refusal with a sign-out button. Every page (snapshot links too) goes through here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import streamlit as st

from config import AuthConfig

OPEN_APP_NOTE = "Sign-in is off: anyone who can reach this port can use Faultline."


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
        if st.query_params:  # st.login returns to the app's start page, not to the link that was opened
            st.caption("After signing in you land on the Overview: open the link you followed once more.")
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
    with st.sidebar:
        st.caption(f"Signed in as {who}")
        if st.button("Sign out", key="auth_sign_out"):
            st.logout()


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
