"""The "Snapshot" button any page can show: freeze the current view (frames, filter, results) under a link."""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import streamlit as st

from model.schemas import SCHEMAS
from snapshots.bundle import SnapshotError
from snapshots.capture import DEFAULT_SPAN_BOUND, build_snapshot
from snapshots.audit import audit
from snapshots.store import idempotency_key
from ui import data, state
from ui.routes import url_path
from ui.actor import current_actor
from ui.snapshot_mode import PARAM, VIEW_KEY, active_snapshot, store

OTHER_KINDS = tuple(k for k in SCHEMAS if k != "spans")
_NONCE = "snapshot_session_nonce"


def span_bound() -> int:
    """Most spans a snapshot keeps (``FAULTLINE_SNAPSHOT_SPAN_BOUND``); beyond it whole traces are sampled."""
    try:
        return max(1, int(os.environ.get("FAULTLINE_SNAPSHOT_SPAN_BOUND", DEFAULT_SPAN_BOUND)))
    except ValueError:
        return DEFAULT_SPAN_BOUND


def author() -> str | None:
    """Who is sharing: from st.user when login is configured, else nobody."""
    try:
        user = st.user
        if user.get("is_logged_in"):
            return str(user.get("email") or user.get("name") or "") or None
    except Exception:  # st.user raises in some bare contexts; authorship is optional
        pass
    return None


def snapshot_link(snapshot_id: str, page: str = "") -> str:
    """A shareable link to ``page`` with ``?snapshot=<id>`` on this app's origin."""
    try:
        parts = urlsplit(st.context.url or "")
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    except Exception:
        origin = ""
    return f"{origin}/{url_path(page)}?{PARAM}={snapshot_id}"


def _page_state(page: str) -> dict[str, Any]:
    """The page's view state in its URL form (what ui.snapshot_mode.recorded_view reads back)."""
    kept: dict[str, Any] = {VIEW_KEY: state.view_params(page)}
    if "live_mode" in st.session_state:
        kept["live_mode"] = bool(st.session_state["live_mode"])
    return kept


def default_title(page: str) -> str:
    return f"{page.replace('_', ' ').title()} — {datetime.now():%Y-%m-%d %H:%M}"


def request_key(page: str, title: str, notes: str) -> str:
    """Idempotency key: the view (page, filter, data generation) plus the request (title, notes, who, session)."""
    nonce = st.session_state.setdefault(_NONCE, secrets.token_hex(8))
    return idempotency_key(page, state.view_params(page), title.strip(), notes, author(),
                           st.session_state.get("data_refresh", 0), nonce)


def create_snapshot(page: str, results: dict[str, object], title: str, notes: str) -> str:
    """Freeze the current view; a double click, retry or rerun returns the same id."""
    key = request_key(page, title, notes)
    target = store()
    existing = target.find(key)
    if existing:
        return existing
    flt = state.current_filter()
    loaded = {kind: data.frames(kind) for kind in ("spans", *OTHER_KINDS)}
    # Every frame is kept whole, unfiltered: the incident start is detected over all requests and the
    # baseline is the time before it, so a snapshot of filtered frames would compute other figures (and
    # "Clear filter" would show cohort-only data as everything). The view state is restored from the
    # manifest when the snapshot is opened (ui.snapshot_mode.adopt_filter). When spans must be sampled,
    # the traces behind the view go first.
    shown = data.filtered_spans(whole_window=True).select("trace_id").unique()
    frames = {"spans": data.all_spans(), **{k: loaded[k].frame for k in OTHER_KINDS}}
    results = {**results, "incident_window": list(data.incident_window()),
               "spans_coverage": data.coverage_record(loaded["spans"].coverage)}
    queries = [{"kind": kind, "executed_query": q} for kind, item in loaded.items() for q in item.executed]
    notices = list(dict.fromkeys(p.message for item in loaded.values() for p in item.problems))
    notices += [f"{k.replace('_', ' ')} stale since {item.stale_since:%H:%M:%S} UTC"
                for k, item in loaded.items() if item.stale_since is not None]
    snap = build_snapshot(
        frames, title=title.strip() or default_title(page), page=page, notes=notes, author=author(), filter=flt,
        page_state=_page_state(page), queries=queries, notices=notices, results=results, span_bound=span_bound(),
        preferred_traces=shown,
    )
    sid = target.create(snap, key)
    audit("create", sid, current_actor(), page=page)
    return sid


def snapshot_button(page: str, results: dict[str, object] | None = None) -> str | None:
    """Render the Snapshot button (a popover with title + notes); returns the id once one is saved."""
    if active_snapshot() is not None:
        st.caption(":material/photo_camera: Viewing a read-only snapshot.")
        return None
    last_key = f"snapshot_last_{page}"
    with st.popover("Snapshot", icon=":material/photo_camera:", help="Freeze this view under a shareable link"):
        with st.form(key=f"snapshot_form_{page}", border=False):
            title = st.text_input("Title", key=f"snapshot_title_{page}", placeholder=default_title(page), max_chars=200)
            notes = st.text_area("Notes", key=f"snapshot_notes_{page}", max_chars=20_000,
                                 placeholder="What you found, what you ruled out, what to check next")
            submitted = st.form_submit_button("Save snapshot", type="primary")
        if submitted:
            try:
                with st.spinner("Saving the snapshot…"):
                    st.session_state[last_key] = create_snapshot(page, results or {}, title, notes)
            except (SnapshotError, OSError) as exc:
                st.error(f"The snapshot was not saved: {exc}")
        sid = st.session_state.get(last_key)
        if sid:
            st.success("Saved. Anyone with this link sees exactly this view:")
            st.code(snapshot_link(sid, page), language=None)
            try:
                st.page_link("views/snapshots.py", label="Open in Snapshots", query_params={PARAM: sid})
            except st.errors.StreamlitAPIException:  # an app without that page registered (embedding, tests)
                pass
    return st.session_state.get(last_key)
