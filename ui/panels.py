"""Small shared page parts: header, degraded/stale notices, load progress, coverage lines, empty states."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from connectors.base import Coverage, Progress
from ui import coverage as cov
from ui.frames import Loaded, Loading, loader, loads_in_flight
from ui.problems import Problem
from ui.pushdown import Pushed
from ui.snapshot_button import snapshot_button
from ui.text import md_escape

POLL_S = 1.0
_LOADING = "panels_loading"


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
    with slot:
        snapshot_button(page, results)


def _what(kind: str) -> str:
    return kind.replace("_", " ")


def _stale_badge(kind: str, problem: Problem) -> None:
    since = f"{problem.stale_since:%H:%M:%S} UTC" if problem.stale_since else "an earlier answer"
    st.warning(f"**Stale since {since}** — {_what(kind)} shown from the last good answer; {problem.source or 'a source'} "
               f"is failing right now: {problem.message}", icon=":material/history:")


def unserved(item: Loaded) -> bool:
    """No configured source serves this kind: nobody asked for it, so its absence is not a degradation."""
    return any(problem.kind == "not_configured" for problem in item.problems)


def show_problems(*loaded: Loaded) -> None:
    """One notice per source problem: stale data gets a warning badge with its reason, failures an error,
    data-quality notes a caption; loads still reading show their progress and re-poll until done.
    A kind no configured source serves is not a problem: the page says so where it would draw it."""
    seen: set[tuple[str, ...]] = set()
    loading: list[tuple[str, Loading]] = []
    for item in loaded:
        for problem in item.problems:
            if problem.kind == "not_configured":
                continue
            # a stale badge names the kind it keeps (spans, events…); a failure is said once per page
            key = (item.kind if problem.kind == "stale" else "", problem.kind, problem.message)
            if key in seen:
                continue
            seen.add(key)
            if problem.kind == "stale":
                _stale_badge(item.kind, problem)
            else:
                st.error(f"Degraded: {problem.message}", icon=":material/error:")
        for notice in item.notices:
            if ("notice", notice.message) not in seen:
                seen.add(("notice", notice.message))
                st.caption(f":material/info: {notice.message}")
        loading += [(item.kind, source) for source in item.loading]
    # this run's page is still filling in (see empty_state); a re-read shows the previous read meanwhile
    st.session_state[_LOADING] = any(not source.refreshing for _, source in loading)
    if loading:
        _progress(tuple(loading))


def progress_text(progress: Progress | None) -> str:
    """ "52.3 of 105.0 MiB read", "12,000 of 114,654 rows read", or "reading…" when the source does not say."""
    if progress is None:
        return "reading…"
    if progress.unit == "bytes":
        done = f"{progress.done / 2**20:,.1f}"
        return f"{done} of {progress.total / 2**20:,.1f} MiB read" if progress.total else f"{done} MiB read"
    total = f" of {progress.total:,}" if progress.total else ""
    return f"{progress.done:,}{total} {progress.unit} read"


def _fraction(progress: Progress | None) -> float:
    if progress is None or not progress.total:
        return 0.0
    return min(1.0, max(0.0, progress.done / progress.total))


@st.fragment(run_every=POLL_S)
def _progress(waiting: tuple[tuple[str, Loading], ...]) -> None:
    """Progress of the loads still reading; when every one is done, the whole page redraws with the full data."""
    names = {source.source for _, source in waiting}
    if not any(names & {*load.request.backends, *load.request.local} for load in loader().in_flight()):
        st.rerun()
    for kind, source in waiting:
        latest = _latest_progress(source)
        if source.refreshing:
            text = (f"Re-reading {_what(kind)} from **{source.source}**: {progress_text(latest)} — showing the "
                    "previous read until it finishes.")
        else:
            text = f"Loading {_what(kind)} from **{source.source}**: {progress_text(latest)} — the page fills in when it finishes."
        st.progress(_fraction(latest), text=text)


def _latest_progress(source: Loading) -> Progress | None:
    for load in loader().in_flight():
        if source.source in load.request.local:
            return load.progress().get(source.source)
    return source.progress


def computed_over(loaded: Loaded, requests: int, *, filtered: bool = False, pushed: Pushed | None = None) -> None:
    """Say, next to a figure, what it was computed over: all requests, or a stated sample of the window.

    ``pushed``: the figure came from the spans source's own counts (:mod:`ui.pushdown`), or it failed.
    """
    if pushed is not None and pushed.counted is not None:
        subset = " matching the filter" if filtered else ""
        st.caption(f":material/dataset: Computed over {md_escape(pushed.counted.over)}{subset}, "
                   f"counted where the spans are.")
        return
    if pushed is not None and pushed.error:
        st.caption(f":material/warning: {md_escape(pushed.source)} could not count the whole window "
                   f"({md_escape(pushed.error)}); these figures come from the traces it sampled.")
    if any(not s.refreshing for s in loaded.loading):
        still = ", ".join(sorted({s.source for s in loaded.loading if not s.refreshing}))
        st.caption(f":material/hourglass_top: Computed over the {requests:,} requests loaded so far; still reading "
                   f"{still}. This fills in when the load finishes.")
        return
    st.caption(f":material/dataset: {cov.computed_over(loaded.coverage, requests, filtered=filtered)}")


def count(value: float, coverage: Coverage | None) -> str:
    """A count for a metric: exact over complete data, "≈ N" scaled to the window over a sample."""
    return cov.count_text(value, coverage)


def no_events_note(events: Loaded, what: str = "change events") -> None:
    """Where events would be drawn and there are none: quietly say that no source serves them, or the empty state."""
    if unserved(events):
        st.caption(f"No configured source serves {what} (deploys, leader elections, flag changes), so none are drawn.")
    else:
        empty_state(what)


def empty_state(what: str, hint: str = "") -> None:
    if st.session_state.get(_LOADING) and loads_in_flight():
        st.info(f"Still loading {what}; the page fills in when the load finishes.")
        return
    st.info(f"No {what} for the current filter." + (f" {hint}" if hint else ""))
