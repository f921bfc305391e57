"""Faultline's own structured logs: one JSON object per line, with a correlation id per page run.

Every line carries ``correlation_id`` (one per page run, set by :func:`page_run`) and, for source
calls, ``call_id`` (one per source call). Lines go to stderr and, when ``FAULTLINE_LOG_FILE`` names
a file, are appended there too. ``FAULTLINE_LOG_LEVEL`` (default ``INFO``) sets the level.

Secrets are never logged: field names that look like credentials are replaced by ``[redacted]``
and string values are scrubbed of URL user-info, bearer tokens and ``token=``-style parameters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

LOGGER_NAME = "faultline"
REDACTED = "[redacted]"

_correlation_id: ContextVar[str | None] = ContextVar("faultline_correlation_id", default=None)
_configure_lock = threading.Lock()
_SECRET_KEY = re.compile(r"(pass|secret|token|auth|cookie|api[_-]?key|credential)", re.IGNORECASE)
_SCRUBBERS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]*@"), r"\1" + REDACTED + "@"),
    (re.compile(r"(?i)\b([\w-]*(?:token|password|passwd|secret|api[_-]?key)[\w-]*)=[^&\s\"']+"), r"\1=" + REDACTED),
)


def redact(text: str) -> str:
    """Scrub credentials out of free text (error messages, URLs)."""
    for pattern, replacement in _SCRUBBERS:
        text = pattern.sub(replacement, text)
    return text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None) or _correlation_id.get(),
        }
        for key, value in (getattr(record, "fields", None) or {}).items():
            line[key] = _clean(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = redact(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
        return json.dumps(line, default=str, ensure_ascii=False)


def _clean(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    return value


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (so test capture and reloaders work)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def get_logger() -> logging.Logger:
    """The ``faultline`` logger, configured once with the JSON formatter."""
    logger = logging.getLogger(LOGGER_NAME)
    if getattr(logger, "_faultline_configured", False):
        return logger
    with _configure_lock:
        if getattr(logger, "_faultline_configured", False):
            return logger
        formatter = _JsonFormatter()
        handlers: list[logging.Handler] = [_StderrHandler()]
        path = os.environ.get("FAULTLINE_LOG_FILE")
        if path:
            handlers.append(logging.FileHandler(path, encoding="utf-8"))
        for handler in handlers:
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        logger.setLevel(os.environ.get("FAULTLINE_LOG_LEVEL", "INFO").upper())
        logger.propagate = False
        logger._faultline_configured = True  # type: ignore[attr-defined]
    return logger


def new_id() -> str:
    """A short random id (12 hex chars) for a page run or a source call."""
    return uuid.uuid4().hex[:12]


def current_correlation_id() -> str | None:
    return _correlation_id.get()


@contextmanager
def page_run(correlation_id: str | None = None) -> Iterator[str]:
    """Scope one page run: every log line inside carries the same ``correlation_id`` (yielded)."""
    cid = correlation_id or new_id()
    token = _correlation_id.set(cid)
    try:
        yield cid
    finally:
        _correlation_id.reset(token)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One JSON line ``{"event": event, **fields}`` (secrets scrubbed)."""
    logger = get_logger()
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})


def log_call(
    source: str,
    ref_id: str,
    kind: str,
    duration_ms: float,
    outcome: str,
    error: BaseException | str | None = None,
    **extra: Any,
) -> str:
    """Log one source call (``outcome``: ok | stale | error | timeout | rejected); returns its ``call_id``."""
    call_id = str(extra.pop("call_id", None) or new_id())
    message: str | None
    if error is None:
        message = None
    elif hasattr(error, "describe"):
        message = error.describe()
    else:
        message = str(error)
    log_event(
        "source_call",
        logging.WARNING if outcome != "ok" else logging.INFO,
        call_id=call_id,
        source=source,
        ref_id=ref_id,
        kind=kind,
        duration_ms=round(float(duration_ms), 1),
        outcome=outcome,
        error=message,
        error_type=type(error).__name__ if isinstance(error, BaseException) else None,
        **extra,
    )
    return call_id
