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
* Each source's runtime (``connectors.runtime.source``) holds its breaker and bulkhead, built once.
* Bulkhead: each source has its own thread pool (``max_concurrent`` workers, ``max_queued`` waiting;
  ``options.bulkhead``). When both are full the query is refused at once with
  ``SourceUnavailable("bulkhead full …")``, so a slow source only saturates itself.
* An open breaker (``resilience``) refuses the source's queries without starting a worker.
* Stale fallback: every successful result is remembered in :data:`LAST_GOOD`, keyed by source, kind
  and params (not the time window). When a query fails and an earlier answer exists, the result is a
  :class:`StaleResult`: the old frame (and its coverage), ``error=None``, ``stale_since`` set, the live error in
  ``live_error`` and a notice starting with :data:`STALE_PREFIX`. Otherwise the result carries the error.
* Every call is logged once as JSON (``source_call``: source, ref_id, kind, duration_ms, outcome).
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from config import SourceConfig
from connectors.base import Connector, Query, Result
from connectors.errors import ConfigError, ConnectorBug, ConnectorError, SourceTimeout
from connectors.runtime.log import current_correlation_id, log_call, page_run
from connectors.runtime.resilience import Deadline, use_deadline
from connectors.runtime.source import (
    Bulkhead,
    Call,
    SourceRuntime,
    runtime_for,
    runtime_for_source,
    use_call,
)

STALE_PREFIX = "stale since "
EPSILON_S = 0.05
T = TypeVar("T")


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
    """Thread-safe LRU of successful results, keyed by (source, kind, purpose, params) — never the time window."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str, str, str], tuple[Result, datetime]] = OrderedDict()

    @staticmethod
    def key(source: str, query: Query) -> tuple[str, str, str, str]:
        # a window sample and a search with the same params are different answers
        return (source, query.kind, query.purpose, repr(_freeze(query.params)))

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


# --- the one fetch loop (data queries here, health checks in connectors.runtime.health) ------


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """How one call in :func:`run_in_bulkheads` ended: its value, or a refusal/timeout error."""

    value: T | None = None
    error: ConnectorError | None = None
    timed_out: bool = False
    elapsed_ms: float = 0.0


def run_in_bulkheads(
    calls: Sequence[tuple[str, Callable[[], T]]],
    deadline: Deadline,
    *,
    outcome_of: Callable[[T], BaseException | None] | None,
    timeout_error: Callable[[str], ConnectorError],
) -> list[Outcome[T]]:
    """Run each ``(source, work)`` in the source's bulkhead, behind its breaker, under ``deadline``; one Outcome each.

    ``work`` must not raise. With ``outcome_of`` each call is admitted through the breaker and its
    outcome (``outcome_of(value)``, or the timeout when the deadline cuts it off) is recorded once by
    the source's runtime; without it (health checks) an open breaker refuses the call and the work's own
    HTTP requests are admitted and recorded one by one.
    """
    started = time.perf_counter()
    out: list[Outcome[T] | None] = [None] * len(calls)
    pending: list[tuple[int, SourceRuntime, Call | None, Future[T]]] = []
    for i, (name, work) in enumerate(calls):
        runtime = runtime_for(name)
        call: Call | None = None
        try:
            if outcome_of is None:
                refusal = runtime.refusal()
                if refusal is not None:
                    raise refusal
            else:
                call = runtime.admit()
            ctx = contextvars.copy_context()  # carries the page's correlation id into the worker
            pending.append((i, runtime, call, runtime.bulkhead.submit(ctx.run, _in_call, runtime, call, deadline, work, outcome_of)))
        except ConnectorError as exc:
            if call is not None:
                runtime.release(call)
            out[i] = Outcome(error=exc)
    wait([p[3] for p in pending], timeout=deadline.remaining_s() + EPSILON_S)
    for i, runtime, call, future in pending:
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if future.done() and not future.cancelled():
            raised = future.exception()
            out[i] = (Outcome(value=future.result(), elapsed_ms=elapsed_ms) if raised is None else  # work broke its contract:
                      Outcome(error=ConnectorBug(f"{type(raised).__name__}: {raised}", source=runtime.name), elapsed_ms=elapsed_ms))
            continue
        future.cancel()  # frees the slot if it never started; a running worker is left to finish
        timeout = timeout_error(runtime.name)
        if call is not None:
            runtime.abandon(call, timeout)
        out[i] = Outcome(error=timeout, timed_out=True, elapsed_ms=elapsed_ms)
    return [o if o is not None else Outcome() for o in out]


def _in_call(runtime: SourceRuntime, call: Call | None, deadline: Deadline, work: Callable[[], T],
             outcome_of: Callable[[T], BaseException | None] | None) -> T:
    with use_deadline(deadline):
        if call is None or outcome_of is None:
            return work()
        try:
            with use_call(call):
                value = work()
        except BaseException as exc:
            runtime.settle(call, exc)
            raise
        runtime.settle(call, outcome_of(value))  # ignored if the page already gave up on it (abandon)
        return value


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

    ``sources`` (optional) configures each source's runtime from its ``options`` (a no-op when
    unchanged); ``cache`` defaults to the process-wide :data:`LAST_GOOD`.
    """
    if current_correlation_id() is None:
        with page_run():
            return fetch_all(connectors, queries, deadline_s, sources=sources, cache=cache)
    store = LAST_GOOD if cache is None else cache
    deadline = Deadline(deadline_s)
    plan: list[tuple[str, Query, ConnectorError | None]] = []  # (source, query, why it cannot run)
    for name, qs in queries.items():
        connector = connectors.get(name)
        problem: ConnectorError | None = None
        if connector is None:
            problem = ConfigError(f"no source named {name!r} is configured", source=name)
        elif name in (sources or {}):
            try:
                runtime_for_source((sources or {})[name])
            except ConnectorError as exc:
                problem = exc
        plan.extend((name, query, problem) for query in qs)
    calls: list[tuple[str, Callable[[], Result]]] = [
        (name, functools.partial(_run_one, connectors[name], name, query, deadline))
        for name, query, problem in plan if problem is None
    ]

    def timeout_error(name: str) -> ConnectorError:
        return SourceTimeout(f"no answer within the page's {deadline_s:g} s deadline; the call continues in the background",
                             source=name, hint="the source's latency")

    outcomes = iter(run_in_bulkheads(calls, deadline, outcome_of=lambda r: r.error, timeout_error=timeout_error))
    out: dict[str, list[Result]] = {name: [] for name in queries}
    for name, query, problem in plan:
        outcome = Outcome[Result](error=problem) if problem is not None else next(outcomes)
        if outcome.value is not None:
            done = outcome.value
            result = _finish(name, query, done, store, done.duration_ms, "ok" if done.ok else "error")
        elif outcome.timed_out:
            late = Result(query.ref_id, query.kind, error=outcome.error, duration_ms=outcome.elapsed_ms)
            result = _finish(name, query, late, store, outcome.elapsed_ms, "timeout")
        else:
            result = _finish(name, query, Result(query.ref_id, query.kind, error=outcome.error), store, 0.0, "rejected")
        out[name].append(result)
    return out


def bulkhead_for(name: str) -> Bulkhead:
    """A source's bulkhead (its runtime's)."""
    return runtime_for(name).bulkhead


def _run_one(connector: Connector, name: str, query: Query, deadline: Deadline) -> Result:
    """One query in a bulkhead worker, under the page deadline; never raises."""
    started = time.perf_counter()
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
    return replace(result, duration_ms=result.duration_ms or (time.perf_counter() - started) * 1000.0)

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
        coverage=good.coverage,
        stale_since=at,
        live_error=error,
    )
