"""Small shared page parts: header, degraded/stale notices, empty states."""

from __future__ import annotations

import streamlit as st

from connectors.fanout import STALE_PREFIX
from ui.data import Loaded

STALE_MARK = STALE_PREFIX.strip()


def page_header(title: str, caption: str = "") -> None:
    st.title(title)
    if caption:
        st.caption(caption)


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


def empty_state(what: str, hint: str = "") -> None:
    st.info(f"No {what} for the current filter." + (f" {hint}" if hint else ""))
