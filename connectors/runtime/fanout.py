"""Run a page's queries against every source at once, each source in its own bulkhead, under one deadline.

How the UI uses it (``ui/data.py``)::

    with page_run():                                   # connectors.runtime.log: one correlation id per rerun
        results = fetch_all(connectors, {"jaeger": [q1, q2], "prom": [q3]}, deadline_s=8.0)
    for source, rs in results.items():
        for r in rs:
            if r.frame is not None: draw(r.frame)      # fresh, or the last good frame when stale
            problems += notices_of(r)                  # "stale since …" / degraded notices, one line each
            since = stale_since(r)                     # datetime (UTC) for a badge, or None

Guarantees:

* ``fetch_all`` returns within ``deadline_s`` (+ a few ms) whatever the sources do. A query still
  running at the deadline gets a ``SourceTimeout`` result; its worker keeps running in the source's
  own bulkhead (and is bounded by the HTTP timeouts) but cannot block the page.
* Bulkhead: each source has its own thread pool (``max_concurrent`` workers, ``max_queued`` waiting;
  ``options.bulkhead``). When both are full the query is refused at once with
  ``SourceUnavailable("bulkhead full …")``, so a slow source only saturates itself.
* An open breaker (``resilience``) refuses the source's queries without starting a worker.
* Stale fallback: every successful result is remembered in :data:`LAST_GOOD`, keyed by source, kind
  and params (not the time window). When a query fails and an earlier answer exists, the result is a
  :class:`StaleResult`: the old frame, ``error=None``, ``stale_since`` set, the live error in
  ``live_error`` and a notice starting with :data:`STALE_PREFIX`. Otherwise the result carries the error.
* Every call is logged once as JSON (``source_call``: source, ref_id, kind, duration_ms, outcome).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from connectors.base import Connector, Query, Result
from connectors.errors import ConfigError, ConnectorBug, ConnectorError, SourceTimeout, SourceUnavailable
from connectors.runtime.log import current_correlation_id, log_call, page_run
from config import SourceConfig
from connectors.runtime.policy import policy_for, policy_from_options
from connectors.runtime.resilience import CallScope, Deadline, breaker_for, use_deadline, use_scope

STALE_PREFIX = "stale since "
EPSILON_S = 0.05


@dataclass(frozen=True)
class StaleResult(Result):
    """A failed query answered from the last good result. ``error`` stays None so the frame is drawn."""

    stale_since: datetime | None = None
    live_error: ConnectorError | None = None


def stale_since(result: Result) -> datetime | None:
    """When the drawn data was fetched, if it is stale; None for fresh results and plain errors."""
    return result.stale_since if isinstance(result, StaleResult) else None


def notices_of(result: Result) -> list[str]:
    """Every line the UI should show for this result: its notices, then the error (if any)."""
    lines = list(result.notices)
    if result.error is not None:
        lines.append(result.error.describe())
    return lines


# --- last good answers ----------------------------------------------------------------------


class LastGood:
    """Thread-safe LRU of successful results, keyed by (source, kind, params) — never the time window."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str, str], tuple[Result, datetime]] = OrderedDict()

    @staticmethod
    def key(source: str, query: Query) -> tuple[str, str, str]:
        return (source, query.kind, repr(_freeze(query.params)))

    def put(self, source: str, query: Query, result: Result, at: datetime | None = None) -> None:
        with self._lock:
            k = self.key(source, query)
            self._items[k] = (result, at or datetime.now(timezone.utc))
            self._items.move_to_end(k)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def get(self, source: str, query: Query) -> tuple[Result, datetime] | None:
        with self._lock:
            return self._items.get(self.key(source, query))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


LAST_GOOD = LastGood()


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_freeze(v) for v in value]
        return tuple(sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items)
    return value


# --- bulkheads ------------------------------------------------------------------------------


class Bulkhead:
    """A source's own worker pool: ``max_concurrent`` running, ``max_queued`` waiting, the rest refused."""

    def __init__(self, source: str, max_concurrent: int = 4, max_queued: int = 8) -> None:
        self.source = source
        self.max_concurrent, self.max_queued = max_concurrent, max_queued
        self._executor = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix=f"bulkhead-{source}")
        self._slots = threading.BoundedSemaphore(max_concurrent + max_queued)
        self._lock = threading.Lock()
        self.in_flight = 0

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        """Start ``fn(*args)`` in this bulkhead or raise ``SourceUnavailable('bulkhead full …')`` at once."""
        if not self._slots.acquire(blocking=False):
            raise SourceUnavailable(
                f"bulkhead full ({self.max_concurrent} running, {self.max_queued} queued)",
                source=self.source,
                hint="the source's latency; earlier calls are still running",
            )
        with self._lock:
            self.in_flight += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=False)

    def _release(self, _future: Future[Any] | None) -> None:
        with self._lock:
            self.in_flight -= 1
        self._slots.release()


_bulkheads: dict[str, Bulkhead] = {}
_bulkheads_lock = threading.Lock()


def bulkhead_for(source: str, max_concurrent: int | None = None, max_queued: int | None = None) -> Bulkhead:
    """The process-wide bulkhead of a source (sized from its policy unless given); resized on change."""
    policy = policy_for(source)
    size = (max_concurrent or policy.max_concurrent, policy.max_queued if max_queued is None else max_queued)
    with _bulkheads_lock:
        current = _bulkheads.get(source)
        if current is None or (current.max_concurrent, current.max_queued) != size:
            if current is not None:
                current.shutdown()  # its stragglers finish on their own; new calls go to the new pool
            current = _bulkheads[source] = Bulkhead(source, *size)
        return current


def reset_bulkheads() -> None:
    with _bulkheads_lock:
        _bulkheads.clear()


