"""Where pages get their data: config, connectors and frames (the only module with st.cache_*).

Frames are fetched for the incident window from every source that can serve the kind, merged,
and kept in ``st.cache_resource`` (frames are immutable, so no pickled copies per hit). A source
that fails never blanks a page: its problem becomes a notice on ``Loaded.problems``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import streamlit as st

from analysis.outcome import with_outcome
from connectors.base import Connector, Query
from connectors.errors import ConfigError, ConnectorError
from connectors.runtime.fanout import fetch_all, notices_of, stale_since
from config import AppConfig, SloConfig, resolve_path
from connectors.registry import build_connector, load_config
from model.schemas import empty_frame
from ui.state import Filter, current_filter

log = logging.getLogger("faultline.ui")
T = TypeVar("T")
CACHE_TTL_S = 60
DEADLINE_S = 8.0
MAX_TRACES_PER_QUERY = 1000


@dataclass(frozen=True)
class Loaded:
    """A merged frame plus what went wrong getting it."""

    kind: str
    frame: pl.DataFrame
    problems: tuple[str, ...] = ()
    stale_since: datetime | None = None
    sources: tuple[str, ...] = ()
    executed: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()  # data-quality notes (limits hit, rows dropped): shown, but not as failures


def _config_key() -> tuple[str, float]:
    path = resolve_path()
    if path is None:
        return ("", 0.0)
    try:
        return (str(path), path.stat().st_mtime)
    except OSError:
        return (str(path), -1.0)


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_config(path: str, mtime: float) -> AppConfig | ConfigError:
    try:
        return load_config(Path(path) if path else None, secrets=_secrets())
    except ConfigError as exc:
        log.error("config error: %s", exc.describe())
        return exc


def _secrets() -> dict[str, object]:
    try:
        return {"connections": dict(st.secrets.get("connections", {}))}
    except Exception:  # no secrets.toml: Streamlit raises rather than returning the default
        return {}


def app_config() -> AppConfig:
    """The parsed config; a broken config stops the page with a clear message (never a trace)."""
    loaded = _load_config(*_config_key())
    if isinstance(loaded, ConfigError):
        st.error(f"**Configuration problem** — {loaded.message}")
        st.caption("Fix the file and reload the page. Faultline does not guess at a broken configuration.")
        st.stop()
    assert isinstance(loaded, AppConfig)
    return loaded


def slo() -> SloConfig:
    return app_config().slo


@st.cache_resource(show_spinner=False, max_entries=4)
def _connectors(config_key: str, _config: AppConfig) -> tuple[dict[str, Connector], tuple[str, ...]]:
    built: dict[str, Connector] = {}
    problems: list[str] = []
    for source in _config.sources:
        try:
            built[source.name] = build_connector(source)
        except ConnectorError as exc:
            log.error("cannot build source %s: %s", source.name, exc.describe())
            problems.append(exc.describe())
        except Exception as exc:  # a connector constructor bug must not take the page down
            log.exception("connector %s failed to build", source.name)
            problems.append(f"{source.name}: cannot start ({type(exc).__name__}: {exc})")
    return built, tuple(problems)


def connectors() -> tuple[dict[str, Connector], tuple[str, ...]]:
    config = app_config()
    return _connectors(repr(config), config)


def incident_window() -> tuple[datetime, datetime]:
    """The window every page works in: from sources.yaml, else the last N minutes (to the minute)."""
    config = app_config()
    from ui.snapshot_mode import snapshot_window

    snap_start, snap_end = snapshot_window()
    if snap_start and snap_end:
        return snap_start, snap_end
    window = config.window
    if window and window.start and window.end:
        return window.start, window.end
    if window is None and any(s.type == "demo" for s in config.sources):
        from connectors.demo import window as demo_window

        return demo_window()
    minutes = window.last_minutes if window else 60.0
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(minutes=minutes), end


@st.cache_resource(show_spinner="Loading from the data sources…", ttl=CACHE_TTL_S, max_entries=16)
def _fetch(kind: str, start: datetime, end: datetime, config_key: str, refresh: int,
           _sources: dict[str, Connector], _config: AppConfig) -> Loaded:
    wanted = {name: c for name, c in _sources.items() if kind in c.capabilities}
    if not wanted:
        return Loaded(kind, empty_frame(kind), (f"no configured source serves {kind.replace('_', ' ')}",))
    # A window-wide spans query asks trace backends for as many traces as they allow in one search.
    params = {"limit": MAX_TRACES_PER_QUERY} if kind == "spans" else {}
    queries = {name: [Query(ref_id=kind, kind=kind, start=start, end=end, params=params)] for name in wanted}
    outcomes = fetch_all(wanted, queries, deadline_s(), sources={s.name: s for s in _config.sources})
    frames_, problems, notices, executed, stale = [], [], [], [], []
    for name, results in outcomes.items():
        for result in results:
            if result.frame is not None:
                frames_.append(result.frame)
            for line in notices_of(result):
                line = line if line.startswith(name) else f"{name}: {line}"
                # failures and stale answers are problems; data-quality notes are only notices
                is_problem = result.error is not None and line.endswith(result.error.describe()) or "stale since" in line
                (problems if is_problem else notices).append(line)
            if (since := stale_since(result)) is not None:
                stale.append(since)
            if result.executed_query:
                executed.append(f"{name}: {result.executed_query}")
    merged = pl.concat(frames_, how="diagonal_relaxed") if frames_ else empty_frame(kind)
    return Loaded(kind, merged, tuple(problems), min(stale) if stale else None, tuple(wanted), tuple(executed),
                  tuple(notices))


def deadline_s() -> float:
    """The page's budget for one round of source queries (FAULTLINE_DEADLINE_S, default 8 s)."""
    try:
        return max(0.5, float(os.environ.get("FAULTLINE_DEADLINE_S", DEADLINE_S)))
    except ValueError:
        return DEADLINE_S


