"""Small shared page parts: header, degraded/stale notices, empty states."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from connectors.runtime.fanout import STALE_PREFIX
from ui.data import Loaded

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


def show_problems(*loaded: Loaded) -> None:
    """One notice per source problem: stale data gets a warning badge with its reason, failures an error."""
    seen: set[str] = set()
    for item in loaded:
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


def empty_state(what: str, hint: str = "") -> None:
    st.info(f"No {what} for the current filter." + (f" {hint}" if hint else ""))
