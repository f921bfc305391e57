"""Health of every configured source for the Sources page, bounded by a deadline.

Each ``check_health()`` runs in the source's own bulkhead (``fanout.bulkhead_for``), so a dead or
hanging source shows up as ``down`` after ``deadline_s`` instead of hanging the page, and a source
whose breaker is open is reported from the breaker without any I/O.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from connectors.base import Connector, Health
from connectors.errors import ConnectorError
from connectors.runtime.fanout import EPSILON_S, bulkhead_for
from connectors.runtime.log import log_call
from config import SourceConfig
from connectors.runtime.resilience import Deadline, breaker_for, use_deadline

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
    deadline = Deadline(deadline_s)
    started = time.perf_counter()
    pending: dict[str, Future[Health]] = {}
    immediate: dict[str, Health] = {}
    for name, connector in connectors.items():
        breaker = breaker_for(name)
        if breaker.is_rejecting():
            immediate[name] = Health("down", breaker.rejection().describe())
            continue
        try:
            ctx = contextvars.copy_context()
            pending[name] = bulkhead_for(name).submit(ctx.run, _check_one, connector, deadline)
        except ConnectorError as exc:
            immediate[name] = Health("down", exc.describe())
    wait(list(pending.values()), timeout=deadline.remaining_s() + EPSILON_S)
    rows = []
    for name, connector in connectors.items():
        if name in immediate:
            health = immediate[name]
        elif pending[name].done() and not pending[name].cancelled():
            health = pending[name].result()
        else:
            pending[name].cancel()
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            health = Health("down", f"{name}: no answer to the health check within {deadline_s:g} s", elapsed_ms)
        rows.append(_row(name, connector, health, sources))
    return rows


def _check_one(connector: Connector, deadline: Deadline) -> Health:
    started = time.perf_counter()
    with use_deadline(deadline):
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