def refresh() -> None:
    """Forget cached answers on the next fetch (the "reload" button and live mode call this)."""
    st.session_state["data_refresh"] = st.session_state.get("data_refresh", 0) + 1


def frames(kind: str) -> Loaded:
    """All sources' frames of ``kind`` for the incident window (plus uploaded trace files), merged, unfiltered."""
    snap = _snapshot_frames(kind)
    if snap is not None:
        return snap
    built, build_problems = connectors()
    start, end = incident_window()
    config = app_config()
    loaded = _fetch(kind, start, end, repr(config), st.session_state.get("data_refresh", 0), built, config)
    if build_problems:
        loaded = Loaded(kind, loaded.frame, build_problems + loaded.problems, loaded.stale_since, loaded.sources,
                        loaded.executed, loaded.notices)
    if kind == "spans":
        from ui.uploads import uploaded_frames

        uploads = uploaded_frames()
        if uploads:
            merged = _with_uploads(id(loaded.frame), tuple(id(f) for f in uploads.values()), loaded.frame,
                                   tuple(uploads.values()))
            loaded = Loaded(kind, merged, loaded.problems, loaded.stale_since,
                            loaded.sources + tuple(f"upload:{name}" for name in uploads), loaded.executed,
                            loaded.notices)
    return loaded


@st.cache_resource(show_spinner=False, max_entries=8)
def _with_uploads(frame_id: int, upload_ids: tuple[int, ...], _frame: pl.DataFrame,
                  _uploads: tuple[pl.DataFrame, ...]) -> pl.DataFrame:
    return pl.concat([_frame, *_uploads], how="diagonal_relaxed").unique(["trace_id", "span_id"], keep="first",
                                                                         maintain_order=True)


def _snapshot_frames(kind: str) -> Loaded | None:
    try:
        from ui.snapshot_mode import active_snapshot
    except ImportError:
        return None
    snapshot = active_snapshot()
    if snapshot is None:
        return None
    frame = snapshot.frames.get(kind)
    return Loaded(kind, frame if frame is not None else empty_frame(kind), sources=("snapshot",))


@st.cache_resource(show_spinner=False, max_entries=8)
def _spans_with_outcome(_frame: pl.DataFrame, frame_id: int, slo_key: str, _slo: SloConfig) -> pl.DataFrame:
    return with_outcome(_frame, _slo)


def all_spans() -> pl.DataFrame:
    """Every span of the window with outcome columns (is_error, is_slow, is_bad), unfiltered."""
    loaded = frames("spans")
    config = slo()
    return _spans_with_outcome(loaded.frame, id(loaded.frame), repr(config), config)


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


@st.cache_resource(show_spinner=False, max_entries=32)
def _filtered(flt: Filter, frame_id: int, _spans: pl.DataFrame) -> pl.DataFrame:
    return apply_filter(_spans, flt)


def filtered_spans(*, whole_window: bool = False) -> pl.DataFrame:
    """Spans under the global filter, with outcome columns.

    ``whole_window`` keeps the cohort and service filter but ignores the time window, so the time
    before a selection can serve as its baseline.
    """
    spans = all_spans()
    flt = current_filter()
    if whole_window:
        flt = Filter(None, None, flt.cohort, flt.service)
    return _filtered(flt, id(spans), spans)


@st.cache_resource(show_spinner=False, max_entries=8)
def _timeline(key: tuple[int, int, int, int], _events: pl.DataFrame, _breakers: pl.DataFrame, _pools: pl.DataFrame,
              _spans: pl.DataFrame) -> pl.DataFrame:
    from analysis.timeline import timeline

    return timeline(_events, breakers=_breakers, pools=_pools, spans=_spans)


def timeline_events() -> pl.DataFrame:
    """Change events plus derived markers (breaker flips, pool saturation onset, retry storms), by time."""
    events, breakers, pools = frames("events").frame, frames("breakers").frame, frames("pools").frame
    spans = all_spans()
    return _timeline((id(events), id(breakers), id(pools), id(spans)), events, breakers, pools, spans)


@st.cache_resource(show_spinner=False, max_entries=32)
def _roots(frame_id: int, _spans: pl.DataFrame) -> pl.DataFrame:
    return _spans.filter(pl.col("is_root"))


def all_requests() -> pl.DataFrame:
    """Every root span (request) of the window, unfiltered, with outcome columns."""
    spans = all_spans()
    return _roots(id(spans), spans)


def filtered_requests(*, whole_window: bool = False) -> pl.DataFrame:
    """Root spans (requests) under the global filter; the same object across reruns, so caches keyed on it hit."""
    spans = filtered_spans(whole_window=whole_window)
    return _roots(id(spans), spans)


@st.cache_resource(show_spinner=False, max_entries=64)
def _memo(fn_name: str, frame_id: int, key: tuple[Any, ...], _fn: Callable[..., Any], _frame: pl.DataFrame) -> Any:
    return _fn(_frame, *key)


def memo(fn: Callable[..., T], frame: pl.DataFrame, *args: Hashable) -> T:
    """``fn(frame, *args)`` computed once per (function, frame object, args).

    For pure analysis over the frames this module hands out: those frames are the same objects across
    reruns until the data changes, so keying on their identity is exact and costs nothing to hash.
    """
    return _memo(f"{fn.__module__}.{fn.__qualname__}", id(frame), args, fn, frame)  # type: ignore[no-any-return]
