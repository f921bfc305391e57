"""One runtime per source: its policy, circuit breaker and bulkhead, built once per source name and reused.

Every source has one, HTTP or not: ``registry.build_connector`` (and ``http.make_client``) build it from
the source's ``options`` (``connectors.runtime.policy``), and ``fanout``/``health`` find it by name.
A changed policy updates the breaker's thresholds (keeping its state) and rebuilds the bulkhead only
when its size changed.

The runtime is also the one place a call's outcome reaches the breaker:

* :meth:`SourceRuntime.admit` lets one call through the breaker (a half-open probe takes a slot) or
  raises ``SourceUnavailable`` at once, without I/O, and returns a :class:`Call`;
* :meth:`SourceRuntime.settle` records the call's final outcome, once;
* :meth:`SourceRuntime.abandon` records a call cut off by the page deadline as one timeout; whatever
  the straggler does afterwards is not recorded.

While a call runs under :func:`use_call` (a fanout query), ``connectors.runtime.http`` leaves the
breaker to it, so "HTTP 200 but the converter rejected the body" is one failure and a half-open probe
may make several requests; a request outside any call (a health check, a direct ``get_json``) is
admitted and settled on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from config import SourceConfig
from connectors.errors import ConnectorError, SourceUnavailable
from connectors.runtime.policy import BreakerConfig, SourcePolicy, policy_from_options
from connectors.runtime.resilience import SourceBreaker


class Bulkhead:
    """A source's own worker pool: ``max_concurrent`` running, ``max_queued`` waiting, the rest refused."""

    def __init__(self, source: str, max_concurrent: int = 4, max_queued: int = 8) -> None:
        self.source = source
        self.max_concurrent, self.max_queued = max_concurrent, max_queued
        self._executor = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix=f"bulkhead-{source}")
        self._slots = threading.BoundedSemaphore(max_concurrent + max_queued)
        self._lock = threading.Lock()
        self.in_flight = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
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
        self._executor.shutdown(wait=False, cancel_futures=False)  # stragglers finish on their own

    def _release(self, _future: Future[Any] | None) -> None:
        with self._lock:
            self.in_flight -= 1
        self._slots.release()


@dataclass
class Call:
    """One admitted call of a source; settled (recorded on the breaker) exactly once."""

    runtime: SourceRuntime
    probe: bool
    settled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        """Claim the right to record this call's outcome (True once, then False)."""
        with self.lock:
            first, self.settled = not self.settled, True
            return first


class SourceRuntime:
    """A source's policy, breaker and bulkhead (see the module docstring)."""

    def __init__(self, name: str, policy: SourcePolicy) -> None:
        self.name = name
        self.policy = policy
        self.breaker = SourceBreaker(name, policy.breaker)
        self.bulkhead = Bulkhead(name, policy.max_concurrent, policy.max_queued)
        self._lock = threading.Lock()

    def apply(self, policy: SourcePolicy) -> None:
        """Take a changed policy: new breaker thresholds (state kept); a new bulkhead only if resized."""
        with self._lock:
            if policy == self.policy:
                return
            old = self.policy
            self.policy = policy
            self.breaker.config = policy.breaker
            if (old.max_concurrent, old.max_queued) != (policy.max_concurrent, policy.max_queued):
                self.bulkhead.shutdown()  # new calls go to the new pool
                self.bulkhead = Bulkhead(self.name, policy.max_concurrent, policy.max_queued)

    def refusal(self) -> SourceUnavailable | None:
        """The breaker's refusal while it is open (takes no probe slot), else None."""
        return self.breaker.rejection() if self.breaker.is_rejecting() else None

    def admit(self) -> Call:
        """Let one call through the breaker or raise ``SourceUnavailable`` at once (no I/O)."""
        return Call(self, self.breaker.acquire())

    def settle(self, call: Call, error: BaseException | None) -> None:
        """Record a call's final outcome by the error tree's rules (once; later settles are ignored)."""
        if call.take():
            self.breaker.record(error)

    def release(self, call: Call) -> None:
        """The call never ran (e.g. its bulkhead was full): give back its probe slot, record nothing."""
        if call.take():
            self.breaker.record_neutral()

    def abandon(self, call: Call, timeout: ConnectorError) -> None:
        """The page stopped waiting: one timeout failure, and the straggler's outcome is ignored."""
        if call.take():
            self.breaker.record_failure(timeout)


_runtimes: dict[str, SourceRuntime] = {}
_registry_lock = threading.Lock()


def runtime_for(name: str, policy: SourcePolicy | None = None) -> SourceRuntime:
    """The process-wide runtime of a source (built with ``policy`` or the defaults); ``policy`` updates it."""
    with _registry_lock:
        runtime = _runtimes.get(name)
        if runtime is None:
            runtime = _runtimes[name] = SourceRuntime(name, policy or SourcePolicy())
            return runtime
    if policy is not None:
        runtime.apply(policy)
    return runtime


def runtime_for_source(source: SourceConfig) -> SourceRuntime:
    """The runtime of a configured source, with its policy read from ``options`` (ConfigError if bad)."""
    return runtime_for(source.name, policy_from_options(source.name, source.options, source.timeout_s))


def breaker_for(name: str, config: BreakerConfig | None = None) -> SourceBreaker:
    """A source's breaker; a new ``config`` updates its thresholds, keeping its state."""
    runtime = runtime_for(name)
    if config is not None:
        runtime.apply(replace(runtime.policy, breaker=config))
    return runtime.breaker


def bulkhead_for(name: str) -> Bulkhead:
    """A source's bulkhead."""
    return runtime_for(name).bulkhead


def reset_runtimes() -> None:
    """Forget every runtime (tests; a config reload)."""
    with _registry_lock:
        runtimes = list(_runtimes.values())
        _runtimes.clear()
    for runtime in runtimes:
        runtime.bulkhead.shutdown()


_call: ContextVar[Call | None] = ContextVar("faultline_source_call", default=None)


def current_call() -> Call | None:
    return _call.get()


@contextmanager
def use_call(call: Call) -> Iterator[Call]:
    token = _call.set(call)
    try:
        yield call
    finally:
        _call.reset(token)
