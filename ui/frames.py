"""Frames for the pages: fetched for the incident window, merged, and derived, each under a generation.

Every frame this module hands out is registered with its :class:`ui.generation.Generation`, and the
derived caches (outcome columns, the global filter, roots, ``memo``) are keyed by generation, never by
``id(frame)``: a new answer always gets a new token, so one answer's results are never served for another.

Loads run in the background (:mod:`ui.loader`): backends within the page deadline, local files for as
long as they take. While a local read runs, the page gets what is ready and ``Loaded.loading`` says
what is still coming (with the connector's progress).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
import streamlit as st

from analysis.outcome import with_outcome
from analysis.timeline import timeline
from config import SloConfig
from connectors.base import Coverage, Progress
from model.encoding import encoded, held
from model.schemas import empty_frame
from ui import coverage as cov
from ui import sources
from ui.generation import ISSUED, Generation, adhoc_generation, derived
from ui.loader import Load, Loader, Part, Request, split_local
from ui.problems import Notice, Problem, not_configured
from ui.snapshot_mode import active_snapshot
from ui.state import Filter, current_filter
from ui.uploads import upload_generation, uploaded_frames

CACHE_TTL_S = 60
LOCAL_TTL_S = 600  # re-reading a 100 MiB file every minute would keep a core busy for nothing


@dataclass(frozen=True)
class Loading:
    """A source whose part of the data is still being read, and how far it has got."""

    source: str
    progress: Progress | None
    refreshing: bool = False  # the page shows this source's previous read meanwhile


@dataclass(frozen=True)
class Loaded:
    """A merged frame, what it covers of the window, and what went wrong getting it."""

    kind: str
    frame: pl.DataFrame
    problems: tuple[Problem, ...] = ()
    stale_since: datetime | None = None
    sources: tuple[str, ...] = ()
    executed: tuple[str, ...] = ()
    notices: tuple[Notice, ...] = ()  # data-quality notes (limits hit, rows dropped): shown, but not as failures
    coverage: Coverage | None = None  # spans only: every trace of the window, or a stated sample
    generation: Generation = field(default_factory=adhoc_generation)
    loading: tuple[Loading, ...] = ()


# --- loading -------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def loader() -> Loader:
    """The process's one loader: a load per data generation, shared by every session."""
    return Loader(CACHE_TTL_S, LOCAL_TTL_S)


def refresh() -> None:
    """Ask the sources again on the next fetch (the "reload" button and live mode call this)."""
    st.session_state["data_refresh"] = st.session_state.get("data_refresh", 0) + 1


def frames(kind: str) -> Loaded:
    """All sources' frames of ``kind`` for the incident window (plus uploaded trace files), merged, unfiltered."""
    snap = _snapshot_frames(kind)
    if snap is not None:
        return snap
    built = sources.connectors()
    start, end = sources.incident_window()
    config = sources.app_config()
    config_key = sources.config_key()
    wanted = {name: c for name, c in built.connectors.items() if kind in c.capabilities}
    if not wanted:
        loaded = Loaded(kind, empty_frame(kind), (*built.problems, not_configured(kind)),
                        coverage=cov.complete(0) if kind == "spans" else None,
                        generation=Generation(("none", kind, config_key)))
    else:
        key = (kind, start, end, config_key, st.session_state.get("data_refresh", 0))
        backends, local = split_local(wanted)

        def request() -> Request:
            return Request(kind, start, end, backends, local, {s.name: s for s in config.sources},
                           sources.deadline_s(), sources.local_deadline_s(), sources.window_budget_traces())

        load = loader().load(key, request, family=key[:-1])
        if load.backends is None:
            with st.spinner("Loading from the data sources…"):
                load.wait_backends(sources.deadline_s() + 1.0)
        loaded = _assemble(kind, key, tuple(wanted), load, built.problems)
    if kind == "spans":
        loaded = _with_uploads(loaded)
    ISSUED.put(loaded.frame, loaded.generation)
    return loaded


