"""Who is using this session and from where, for the snapshot audit trail (``snapshots.audit``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import streamlit as st

from snapshots.audit import Actor


def signed_in_name() -> str | None:
    """The signed-in user's e-mail (else name) when ``[auth]`` is configured; None on an open app."""
    try:
        user = st.user
        if user.get("is_logged_in"):
            return str(user.get("email") or user.get("name") or "") or None
    except Exception:  # st.user raises in some bare contexts (AppTest, threads); then nobody is known
        pass
    return None


def client_address(headers: Mapping[str, str], direct: str | None) -> str | None:
    """The browser's address: nginx's ``X-Real-IP`` when the request came through a proxy on this host
    (replicas listen on 127.0.0.1 only, so only the proxy can set it), else the socket's peer."""
    forwarded = (headers.get("X-Real-IP") or headers.get("x-real-ip") or "").strip()
    if forwarded and _is_loopback(direct):
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass  # not an address: ignore it rather than log what the client typed
    return direct or None


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def current_actor() -> Actor:
    """This session's user and address (both None when Streamlit does not know them, e.g. in AppTest)."""
    try:
        raw_headers: object = st.context.headers
        raw_direct: object = st.context.ip_address
    except Exception:  # no request context (a download callback's thread)
        raw_headers, raw_direct = {}, None
    # only real values: outside a browser session (AppTest) Streamlit hands out stand-in objects
    headers = raw_headers if isinstance(raw_headers, Mapping) else {}
    direct = raw_direct if isinstance(raw_direct, str) else None
    return Actor(who=signed_in_name(), remote_addr=client_address(headers, direct))
