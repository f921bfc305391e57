"""Low-level HTTP for connectors.runtime.http: the single error map, status checks, capped body reads, SSE windows.

Connectors import these through ``connectors.runtime.http`` (``mapped_errors``, ``check_status``).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import httpx

from connectors.errors import (
    ConfigError,
    ConnectorError,
    PayloadError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from connectors.runtime.log import log_event
from connectors.runtime.resilience import current_deadline


@contextmanager
def mapped_errors(source: str) -> Iterator[None]:
    """Translate every httpx exception into the connector error tree (the only place that does)."""
    try:
        yield
    except ConnectorError:
        raise
    except httpx.TimeoutException as exc:
        raise SourceTimeout(f"no answer in time ({type(exc).__name__})", source=source, hint="the source's load and network") from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ConfigError(f"bad source URL ({type(exc).__name__}: {exc})", source=source, hint="options.url (http:// or https://)") from exc
    except httpx.DecodingError as exc:
        raise PayloadError(f"undecodable body ({exc})", source=source, hint="the Content-Encoding the source sends") from exc
    except httpx.TransportError as exc:
        raise SourceUnavailable(f"cannot reach the source ({type(exc).__name__}: {exc})", source=source, hint="the URL and that the service is up") from exc
    except httpx.TooManyRedirects as exc:
        raise SourceRejected(f"redirect loop ({exc})", source=source, hint="options.url (a login page?)") from exc
    except httpx.HTTPStatusError as exc:
        try:
            check_status(exc.response, source)
        except ConnectorError as mapped:
            raise mapped from exc
        raise SourceUnavailable(f"HTTP failure ({exc})", source=source) from exc
    except httpx.HTTPError as exc:
        raise SourceUnavailable(f"HTTP failure ({type(exc).__name__}: {exc})", source=source) from exc


def check_status(response: httpx.Response, source: str) -> None:
    """Raise the matching error for a non-2xx response."""
    code = response.status_code
    if code < 400:
        return
    snippet = response.text[:200].strip().replace("\n", " ")
    if code in (408, 504):
        raise SourceTimeout(f"HTTP {code} from {response.request.url.path}: {snippet}", source=source)
    if code == 429 or code >= 500:
        raise SourceUnavailable(
            f"HTTP {code} from {response.request.url.path}: {snippet}",
            source=source,
            hint="the source's own logs",
            retry_after_s=_retry_after(response),
        )
    raise SourceRejected(f"HTTP {code} from {response.request.url.path}: {snippet}", source=source, hint="credentials and query parameters")


def _send(
    client: httpx.Client,
    path: str,
    source: str,
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    max_body: int,
    attempt: int,
) -> httpx.Response:
    deadline = current_deadline()
    timeout: httpx.Timeout | None = None
    if deadline is not None:
        remaining = deadline.remaining_s()
        if remaining <= 0.01:
            raise SourceTimeout("the page's deadline ran out before the call", source=source, hint="the slowest source on this page")
        base = client.timeout
        timeout = httpx.Timeout(
            connect=_cap(base.connect, remaining), read=_cap(base.read, remaining),
            write=_cap(base.write, remaining), pool=_cap(base.pool, remaining),
        )
    started = time.perf_counter()
    status: int | None = None
    outcome = "error"
    try:
        with mapped_errors(source):
            kwargs: dict[str, Any] = {"params": params, "headers": headers}
            if timeout is not None:
                kwargs["timeout"] = timeout
            with client.stream("GET", path, **kwargs) as streamed:
                status = streamed.status_code
                body = _read_capped(streamed, source, max_body)
        outcome = "ok" if status < 400 else "http_error"
        clean = {k: v for k, v in streamed.headers.items() if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")}
        return httpx.Response(status, headers=clean, content=body, request=streamed.request)
    except ConnectorError as exc:
        outcome = type(exc).__name__
        raise
    finally:
        log_event(
            "http_request", source=source, method="GET", path=str(httpx.URL(path).path), param_names=sorted(params or {}),
            status=status, attempt=attempt, outcome=outcome, duration_ms=round((time.perf_counter() - started) * 1000.0, 1),
        )


def _read_capped(response: httpx.Response, source: str, max_body: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise PayloadError(f"body of {int(declared)} bytes exceeds the {max_body} byte limit", source=source, hint="narrow the query")
    deadline = current_deadline()
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_body:
            raise PayloadError(f"body exceeds the {max_body} byte limit", source=source, hint="narrow the query or raise options.max_body_mb")
        chunks.append(chunk)
        if deadline is not None and deadline.expired:
            raise SourceTimeout(f"the deadline passed while reading the body ({size} bytes so far)", source=source, hint="the source's load")
    return b"".join(chunks)


def _cap(configured: float | None, remaining: float) -> float:
    return remaining if configured is None else min(configured, remaining)


def _stream_window(
    client: httpx.Client,
    path: str,
    source: str,
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    window_s: float,
    max_bytes: int,
) -> bytes:
    deadline = current_deadline()
    budget_s = min(window_s, deadline.remaining_s()) if deadline is not None else window_s
    if budget_s <= 0.01:
        raise SourceTimeout("the page's deadline ran out before the call", source=source, hint="the slowest source on this page")
    ends_at = time.monotonic() + budget_s
    base = client.timeout
    timeout = httpx.Timeout(connect=_cap(base.connect, budget_s), read=budget_s, write=_cap(base.write, budget_s), pool=_cap(base.pool, budget_s))
    chunks: list[bytes] = []
    size = 0
    started = time.perf_counter()
    outcome = "error"
    try:
        with mapped_errors(source), client.stream("GET", path, params=params, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                check_status(response, source)
            try:
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= max_bytes or time.monotonic() >= ends_at:
                        break
            except httpx.ReadTimeout:
                if not chunks:
                    raise
        outcome = "ok"
        return b"".join(chunks)[:max_bytes]
    finally:
        log_event("http_stream", source=source, path=str(httpx.URL(path).path), bytes=size, outcome=outcome,
                  duration_ms=round((time.perf_counter() - started) * 1000.0, 1))


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
