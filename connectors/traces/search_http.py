"""What the HTTP trace connectors (Jaeger, Tempo, Zipkin) share: the query boundary, 404-as-empty, bounded fetches.

Subclasses implement ``search(search, start, end)``, ``trace_by_id(trace_id)`` (both return
``(Converted, executed_query)``) and ``probe()`` (a one-line health message; raise on failure).
All HTTP goes through ``connectors.runtime.http`` (deadline, retry, breaker, error mapping).

A spans query with ``purpose="window"`` is never "the newest N of the window": :meth:`sample_window`
searches equal time slices concurrently with a per-slice limit, within ``budget_traces``
(``connectors.traces.sampling``), and the Result carries its :class:`~connectors.base.Coverage`.
Subclasses may override :meth:`window_parts` (several searches per slice), :meth:`search_slice` and
:meth:`complete_window` (a backend whose search returns ids, not whole traces).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import httpx
import polars as pl

from config import SourceConfig
from connectors.base import Coverage, Fetched, Health, Query, Result, run_query
from connectors.errors import ConfigError, ConnectorError, PayloadError, SourceRejected
from connectors.runtime.http import get_bytes, get_json, make_client
from connectors.traces.frame import Converted, short
from connectors.traces.query import MAX_BUDGET_TRACES, SpanSearch, merge
from connectors.traces.sampling import (
    DEFAULT_BUDGET_TRACES,
    DEFAULT_SLICES,
    SliceCount,
    TimeSlice,
    count_slice,
    describe_plan,
    plan_slices,
    trace_starts,
    window_coverage,
)

DEFAULT_MAX_TRACES = 20
DEFAULT_WORKERS = 4
Item = TypeVar("Item")
V = TypeVar("V")


class NotFound:
    """Sentinel: the backend answered 404 (no such trace / no match)."""


NOT_FOUND = NotFound()


def int_option(source: SourceConfig, key: str, default: int, low: int, high: int) -> int:
    value = source.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"source {source.name!r}: options.{key} must be an integer in {low}..{high}",
                          source=source.name, hint="sources.yaml")
    return value


@dataclass(frozen=True)
class SliceFound:
    """One search of one time slice: its traces (``trace_id``, ``start``) and, when the search returns
    whole traces, their spans."""

    traces: pl.DataFrame
    converted: Converted | None
    executed: str


class TraceHttpConnector:
    """Base class; see the module docstring."""

    type_name = "traces"
    capabilities = frozenset({"spans", "trace_by_id", "search"})
    slice_granularity_us = 1  # the finest time the backend's search takes (Zipkin: ms, Tempo: s)

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None, *, strict: bool = False) -> None:
        if not str(source.options.get("url", "")).strip():
            raise ConfigError(f"source {source.name!r}: options.url is required", source=source.name, hint="sources.yaml")
        self.source = source
        self.name = source.name
        self.client = client if client is not None else make_client(source)
        self.strict = strict
        self.max_traces = int_option(source, "max_traces", DEFAULT_MAX_TRACES, 1, 500)
        self.workers = int_option(source, "fetch_workers", DEFAULT_WORKERS, 1, 16)
        self.window_budget = int_option(source, "window_budget_traces", DEFAULT_BUDGET_TRACES, 1, MAX_BUDGET_TRACES)
        self.window_slices = int_option(source, "window_slices", DEFAULT_SLICES, 1, 256)
        self.headers: dict[str, str] = {}

    # --- the contract ------------------------------------------------------------------------

    def query(self, queries: Sequence[Query]) -> list[Result]:
        """One Result per query, in order; never raises."""
        return [run_query(self.name, q, self._fetch, strict=self.strict) for q in queries]

    def check_health(self) -> Health:
        """Never raises: a failure is a ``down`` Health with the error's one-line description."""
        started = time.perf_counter()
        try:
            message = self.probe()
        except ConnectorError as exc:
            return Health("down", exc.describe(), _ms(started))
        except Exception as exc:  # a health check must not take the Sources page down
            return Health("down", f"{self.name}: unexpected {type(exc).__name__}: {short(str(exc), 120)}", _ms(started))
        return Health("ok", message, _ms(started))

    def _fetch(self, query: Query) -> Fetched:
        if query.kind != "spans":
            raise ConfigError(f"{self.type_name} serves spans, not {query.kind!r}", source=self.name)
        search = SpanSearch.from_params(query.params)
        coverage: Coverage | None = None
        try:
            if search.trace_id:
                converted, executed = self.trace_by_id(search.trace_id)
            elif query.purpose == "window":
                converted, executed, coverage = self.sample_window(search, query.start, query.end)
            else:
                converted, executed = self.search(search, query.start, query.end)
        except PayloadError as exc:
            if not exc.hint:
                exc.hint = f"that options.url points at a {self.type_name} query API"
            raise
        notices = converted.notices + search.notices(self.type_name)
        if coverage is None:
            notices += search.limit_notice(self.name, converted.frame)
        return Fetched(converted.frame, executed, notices, coverage)

    # --- window-wide sampling ----------------------------------------------------------------

    def sample_window(self, search: SpanSearch, start: datetime, end: datetime) -> tuple[Converted, str, Coverage]:
        """Traces sampled evenly across ``[start, end)`` within the budget, and what they cover of it."""
        parts = self.window_parts(search)
        plan = plan_slices(start, end, search.budget_traces or self.window_budget, self.window_slices,
                           parts=len(parts), granularity_us=self.slice_granularity_us)
        tasks = [(time_slice, replace(part, limit=time_slice.limit)) for time_slice in plan for part in parts]
        answers, errors = self.concurrently(lambda task: self.search_slice(task[1], task[0]), tasks)
        if errors and not answers:
            raise errors[0]
        counts: list[SliceCount] = [count_slice(task[0], found.traces) for task, found in answers]
        converted = self.complete_window([found for _, found in answers])
        traces_read = converted.frame["trace_id"].n_unique() if converted.frame.height else 0
        found_ids = [found.traces.select("trace_id") for _, found in answers]
        traces_found = pl.concat(found_ids)["trace_id"].n_unique() if found_ids else 0
        notices = list(converted.notices)
        if errors:
            notices.append(f"{self.name}: {len(errors)} of {len(tasks)} time-slice searches failed ({errors[0].describe()}); "
                           "the window's total is extrapolated from the slices that answered")
        executed = describe_plan(plan, len(parts))
        if answers:
            executed += f": {answers[0][1].executed}" + (f" … ({len(tasks)} searches)" if len(tasks) > 1 else "")
        return Converted(converted.frame, tuple(notices)), executed, window_coverage(plan, counts, traces_read, traces_found)

    def window_parts(self, search: SpanSearch) -> list[SpanSearch]:
        """The searches that together cover one slice (one, unless the backend needs e.g. one per service)."""
        return [search]

    def search_slice(self, search: SpanSearch, time_slice: TimeSlice) -> SliceFound:
        """One slice searched with ``search.limit``; by default the backend's search returns whole traces."""
        converted, executed = self.search(search, time_slice.start, time_slice.end)
        return SliceFound(trace_starts(converted.frame), converted, executed)

    def complete_window(self, found: Sequence[SliceFound]) -> Converted:
        """The window's spans from what the slice searches found (merged and deduplicated by default)."""
        return merge(f.converted for f in found if f.converted is not None)

    def concurrently(self, fn: Callable[[Item], V], items: Sequence[Item]) -> tuple[list[tuple[Item, V]], list[ConnectorError]]:
        """``fn`` over ``items``, ``options.fetch_workers`` at a time in copies of the caller's context
        (its deadline and breaker call apply); a ConnectorError is collected, anything else raised."""
        if not items:
            return [], []
        done: list[tuple[Item, V]] = []
        errors: list[ConnectorError] = []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items)), thread_name_prefix=f"{self.name}-fetch") as pool:
            futures = [(item, pool.submit(contextvars.copy_context().run, fn, item)) for item in items]
            for item, future in futures:
                try:
                    done.append((item, future.result()))
                except ConnectorError as exc:
                    errors.append(exc)
        return done, errors

    # --- for subclasses ----------------------------------------------------------------------

    def search(self, search: SpanSearch, start: datetime, end: datetime) -> tuple[Converted, str]:
        raise NotImplementedError

    def trace_by_id(self, trace_id: str) -> tuple[Converted, str]:
        raise NotImplementedError

    def probe(self) -> str:
        raise NotImplementedError

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET JSON through ``connectors.runtime.http`` (deadline, retry, breaker, error mapping)."""
        return get_json(self.client, path, self.name, params, headers=self.headers or None)

    def get_bytes(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        """GET the raw body (converters parse it themselves, e.g. streamed JSON lines)."""
        return get_bytes(self.client, path, self.name, params, headers=self.headers or None)

    def get_or_not_found(self, path: str, params: Mapping[str, Any] | None = None, *, raw: bool = False) -> Any:
        """Like :meth:`get` (or :meth:`get_bytes` when ``raw``), but a 404 returns ``NOT_FOUND``."""
        try:
            return self.get_bytes(path, params) if raw else self.get(path, params)
        except SourceRejected as exc:
            if exc.not_found:
                return NOT_FOUND
            raise

    def fetch_traces(self, trace_ids: Iterable[str], fetch_one: Callable[[str], Converted], *,
                     cap: int | None = None) -> Converted:
        """Fetch up to ``cap`` (default ``options.max_traces``) traces, a few at a time; partial failure becomes a notice."""
        wanted = list(dict.fromkeys(trace_ids))
        ids = wanted[: self.max_traces if cap is None else cap]
        notices: list[str] = []
        if len(wanted) > len(ids):
            notices.append(f"{self.name}: fetched {len(ids)} of {len(wanted)} matching traces (options.max_traces)")
        if not ids:
            return merge([])
        answers, errors = self.concurrently(fetch_one, ids)
        parts = [converted for _, converted in answers]
        if errors and not parts:
            raise errors[0]
        if errors:
            notices.append(f"{self.name}: {len(errors)} of {len(ids)} traces could not be fetched "
                           f"({errors[0].describe()})")
        merged = merge(parts)
        return Converted(merged.frame, merged.notices + tuple(notices))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
