"""Small shared page parts: header, degraded/stale notices, empty states."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from connectors.runtime.fanout import STALE_PREFIX
from ui.data import Loaded, connectors

STALE_MARK = STALE_PREFIX.strip()


def page_header(title: str, caption: str = "") -> DeltaGenerator:
    """Title and caption; returns the slot on the right where the page puts its Snapshot button last,
    once it knows the results it shows."""
    left, right = st.columns([5, 1], vertical_alignment="bottom")
    left.title(title)
    if caption:
        left.caption(caption)
    return right.container()


def snapshot_slot(slot: DeltaGenerator, page: str, results: dict[str, object] | None = None) -> None:
    """Fill the header slot with the Snapshot button (frames + filter + these results)."""
    from ui.snapshot_button import snapshot_button

    with slot:
        snapshot_button(page, results)


def unserved(item: Loaded) -> bool:
    """No configured source serves this kind: nobody asked for it, so its absence is not a degradation."""
    return not item.sources


def show_problems(*loaded: Loaded) -> None:
    """One notice per source problem: stale data gets a warning badge with its reason, failures an error.
    A kind no configured source serves is not a problem here; the page says so where it would draw it."""
    build_problems = set(connectors()[1])
    seen: set[str] = set()
    for item in loaded:
        if unserved(item):  # keep only a source that failed to start; "nobody serves X" is no failure
            item = Loaded(item.kind, item.frame, tuple(p for p in item.problems if p in build_problems))
        stale_lines = [p for p in item.problems if STALE_MARK in p]
        if item.stale_since is not None:
            reason = " ".join(stale_lines)
            st.warning(f"**Stale since {item.stale_since:%H:%M:%S} UTC** — {item.kind.replace('_', ' ')} shown from the "
                       f"last good answer; the source is failing right now. {reason}", icon=":material/history:")
        for problem in item.problems:
            if problem in seen or (item.stale_since is not None and problem in stale_lines):
                continue
            seen.add(problem)
            st.error(f"Degraded: {problem}", icon=":material/error:")
        for notice in item.notices:
            if notice not in seen:
                seen.add(notice)
                st.caption(f":material/info: {notice}")


def no_events_note(events: Loaded, what: str = "change events") -> None:
    """Where events would be drawn and there are none: quietly say that no source serves them, or the empty state."""
    if unserved(events):
        st.caption(f"No configured source serves {what} (deploys, leader elections, flag changes), so none are drawn.")
    else:
        empty_state(what)


def empty_state(what: str, hint: str = "") -> None:
    st.info(f"No {what} for the current filter." + (f" {hint}" if hint else ""))
