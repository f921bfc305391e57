"""Health of every configured source for the Sources page, bounded by a deadline.

Each ``check_health()`` runs through the same loop as the data queries (``fanout.run_in_bulkheads``):
in the source's own bulkhead, so a dead or hanging source shows up as ``down`` after ``deadline_s``
instead of hanging the page, and a source whose breaker is open is reported from the breaker
without any I/O.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from config import SourceConfig
from connectors.base import Connector, Health
from connectors.errors import ConnectorError, SourceTimeout
from connectors.runtime.fanout import run_in_bulkheads
from connectors.runtime.log import log_call
from connectors.runtime.resilience import Deadline
from connectors.runtime.source import breaker_for, runtime_for_source

Status = Literal["ok", "degraded", "down"]


@dataclass(frozen=True)
class SourceStatus:
    """One row of the Sources page."""

    name: str
    type: str
    status: Status
    message: str
    last_success: datetime | None
    latency_ms: float | None
    breaker_state: str  # closed | open | half_open
    last_error: str | None


_last_success: dict[str, datetime] = {}
_lock = threading.Lock()


def check_all(
    connectors: Mapping[str, Connector],
    deadline_s: float,
    *,
    sources: Mapping[str, SourceConfig] | None = None,
) -> list[SourceStatus]:
    """Check every source in parallel; returns within ``deadline_s`` (+ a few ms), one row per source, in order."""
    for name in connectors:
        if name in (sources or {}):
            # a bad option is the data queries' error to show; the check runs on the defaults
            with contextlib.suppress(ConnectorError):
                runtime_for_source((sources or {})[name])
    calls = [(name, functools.partial(_check_one, connector)) for name, connector in connectors.items()]

    def timeout_error(name: str) -> ConnectorError:
        return SourceTimeout(f"{name}: no answer to the health check within {deadline_s:g} s", source=name)

    outcomes = run_in_bulkheads(calls, Deadline(deadline_s), outcome_of=None, timeout_error=timeout_error)
    rows = []
    for (name, connector), outcome in zip(connectors.items(), outcomes, strict=True):
        if outcome.value is not None:
            health = outcome.value
        elif outcome.timed_out:
            health = Health("down", outcome.error.message if outcome.error else "", outcome.elapsed_ms)
        else:
            health = Health("down", outcome.error.describe() if outcome.error else f"{name}: not checked")
        rows.append(_row(name, connector, health, sources))
    return rows


def _check_one(connector: Connector) -> Health:
    started = time.perf_counter()
    try:
        health = connector.check_health()
    except Exception as exc:  # check_health must never raise; report it rather than crash the page
        health = Health("down", f"check_health raised {type(exc).__name__}: {exc}")
    if health.latency_ms is None:
        health = Health(health.status, health.message, (time.perf_counter() - started) * 1000.0)
    return health


def _row(name: str, connector: Connector, health: Health, sources: Mapping[str, SourceConfig] | None) -> SourceStatus:
    now = datetime.now(timezone.utc)
    with _lock:
        if health.status == "ok":
            _last_success[name] = now
        own = _last_success.get(name)
    snap = breaker_for(name).snapshot()
    candidates = [t for t in (own, snap.last_success_at) if t is not None]
    config = (sources or {}).get(name)
    kind = config.type if config is not None else str(getattr(connector, "type", type(connector).__name__))
    if health.status == "ok" or snap.state == "open":
        last_error = snap.last_error  # an open breaker's own message is not an error of the source
    else:
        last_error = health.message or snap.last_error
    log_call(name, "health", "health", health.latency_ms or 0.0, "ok" if health.status == "ok" else health.status, None if health.status == "ok" else health.message)
    return SourceStatus(
        name=name,
        type=kind,
        status=health.status,
        message=health.message,
        last_success=max(candidates) if candidates else None,
        latency_ms=health.latency_ms,
        breaker_state=snap.state,
        last_error=last_error,
    )


def reset_health() -> None:
    with _lock:
        _last_success.clear()
