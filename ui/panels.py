"""Small shared page parts: header, degraded/stale notices, empty states."""

from __future__ import annotations

import streamlit as st

from ui.data import Loaded


def page_header(title: str, caption: str = "") -> None:
    st.title(title)
    if caption:
        st.caption(caption)


def show_problems(*loaded: Loaded) -> None:
    """One notice per source problem: stale data gets a warning badge, failures an error line."""
    seen: set[str] = set()
    for item in loaded:
        if item.stale_since is not None:
            st.warning(f"⏳ stale since {item.stale_since:%H:%M:%S} UTC — {item.kind.replace('_', ' ')} shown from the "
                       "last good answer; the source is failing right now.", icon=None)
        for problem in item.problems:
            if problem in seen:
                continue
            seen.add(problem)
            st.error(f"Degraded: {problem}")


def empty_state(what: str, hint: str = "") -> None:
    st.info(f"No {what} for the current filter." + (f" {hint}" if hint else ""))
