"""Snapshot mode: ``?snapshot=<id>`` makes every page render from a stored snapshot, read-only.

``ui.data`` asks :func:`active_snapshot` first; when it returns a Snapshot, frames come from it
instead of the sources. The opened snapshot is kept in this session's state (not a global cache),
keyed by id. The id survives page navigation (Streamlit drops unbound query params) until the user
leaves snapshot mode with the banner's button.

Configuration (``.streamlit/secrets.toml``)::

    [faultline]
    snapshot_redaction_key = "<long random>"   # else a key file is generated in the store (0600)
    snapshot_redaction = true                  # false keeps raw user ids / IPs / SQL (secrets still go)
    snapshot_hash_attrs = ["attr.user_id", "attr.account_id"]
    snapshot_drop_attrs = ["attr.client.address"]
    snapshot_query_text = "normalise"          # or "drop" / "keep"

The store directory is ``$FAULTLINE_SNAPSHOT_DIR`` (default ``./snapshots-data``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import streamlit as st

from snapshots.audit import opened
from snapshots.bundle import Snapshot, SnapshotError
from snapshots.redact import RedactionConfig, secret_strings
from snapshots.store import SnapshotStore, open_store, validate_id
from ui import state
from ui.actor import current_actor
from ui.routes import ROUTES, params_of
from ui.routes import route as route_of
from ui.text import md_escape
from ui.view_state import FILTER_PARAMS, Filter, Notice, ViewState, from_params, to_params

PARAM = "snapshot"
_ACTIVE = "snapshot_active_id"
_CACHE = "snapshot_open_cache"  # (id, Snapshot | error message)
_ADOPTED = "snapshot_filter_adopted"  # the snapshot id whose filter this session already took over
def _secrets() -> dict[str, Any]:
    try:
        return st.secrets.to_dict()
    except Exception:  # no secrets.toml: Streamlit raises instead of returning empty
        return {}


def redaction_config(conf: Mapping[str, Any]) -> RedactionConfig:
    """RedactionConfig from the ``[faultline]`` secrets table; unknown values fall back to the safe default."""
    default = RedactionConfig()
    mode = conf.get("snapshot_query_text", default.query_text)
    return RedactionConfig(
        enabled=bool(conf.get("snapshot_redaction", True)),
        hash_attrs=tuple(conf.get("snapshot_hash_attrs", default.hash_attrs)),
        drop_attrs=tuple(conf.get("snapshot_drop_attrs", default.drop_attrs)),
        query_text=mode if mode in ("normalise", "drop", "keep") else "normalise",
    )


def store() -> SnapshotStore:
    """The configured snapshot store (cheap to build; holds no open files)."""
    secrets = _secrets()
    conf = secrets.get("faultline") or {}
    conf = conf if isinstance(conf, Mapping) else {}
    key = conf.get("snapshot_redaction_key") or None
    return open_store(
        redaction=redaction_config(conf),
        redaction_key=str(key) if key else None,
        secret_values=secret_strings(secrets),
    )


def requested_id() -> str | None:
    """The snapshot this session is looking at: from the URL, else remembered across page switches."""
    raw = st.query_params.get(PARAM)
    if raw:
        st.session_state[_ACTIVE] = raw
        return raw
    sticky = st.session_state.get(_ACTIVE)
    if sticky:
        st.query_params[PARAM] = sticky  # navigation dropped it: put it back so the URL stays shareable
        return sticky
    return None


def _opened() -> tuple[str, Snapshot | str] | None:
    raw = requested_id()
    if raw is None:
        st.session_state.pop(_CACHE, None)
        return None
    cached = st.session_state.get(_CACHE)
    if cached is None or cached[0] != raw:
        cached = (raw, _load(raw))
        st.session_state[_CACHE] = cached
    return cached


def _load(raw: str) -> Snapshot | str:
    try:
        target = store()
        snap = target.open(validate_id(raw))
        opened(target, raw, current_actor())
        return snap
    except SnapshotError as exc:
        return str(exc)
    except OSError as exc:
        return f"the snapshot store cannot be read ({exc.strerror or exc})"


def active_snapshot() -> Snapshot | None:
    """The snapshot named by ``?snapshot=<id>``, opened and verified once per session; None in live mode
    or when it cannot be opened (:func:`snapshot_error` says why)."""
    opened = _opened()
    return opened[1] if opened is not None and isinstance(opened[1], Snapshot) else None


def snapshot_error() -> str | None:
    opened = _opened()
    return opened[1] if opened is not None and isinstance(opened[1], str) else None


def leave_snapshot() -> None:
    """Back to live data (a button callback)."""
    st.session_state.pop(_ACTIVE, None)
    st.session_state.pop(_CACHE, None)
    st.session_state.pop(_ADOPTED, None)  # opening it again shows it as it was taken, again
    if PARAM in st.query_params:
        del st.query_params[PARAM]


def snapshot_window() -> tuple[datetime | None, datetime | None]:
    """The incident window the snapshot was taken in (else its recorded time range); (None, None) live."""
    snap = active_snapshot()
    if snap is None:
        return None, None
    recorded = snap.manifest.values.get("incident_window") or snap.manifest.time_range
    return tuple(_parse(t) for t in recorded)  # type: ignore[return-value]


VIEW_KEY = "view"  # manifest.page_state[VIEW_KEY]: the view state in its URL form (ui.view_state)
_NOT_LANDING = ("snapshots", "sources")  # pages a snapshot is not opened on by itself


def recorded_view(snap: Snapshot) -> tuple[ViewState, tuple[Notice, ...]]:
    """The view state the snapshot was taken with: filter plus its page's own state, read through the
    same serialisation as a URL. Snapshots from before the view state carry only the filter."""
    page_state = snap.manifest.page_state or {}
    view = page_state.get(VIEW_KEY) if isinstance(page_state, Mapping) else None
    if isinstance(view, Mapping):
        clean = {str(k): v if isinstance(v, (str, list)) else str(v) for k, v in view.items()}
        return from_params(clean, params_of(snap.manifest.page))
    recorded = snap.manifest.filter or {}
    start, end = _parse(recorded.get("start")), _parse(recorded.get("end"))
    cohort = recorded.get("cohort") or []
    pairs = tuple((str(p[0]), str(p[1])) for p in cohort if isinstance(p, (list, tuple)) and len(p) == 2)
    service = recorded.get("service") if isinstance(recorded.get("service"), str) else None
    return ViewState(Filter(start, end, pairs, service) if start and end else Filter(None, None, pairs, service)), ()


def frames_scope() -> Filter | None:
    """What an open snapshot's frames are limited to: snapshots from before the view state kept only the
    cohort/service of their filter, so no filter may be wider than that (None: the frames are whole)."""
    snap = active_snapshot()
    if snap is None or isinstance((snap.manifest.page_state or {}).get(VIEW_KEY), Mapping):
        return None
    scope = recorded_view(snap)[0].filter
    return Filter(None, None, scope.cohort, scope.service) if scope.cohort or scope.service else None


def adopt_filter(route: str = "overview") -> None:
    """The first time a session opens a snapshot, show it under the view state it was taken with (unless
    the link itself carries a view), and on the page it was taken on when the link names no page, so
    every page computes what the sharer saw."""
    snap = active_snapshot()
    if snap is None or st.session_state.get(_ADOPTED) == snap.id:
        return
    st.session_state[_ADOPTED] = snap.id
    taken_on = snap.manifest.page
    if not set(st.query_params.keys()) - {PARAM}:
        view, found = recorded_view(snap)
        state.store_view(view, params_of(taken_on))
        for notice in found:
            state.add_notice(notice)
    if route == ROUTES[0].name and taken_on != route and route_of(taken_on) and taken_on not in _NOT_LANDING:
        st.switch_page(f"views/{taken_on}.py", query_params={PARAM: snap.id or ""})


def _parse(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def taken_at(snap: Snapshot) -> str:
    when = _parse(snap.manifest.created_at)
    return f"{when:%Y-%m-%d %H:%M} UTC" if when else snap.manifest.created_at


def snapshot_banner() -> None:
    """Say loudly that the page shows a read-only snapshot (and when it was taken); stop on a bad link."""
    if requested_id() is None:
        return
    snap = active_snapshot()
    if snap is None:
        st.error(f"**This link's snapshot cannot be opened.** {md_escape(snapshot_error())}")
        st.button("Show live data instead", on_click=leave_snapshot, key="snapshot_leave_error")
        st.stop()
        return
    m = snap.manifest
    by = f" by {md_escape(m.author)}" if m.author else ""
    st.info(
        f"**Read-only snapshot** “{md_escape(m.title)}” — taken {taken_at(snap)}{by} on the "
        f"{md_escape(m.page or 'unknown')} page. Frames come from the snapshot, not the live sources; "
        "the filter in the sidebar can still narrow it.", icon=":material/photo_camera:",
    )
    with st.expander("Snapshot details"):
        if m.notes:
            st.text(m.notes)
        view = recorded_view(snap)[0]
        own = ", ".join(f"{name} = {value}" for name, value in to_params(view, params_of(m.page)).items()
                        if name not in FILTER_PARAMS)
        st.caption(f"Filter when taken: {md_escape(view.filter.describe())}"
                   + (f"; page state: {md_escape(own)}" if own else ""))
        sampling = m.sampling.get("spans") or {}
        if sampling.get("applied"):
            st.caption(f"Spans sampled: {sampling['rows_kept']:,} of {sampling['rows_before']:,} kept (whole traces).")
        red = m.redaction or {}
        st.caption("Redaction: " + ("user ids hashed, client IPs dropped, SQL " + str(red.get("query_text"))
                                    if red.get("enabled") else "off"))
        for notice in m.notices:
            st.caption(f"Notice when taken: {md_escape(notice)}")
    st.button("Back to live data", on_click=leave_snapshot, key="snapshot_leave")
