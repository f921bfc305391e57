"""Loads that outlive a page run: one background load per data generation, shared by every session.

A load fetches one frame kind for one window from two groups of sources, each in its own thread:

* **backends** (HTTP, SQL, the demo): bounded by the page deadline; the page waits for them, as before;
* **local** sources (capability ``LOCAL``: files the user pointed at): bounded only by the much longer
  local deadline, because reading a 100 MiB file takes as long as it takes. The page does not wait:
  it draws what is ready and polls, showing ``connector.progress()``, until the load finishes.

Nothing here touches Streamlit; :mod:`ui.frames` keeps the one :class:`Loader` in ``st.cache_resource``.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from config import SourceConfig
from connectors.base import LOCAL, Connector, Coverage, Progress, Query, ReportsProgress
from connectors.runtime.fanout import fetch_all, stale_since
from model.encoding import held
from ui import coverage as cov
from ui.problems import Notice, Problem, read_result

# Serials name answers in cache keys: start from the clock, so a module reloaded in a running server
# (Streamlit's dev-mode reload) never hands out a serial an earlier answer already had.
_serials = itertools.count(time.monotonic_ns())


@dataclass(frozen=True)
class Part:
    """What one group of sources answered for one load (``serial`` names that answer, never reused)."""

    serial: int
    frames: tuple[pl.DataFrame, ...] = ()
    problems: tuple[Problem, ...] = ()
    notices: tuple[Notice, ...] = ()
    executed: tuple[str, ...] = ()
    coverages: tuple[Coverage, ...] = ()
    stale_since: datetime | None = None


@dataclass(frozen=True)
class Request:
    """Everything one load needs: the kind, the window and the sources split by group."""

    kind: str
    start: datetime
    end: datetime
    backends: Mapping[str, Connector]
    local: Mapping[str, Connector]
    configs: Mapping[str, SourceConfig]
    deadline_s: float
    local_deadline_s: float
    budget_traces: int


def split_local(connectors: Mapping[str, Connector]) -> tuple[dict[str, Connector], dict[str, Connector]]:
    """(backends, local sources): local ones read files and are not bounded by the page deadline."""
    local = {n: c for n, c in connectors.items() if LOCAL in c.capabilities}
    return {n: c for n, c in connectors.items() if n not in local}, local


def window_query(kind: str, start: datetime, end: datetime, budget_traces: int) -> Query:
    """The window-wide query for ``kind``: spans ask for every request (or an even sample within budget)."""
    if kind == "spans":
        return Query(ref_id=kind, kind=kind, start=start, end=end, params={"budget_traces": budget_traces},
                     purpose="window")
    return Query(ref_id=kind, kind=kind, start=start, end=end)


def fetch_part(request: Request, group: Mapping[str, Connector], deadline_s: float) -> Part:
    """Ask every source of ``group`` once (in parallel bulkheads) and collect typed answers."""
    serial = next(_serials)
    if not group:
        return Part(serial)
    query = window_query(request.kind, request.start, request.end, request.budget_traces)
    outcomes = fetch_all(group, {name: [query] for name in group}, deadline_s, sources=request.configs)
    frames: list[pl.DataFrame] = []
    problems: list[Problem] = []
    notices: list[Notice] = []
    executed: list[str] = []
    coverages: list[Coverage] = []
    stale: list[datetime] = []
    for name, results in outcomes.items():
        for result in results:
            found, noted = read_result(name, result)
            problems += found
            notices += noted
            if result.frame is not None:
                # one chunk per column (an eager group_by over a many-chunk frame copies every column first);
                # spans with low-cardinality strings as codes (a third of the memory), in start order (a time
                # window of them is then a slice: ui.view_state.time_slice)
                frame = result.frame.rechunk()
                frames.append(held(frame) if request.kind == "spans" else frame)
                if request.kind == "spans":
                    # a window query without a stated coverage returned every trace it has (the contract)
                    coverages.append(result.coverage or cov.complete(result.frame.get_column("trace_id").n_unique()))
            if (since := stale_since(result)) is not None:
                stale.append(since)
            if result.executed_query:
                executed.append(f"{name}: {result.executed_query}")
    return Part(serial, tuple(frames), tuple(problems), tuple(notices), tuple(executed), tuple(coverages),
                min(stale) if stale else None)


@dataclass
class Load:
    """One load in flight or done: the backends' part and the local part, each filled by its thread."""

    request: Request
    previous: Load | None = None
    backends: Part | None = None
    local: Part | None = None
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    _backends_done: threading.Event = field(default_factory=threading.Event)
    _local_done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        for group, deadline_s, done, attr in (
            (self.request.backends, self.request.deadline_s, self._backends_done, "backends"),
            (self.request.local, self.request.local_deadline_s, self._local_done, "local"),
        ):
            ctx = contextvars.copy_context()  # the starting page's correlation id goes into the load's log lines
            threading.Thread(target=ctx.run, args=(self._run, group, deadline_s, done, attr), daemon=True,
                             name=f"faultline-load-{self.request.kind}-{attr}").start()

    def _run(self, group: Mapping[str, Connector], deadline_s: float, done: threading.Event, attr: str) -> None:
        try:
            part = fetch_part(self.request, group, deadline_s)
        except Exception as exc:  # noqa: BLE001 — fetch_all never raises; if it did, the page would wait forever
            part = Part(next(_serials), problems=tuple(
                Problem("failed", name, f"{name}: the load failed ({type(exc).__name__}: {exc})") for name in group))
        setattr(self, attr, part)
        done.set()
        if self._backends_done.is_set() and self._local_done.is_set():
            self.finished_at = time.monotonic()
            self.previous = None  # nothing falls back to it any more: let its frames go

    @property
    def done(self) -> bool:
        return self._backends_done.is_set() and self._local_done.is_set()

    def wait_backends(self, timeout_s: float) -> Part | None:
        """The backends' part, waiting at most ``timeout_s`` (they answer within the page deadline)."""
        return self.backends if self._backends_done.wait(timeout_s) else None

    def wait(self, timeout_s: float) -> bool:
        """Wait for the whole load (tests, and pages that have nothing else to draw)."""
        return self._backends_done.wait(timeout_s) and self._local_done.wait(timeout_s)

    @property
    def refreshing(self) -> bool:
        """Whether the local part shown is the previous load's, while this load re-reads the files."""
        return not self._local_done.is_set() and self.local_part() is not None

    def local_part(self) -> Part | None:
        """The local part if read, else the previous load's while this one re-reads, else None (still loading)."""
        if self._local_done.is_set():
            return self.local
        previous = self.previous
        return previous.local if previous is not None and previous._local_done.is_set() else None

    def progress(self) -> dict[str, Progress | None]:
        """How far each local source still loading has got (None: it does not say)."""
        if self._local_done.is_set():
            return {}
        return {name: c.progress() if isinstance(c, ReportsProgress) else None for name, c in self.request.local.items()}

    def expired(self, ttl_s: float, local_ttl_s: float) -> bool:
        if self.finished_at is None:
            return False
        return time.monotonic() - self.finished_at > (local_ttl_s if self.request.local else ttl_s)


