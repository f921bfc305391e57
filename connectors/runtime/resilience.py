"""Deadlines and the circuit breaker (thresholds: ``connectors.runtime.policy``).

A :class:`Deadline` is a monotonic budget; :func:`use_deadline` puts it in a contextvar that
``connectors.runtime.http`` reads, so every timeout is ``min(configured, remaining)``.

Breaker states: ``closed`` → (``failure_threshold`` consecutive failures) → ``open`` → (after
``open_s``) → ``half_open``: up to ``half_open_max_calls`` probes; a probe's success closes it, a
failure re-opens it. An open breaker fails calls at once with ``SourceUnavailable`` (no I/O).
Failures are ``SourceTimeout``, ``SourceUnavailable`` and ``PayloadError``; a 4xx proves the source
is alive and counts as a success. Each source's one breaker lives in its runtime
(``connectors.runtime.source``), which also records every outcome.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from connectors.errors import (
    ConnectorError,
    PayloadError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from connectors.runtime.policy import BreakerConfig

__all__ = ["BreakerConfig", "BreakerSnapshot", "Deadline", "SourceBreaker", "counts_as_failure", "current_deadline",
           "use_deadline"]

BreakerState = Literal["closed", "open", "half_open"]


# --- deadlines -------------------------------------------------------------------------------


class Deadline:
    """A monotonic time budget; ``remaining_s()`` never goes below 0."""

    def __init__(self, budget_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s = float(budget_s)
        self._clock = clock
        self.expires_at = clock() + self.budget_s

    def remaining_s(self) -> float:
        return max(0.0, self.expires_at - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self.expires_at


_deadline: ContextVar[Deadline | None] = ContextVar("faultline_deadline", default=None)


def current_deadline() -> Deadline | None:
    return _deadline.get()


@contextmanager
def use_deadline(deadline: Deadline | float) -> Iterator[Deadline]:
    """Run the block under ``deadline`` (a Deadline or a budget in s); nesting keeps the earlier expiry."""
    new = deadline if isinstance(deadline, Deadline) else Deadline(deadline)
    outer = _deadline.get()
    if outer is not None and outer.expires_at < new.expires_at:
        new = outer
    token = _deadline.set(new)
    try:
        yield new
    finally:
        _deadline.reset(token)


# --- circuit breaker ------------------------------------------------------------------------


@dataclass(frozen=True)
class BreakerSnapshot:
    """What the Sources page shows about one breaker (wall-clock times in UTC)."""

    state: BreakerState
    consecutive_failures: int
    next_probe_at: datetime | None
    last_error: str | None
    last_failure_at: datetime | None
    last_success_at: datetime | None


def counts_as_failure(error: BaseException) -> bool:
    """Does this error count against the source's breaker?"""
    if isinstance(error, SourceUnavailable) and error.from_breaker:
        return False
    return isinstance(error, (SourceTimeout, SourceUnavailable, PayloadError))


def hhmmss(wall_s: float) -> str:
    return datetime.fromtimestamp(wall_s, tz=timezone.utc).strftime("%H:%M:%S UTC")


_DEFAULT_BREAKER = BreakerConfig()  # frozen, so one shared default is safe


class SourceBreaker:
    """A thread-safe closed/open/half-open breaker. ``clock`` is monotonic, ``wall`` is epoch seconds."""

    def __init__(
        self,
        source: str,
        config: BreakerConfig = _DEFAULT_BREAKER,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.config = config
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self._last_error: str | None = None
        self._last_failure_wall: float | None = None
        self._last_success_wall: float | None = None

    def _refresh(self) -> None:  # caller holds the lock
        if self._state == "open" and self._clock() >= self._opened_at + self.config.open_s:
            self._state, self._probes = "half_open", 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._refresh()
            return self._state

    def is_rejecting(self) -> bool:
        """True while open and not yet due for a probe. Does not take a probe slot."""
        return self.state == "open"

    def acquire(self) -> bool:
        """Permit one call (True if it is a half-open probe) or raise ``SourceUnavailable``."""
        with self._lock:
            self._refresh()
            if self._state == "closed":
                return False
            if self._state == "half_open" and self._probes < self.config.half_open_max_calls:
                self._probes += 1
                return True
            raise self._rejection()

    def rejection(self) -> SourceUnavailable:
        with self._lock:
            self._refresh()
            return self._rejection()

    def _rejection(self) -> SourceUnavailable:
        if self._state == "half_open":
            return SourceUnavailable("breaker half-open; a probe is in flight", source=self.source, retry_after_s=0.5,
                                     from_breaker=True)
        wait_s = max(0.0, self._opened_at + self.config.open_s - self._clock())
        return SourceUnavailable(
            f"breaker open; next probe at {hhmmss(self._wall() + wait_s)}",
            source=self.source,
            hint=f"the source itself; last error: {self._last_error or 'unknown'}",
            retry_after_s=wait_s,
            from_breaker=True,
        )

    def record_success(self) -> None:
        with self._lock:
            self._refresh()
            self._state, self._failures, self._probes = "closed", 0, 0
            self._last_success_wall = self._wall()

    def record_failure(self, error: BaseException | str) -> None:
        with self._lock:
            self._refresh()
            self._last_error = error.describe() if isinstance(error, ConnectorError) else str(error)
            self._last_failure_wall = self._wall()
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.config.failure_threshold:
                if self._state != "open":
                    self._opened_at = self._clock()
                self._state, self._probes = "open", 0

    def record_neutral(self) -> None:
        """The call ended without telling us anything about the source's health (e.g. our bug)."""
        with self._lock:
            self._probes = max(0, self._probes - 1)

    def record(self, error: BaseException | None) -> None:
        """Record a call's outcome by the error tree's rules."""
        if error is None or isinstance(error, SourceRejected):
            self.record_success()
        elif counts_as_failure(error):
            self.record_failure(error)
        else:
            self.record_neutral()

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            self._refresh()
            probe = None
            if self._state == "open":
                probe = self._wall() + max(0.0, self._opened_at + self.config.open_s - self._clock())

            def utc(ts: float | None) -> datetime | None:
                return datetime.fromtimestamp(ts, tz=timezone.utc) if ts is not None else None

            return BreakerSnapshot(
                self._state, self._failures, utc(probe), self._last_error, utc(self._last_failure_wall), utc(self._last_success_wall)
            )