def _assemble(kind: str, key: tuple[Hashable, ...], names: tuple[str, ...], load: Load,
              build_problems: tuple[Problem, ...]) -> Loaded:
    backends, local = load.backends, load.local_part()
    parts = tuple(p for p in (backends, local) if p is not None)
    generation = Generation((kind, *key, backends.serial if backends else None, local.serial if local else None))
    frame, coverage = _merged(generation.token, kind, parts)
    waiting = [] if backends is not None else [Loading(n, None) for n in load.request.backends]
    waiting += [Loading(n, p, refreshing=local is not None) for n, p in load.progress().items()]
    stale = [p.stale_since for p in parts if p.stale_since is not None]
    return Loaded(kind, frame, build_problems + tuple(x for p in parts for x in p.problems),
                  min(stale) if stale else None, names, tuple(x for p in parts for x in p.executed),
                  tuple(x for p in parts for x in p.notices), coverage, generation, tuple(waiting))


@st.cache_resource(show_spinner=False, max_entries=32)
def _merged(token: str, kind: str, _parts: tuple[Part, ...]) -> tuple[pl.DataFrame, Coverage | None]:
    frames_ = [f for p in _parts for f in p.frames]
    if not frames_:
        frame = empty_frame(kind)
    elif len(frames_) == 1:
        frame = frames_[0]  # already one chunk (fetch_part): no copy of the window's data
    elif kind == "spans":  # several sources: one copy (the sort's, or the rechunk's when already in order)
        frame = held(pl.concat(frames_, how="diagonal_relaxed", rechunk=False)).rechunk()
    else:  # several sources: one copy, so every analysis after runs over contiguous columns
        frame = pl.concat(frames_, how="diagonal_relaxed", rechunk=True)
    coverage = cov.merge(c for p in _parts for c in p.coverages) if kind == "spans" else None
    return frame, coverage if coverage is not None or kind != "spans" else cov.complete(0)


def _with_uploads(loaded: Loaded) -> Loaded:
    """The session's uploaded trace files join the spans: every span of them, so complete coverage."""
    uploads = uploaded_frames()
    if not uploads:
        return loaded
    generation = loaded.generation.derive("uploads", upload_generation())
    frame, coverage = _uploads_merged(generation.token, loaded.frame, loaded.coverage, tuple(uploads.values()))
    return Loaded(loaded.kind, frame, loaded.problems, loaded.stale_since,
                  loaded.sources + tuple(f"upload:{name}" for name in uploads), loaded.executed, loaded.notices,
                  coverage, generation, loaded.loading)


@st.cache_resource(show_spinner=False, max_entries=8)
def _uploads_merged(token: str, _frame: pl.DataFrame, _coverage: Coverage | None,
                    _uploads: tuple[pl.DataFrame, ...]) -> tuple[pl.DataFrame, Coverage | None]:
    merged = held(pl.concat([_frame, *map(encoded, _uploads)], how="diagonal_relaxed")
                  .unique(["trace_id", "span_id"], keep="first", maintain_order=True))
    added = [cov.complete(u.get_column("trace_id").n_unique()) for u in _uploads]
    return merged, cov.merge([*([_coverage] if _coverage is not None else []), *added])


def _snapshot_frames(kind: str) -> Loaded | None:
    snapshot = active_snapshot()
    if snapshot is None:
        return None
    frame = snapshot.frames.get(kind)
    frame = frame if frame is not None else empty_frame(kind)
    if kind == "spans":
        # held as live spans are (model.encoding), so every page runs the same code over it
        frame = _held_snapshot(snapshot.id, frame) if snapshot.id else held(frame)
    # a snapshot keeps every request of what it froze (only child spans are sampled): it covers the window as
    # the live data did when it was taken (recorded), or completely (a snapshot from before that was recorded)
    coverage = None
    if kind == "spans":
        recorded = cov.from_record(snapshot.manifest.values.get("spans_coverage"))
        coverage = recorded or cov.complete(frame.get_column("trace_id").n_unique())
    return Loaded(kind, frame, sources=("snapshot",), coverage=coverage,
                  generation=Generation(("snapshot", snapshot.id, kind)))


@st.cache_resource(show_spinner=False, max_entries=4)
def _held_snapshot(snapshot_id: str, _spans: pl.DataFrame) -> pl.DataFrame:
    return held(_spans)


def loads_in_flight() -> bool:
    """Whether any load is still reading (so an empty page says "still loading", not "no data")."""
    return bool(loader().in_flight())


# --- derived frames -------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=2)
def _spans_with_outcome(token: str, _frame: pl.DataFrame, _slo: SloConfig) -> pl.DataFrame:
    return with_outcome(_frame, _slo)