class Loader:
    """The process's loads by key (kind, window, config, refresh): one load per key at a time."""

    def __init__(self, ttl_s: float, local_ttl_s: float, max_entries: int = 32) -> None:
        self.ttl_s, self.local_ttl_s, self.max_entries = ttl_s, local_ttl_s, max_entries
        self._lock = threading.Lock()
        self._loads: OrderedDict[Hashable, Load] = OrderedDict()
        self._families: dict[Hashable, Hashable] = {}

    def _latest_done(self, family: Hashable) -> Load | None:
        if family is None:
            return None
        done = [load for k, load in self._loads.items() if self._families.get(k) == family and load.done]
        return max(done, key=lambda load: load.finished_at or 0.0) if done else None

    def load(self, key: Hashable, request: Callable[[], Request], family: Hashable = None) -> Load:
        """The current load for ``key``; a new one starts when there is none or the last one expired.

        While a new load re-reads local files, the newest finished load of the same ``family`` (the same
        kind, window and config, e.g. before a reload or a live-mode tick) is what the page shows.
        Expired loads of other keys are dropped, so the frames they hold do not outlive their TTL.
        """
        with self._lock:
            current = self._loads.get(key)
            if current is None or current.expired(self.ttl_s, self.local_ttl_s):
                previous = current or self._latest_done(family)
                current = Load(request(), previous=previous)
                self._loads[key] = current
                self._families[key] = family
                current.start()
            self._loads.move_to_end(key)
            for other in [k for k, v in self._loads.items() if k != key and v.expired(self.ttl_s, self.local_ttl_s)]:
                del self._loads[other]
                self._families.pop(other, None)
            while len(self._loads) > self.max_entries:  # the oldest finished ones go; a load in flight stays
                evicted = next((k for k, v in self._loads.items() if v.done and k != key), None)
                if evicted is None:
                    break
                del self._loads[evicted]
                self._families.pop(evicted, None)
            return current

    def in_flight(self) -> list[Load]:
        with self._lock:
            return [load for load in self._loads.values() if not load.done]