# --- fan-out --------------------------------------------------------------------------------


def fetch_all(
    connectors: Mapping[str, Connector],
    queries: Mapping[str, Sequence[Query]],
    deadline_s: float,
    *,
    sources: Mapping[str, SourceConfig] | None = None,
    cache: LastGood | None = None,
) -> dict[str, list[Result]]:
    """Run every source's queries in parallel bulkheads; return one Result per query, within ``deadline_s``.

    ``sources`` (optional) supplies bulkhead sizes from ``options.bulkhead``; ``cache`` defaults to
    the process-wide :data:`LAST_GOOD`.
    """
    if current_correlation_id() is None:
        with page_run():
            return fetch_all(connectors, queries, deadline_s, sources=sources, cache=cache)
    store = LAST_GOOD if cache is None else cache
    deadline = Deadline(deadline_s)
    started = time.perf_counter()
    out: dict[str, list[Result | None]] = {name: [None] * len(qs) for name, qs in queries.items()}
    pending: list[tuple[str, int, Query, Future[Result], CallScope]] = []
    for name, qs in queries.items():
        connector = connectors.get(name)
        refusal: ConnectorError | None = None
        if connector is None:
            refusal = ConfigError(f"no source named {name!r} is configured", source=name)
        elif breaker_for(name).is_rejecting():
            refusal = breaker_for(name).rejection()
        for i, query in enumerate(qs):
            error = refusal
            if error is None and connector is not None:
                scope = CallScope()
                try:
                    ctx = contextvars.copy_context()  # carries the page's correlation id into the worker
                    future = _bulkhead(name, sources).submit(ctx.run, _run_one, connector, name, query, deadline, scope)
                except ConnectorError as exc:
                    error = exc
                else:
                    pending.append((name, i, query, future, scope))
                    continue
            assert error is not None
            out[name][i] = _finish(name, query, Result(query.ref_id, query.kind, error=error), store, 0.0, "rejected")
    wait([p[3] for p in pending], timeout=deadline.remaining_s() + EPSILON_S)
    for name, i, query, future, scope in pending:
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if future.done() and not future.cancelled():
            result = future.result()
            out[name][i] = _finish(name, query, result, store, result.duration_ms, "ok" if result.ok else "error")
            continue
        future.cancel()  # frees the slot if it never started; a running worker is left to finish
        timeout = SourceTimeout(
            f"no answer within the page's {deadline_s:g} s deadline; the call continues in the background",
            source=name,
            hint="the source's latency",
        )
        with scope.lock:
            scope.abandoned = True
            record = not scope.failure_recorded
        if record:
            breaker_for(name).record_failure(timeout)
        out[name][i] = _finish(name, query, Result(query.ref_id, query.kind, error=timeout, duration_ms=elapsed_ms), store, elapsed_ms, "timeout")
    return {name: [r for r in rs if r is not None] for name, rs in out.items()}


def _bulkhead(name: str, sources: Mapping[str, SourceConfig] | None) -> Bulkhead:
    config = (sources or {}).get(name)
    if config is None:
        return bulkhead_for(name)
    policy = policy_from_options(name, config.options, config.timeout_s)
    return bulkhead_for(name, policy.max_concurrent, policy.max_queued)


def _run_one(connector: Connector, name: str, query: Query, deadline: Deadline, scope: CallScope) -> Result:
    """One query in a bulkhead worker, under the page deadline; never raises."""
    started = time.perf_counter()
    with use_deadline(deadline), use_scope(scope):
        try:
            if deadline.expired:
                raise SourceTimeout("the page's deadline ran out while queued in the bulkhead", source=name)
            results = connector.query([query])
            if len(results) != 1 or not isinstance(results[0], Result):
                raise ConnectorBug(f"query() returned {len(results)} results for 1 query", source=name)
            result = results[0]
        except ConnectorError as exc:
            exc.source = exc.source or name
            result = Result(query.ref_id, query.kind, error=exc)
        except Exception as exc:  # query() must never raise; if it does, it is our bug, shown as one line
            result = Result(query.ref_id, query.kind, error=ConnectorBug(f"query() raised {type(exc).__name__}: {exc}", source=name))
    duration_ms = result.duration_ms or (time.perf_counter() - started) * 1000.0
    with scope.lock:
        record = not scope.failure_recorded and not scope.abandoned
    if record:  # the call's final outcome: also for sources that do not use connectors.runtime.http (files, SQL)
        breaker_for(name).record(result.error)
    return replace(result, duration_ms=duration_ms)


def _finish(name: str, query: Query, result: Result, store: LastGood, duration_ms: float, outcome: str) -> Result:
    """Remember good answers, fall back to the last good one on failure, and log the call once."""
    if result.error is None and result.frame is not None:
        store.put(name, query, result)
        log_call(name, query.ref_id, query.kind, duration_ms, "ok")
        return result
    error = result.error or ConnectorBug("result has neither a frame nor an error", source=name)
    cached = store.get(name, query)
    if cached is None:
        log_call(name, query.ref_id, query.kind, duration_ms, outcome if outcome != "ok" else "error", error)
        return result if result.error is not None else replace(result, error=error)
    good, at = cached
    notice = f"{STALE_PREFIX}{at.strftime('%H:%M:%S UTC')} ({error.describe()})"
    log_call(name, query.ref_id, query.kind, duration_ms, "stale", error, stale_since=at.isoformat())
    return StaleResult(
        ref_id=query.ref_id,
        kind=query.kind,
        frame=good.frame,
        executed_query=good.executed_query,
        notices=(*good.notices, notice),
        error=None,
        duration_ms=duration_ms,
        stale_since=at,
        live_error=error,
    )