def all_spans() -> pl.DataFrame:
    """Every span of the window with outcome columns (is_error, is_slow, is_bad), unfiltered."""
    loaded = frames("spans")
    slo = sources.slo()
    generation = loaded.generation.derive("outcome", repr(slo))
    return ISSUED.put(_spans_with_outcome(generation.token, loaded.frame, slo), generation)


def apply_filter(spans: pl.DataFrame, flt: Filter) -> pl.DataFrame:
    """Apply the global filter at trace level: a trace stays when its root matches the cohort."""
    out = flt.clip(spans, "start")
    if flt.cohort:
        conds = [pl.col(f"attr.{k}") == v if f"attr.{k}" in out.columns else pl.col(k).cast(pl.String) == v
                 if k in out.columns else pl.lit(False) for k, v in flt.cohort]
        matching = out.filter(pl.col("is_root"), *conds).select("trace_id")
        out = out.join(matching, on="trace_id", how="semi")
    if flt.service:
        touched = out.filter(pl.col("service") == flt.service).select("trace_id").unique()
        out = out.join(touched, on="trace_id", how="semi")
    return out


# a filtered copy of the spans is most of the frame's size at 1 M requests: keep the last few filters only
@st.cache_resource(show_spinner=False, max_entries=4)
def _filtered(token: str, flt: Filter, _spans: pl.DataFrame) -> pl.DataFrame:
    return apply_filter(_spans, flt)


def filtered_spans(*, whole_window: bool = False) -> pl.DataFrame:
    """Spans under the global filter, with outcome columns.

    ``whole_window`` keeps the cohort and service filter but ignores the time window, so the time
    before a selection can serve as its baseline.
    """
    return _under(all_spans(), _filter(whole_window=whole_window))


def _filter(*, whole_window: bool) -> Filter:
    flt = current_filter()
    return Filter(None, None, flt.cohort, flt.service) if whole_window else flt


def _under(frame: pl.DataFrame, flt: Filter) -> pl.DataFrame:
    """``frame`` under ``flt``, cached by its generation; no filter gives the frame itself (the same generation, so
    what is derived from it is shared with the unfiltered view)."""
    if flt == Filter():
        return frame
    generation = derived(frame, "filter", repr(flt))
    return ISSUED.put(_filtered(generation.token, flt, frame), generation)


@st.cache_resource(show_spinner=False, max_entries=8)
def _timeline(token: str, _events: pl.DataFrame, _breakers: pl.DataFrame, _pools: pl.DataFrame,
              _spans: pl.DataFrame) -> pl.DataFrame:
    return timeline(_events, breakers=_breakers, pools=_pools, spans=_spans)


def timeline_events() -> pl.DataFrame:
    """Change events plus derived markers (breaker flips, pool saturation onset, retry storms), by time."""
    events, breakers, pools = frames("events"), frames("breakers"), frames("pools")
    spans = all_spans()
    generation = Generation(("timeline", *(i.generation.token for i in (events, breakers, pools)), derived(spans).token))
    return _timeline(generation.token, events.frame, breakers.frame, pools.frame, spans)


@st.cache_resource(show_spinner=False, max_entries=8)
def _roots(token: str, _spans: pl.DataFrame) -> pl.DataFrame:
    return _spans.filter(pl.col("is_root"))


def _requests_of(spans: pl.DataFrame) -> pl.DataFrame:
    generation = derived(spans, "roots")
    return ISSUED.put(_roots(generation.token, spans), generation)


def all_requests() -> pl.DataFrame:
    """Every root span (request) of the window, unfiltered, with outcome columns."""
    return _requests_of(all_spans())


def filtered_requests(*, whole_window: bool = False) -> pl.DataFrame:
    """Root spans (requests) under the global filter; the same object across reruns, so caches keyed on it hit.

    Without a service filter the requests are filtered directly (the same rows as the roots of the filtered
    spans: the time window and the cohort are read on root spans), a slice of them for a time window alone.
    """
    flt = _filter(whole_window=whole_window)
    if flt.service:  # a trace is kept when any of its spans is on the service: that needs the spans
        return _requests_of(filtered_spans(whole_window=whole_window))
    return _under(all_requests(), flt)
