"""The one way connectors talk HTTP: a client per source, deadlines, one retry, a breaker, one error map.

* :func:`make_client` builds an ``httpx.Client`` for a source with connect/read/pool timeouts from its
  config (``policy.policy_from_options``), bound to the source's runtime (breaker, policy).
* :func:`get_json` / :func:`get_bytes` GET a path under the current :class:`resilience.Deadline`
  (``use_deadline``): every timeout is ``min(configured, remaining)``, the body is streamed with a
  size cap and a deadline check between chunks, and the call

  - retries **at most once**, only these idempotent GETs, only on 429/502/503/504 or a connection
    error (refused, reset, dropped), after a jittered pause or the server's ``Retry-After``, and only
    when the pause plus a minimal attempt still fits in the deadline;
  - goes through the source's circuit breaker when the client came from :func:`make_client`: an open
    breaker raises ``SourceUnavailable("breaker open; next probe at HH:MM:SS UTC")`` with no I/O.
    Inside a fanout call the call itself is behind the breaker and records its one outcome
    (``connectors.runtime.source``); a request outside one is admitted and settled on its own.
* :func:`guarded` runs a caller's own request (ClickHouse's POST) behind the same breaker bookkeeping.
* :func:`mapped_errors` / :func:`check_status` (from ``http_errors``, the only place httpx exceptions
  and statuses become the connector error tree) are re-exported here for connectors.
"""

from __future__ import annotations

import json
import random
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from config import SourceConfig
from connectors.errors import ConnectorError, PayloadError, SourceTimeout, SourceUnavailable
from connectors.runtime.http_errors import (
    check_status as check_status,  # re-exported: connectors call http.check_status
)
from connectors.runtime.http_errors import mapped_errors as mapped_errors  # ... and http.mapped_errors
from connectors.runtime.http_errors import retry_after_s
from connectors.runtime.log import log_event
from connectors.runtime.policy import SourcePolicy
from connectors.runtime.resilience import current_deadline
from connectors.runtime.source import current_call, runtime_for, runtime_for_source

MAX_BODY_BYTES = 64 * 1024 * 1024
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MIN_ATTEMPT_S = 0.2  # do not retry unless at least this much budget is left for the second attempt
MAX_WAIT_WITHOUT_DEADLINE_S = 2.0
T = TypeVar("T")

# client -> (source name, its policy when the client was made); the breaker is looked up by name at each call
_client_sources: weakref.WeakKeyDictionary[httpx.Client, tuple[str, SourcePolicy]] = weakref.WeakKeyDictionary()


def make_client(source: SourceConfig, *, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx.Client for one source, with timeouts from its config, bound to the source's runtime."""
    runtime = runtime_for_source(source)
    policy = runtime.policy
    headers = {"User-Agent": "faultline"}
    token = source.secrets.get("token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    auth = None
    if source.secrets.get("username"):
        auth = httpx.BasicAuth(str(source.secrets["username"]), str(source.secrets.get("password", "")))
    timeout = httpx.Timeout(policy.read_s, connect=policy.connect_s, pool=policy.pool_s)
    client = httpx.Client(
        base_url=str(source.options.get("url", "")), headers=headers, auth=auth, timeout=timeout, transport=transport
    )
    _client_sources[client] = (source.name, policy)
    return client


def get_json(
    client: httpx.Client,
    path: str,
    source: str,
    params: Mapping[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    retry: bool = True,
) -> Any:
    """GET ``path`` and parse JSON under the deadline, retry and breaker rules; errors are mapped onto the tree."""
    return _call(client, path, source, params, headers, retry, lambda body: parse_json(body, source))


def get_bytes(
    client: httpx.Client,
    path: str,
    source: str,
    params: Mapping[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    retry: bool = True,
) -> bytes:
    """Like :func:`get_json` but returns the raw (decoded, size-capped) body, e.g. a Prometheus exposition."""
    return _call(client, path, source, params, headers, retry, lambda body: body)


def parse_json(body: bytes | str, source: str = "") -> Any:
    """Parse a JSON body; anything malformed or oversized is a PayloadError."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError(f"body of {len(body)} bytes exceeds the {MAX_BODY_BYTES} byte limit", source=source)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"malformed JSON: {exc}", source=source, hint="that the URL points at the right API") from exc


def stream_bytes(
    client: httpx.Client,
    path: str,
    source: str,
    params: Mapping[str, Any] | None = None,
    *,
    window_s: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Read a streaming endpoint (SSE) for ``window_s`` (capped by the deadline) or ``max_bytes``, whichever first.

    The window ending is not an error: what arrived is returned. Not retried. Breaker and error map as
    :func:`get_json`; a connect failure or a silent stream before the deadline raise as usual.
    """
    return _guarded(client, source, lambda policy: _stream_window(client, path, source, params, headers, window_s, max_bytes))


def _call(
    client: httpx.Client,
    path: str,
    source: str,
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    retry: bool,
    parse: Callable[[bytes], T],
) -> T:
    def work(policy: SourcePolicy | None) -> T:
        allowed = retry and (policy or SourcePolicy()).retry
        return parse(_get_with_retry(client, path, source, params, headers, allowed, policy))

    return _guarded(client, source, work)


def guarded(client: httpx.Client, source: str, work: Callable[[], T]) -> T:
    """Run ``work()`` (e.g. one POST the caller sends and maps itself) behind the source's breaker.

    The same admit/settle as :func:`get_json`: refused at once while the breaker is open, the outcome
    recorded once by the source's runtime (or left to the enclosing fanout call). Not retried.
    """
    return _guarded(client, source, lambda _policy: work())


def _guarded(client: httpx.Client, source: str, work: Callable[[SourcePolicy | None], T]) -> T:
    """Run ``work`` behind the source's breaker (clients from make_client only); its runtime records the outcome."""
    bound = _client_sources.get(client)
    if bound is None:
        return work(None)
    name, policy = bound
    runtime = runtime_for(name)
    active = current_call()
    if active is not None and active.runtime.name == name:
        refusal = runtime.refusal()  # the breaker opened while this call ran (others failed): stop its I/O
        if refusal is not None:
            raise refusal
        return work(policy)  # the fanout call is behind the breaker and records its own outcome
    call = runtime.admit()  # raises at once, without I/O, while open
    error: BaseException | None = None
    try:
        return work(policy)
    except BaseException as exc:
        error = exc
        raise
    finally:
        runtime.settle(call, error)


def _get_with_retry(
    client: httpx.Client,
    path: str,
    source: str,
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    retry: bool,
    policy: SourcePolicy | None,
) -> bytes:
    max_body = policy.max_body_bytes if policy is not None else MAX_BODY_BYTES
    for attempt in (1, 2):
        can_retry = retry and attempt == 1
        try:
            response = _send(client, path, source, params, headers, max_body, attempt)
        except SourceUnavailable as exc:
            if can_retry and _is_connection_error(exc) and _pause_fits(_jitter_s()):
                continue
            raise
        if response.status_code in RETRY_STATUSES and can_retry:
            retry_after = retry_after_s(response)
            wait_s = retry_after + random.uniform(0.0, 0.05 + 0.1 * retry_after) if retry_after is not None else _jitter_s()
            if _pause_fits(wait_s):
                continue
        check_status(response, source)
        return response.content
    raise AssertionError("unreachable: the second attempt always returns or raises")


def _jitter_s() -> float:
    return random.uniform(0.05, 0.25)


def _pause_fits(wait_s: float) -> bool:
    """Sleep ``wait_s`` and return True if a retry after it still fits in the deadline."""
    deadline = current_deadline()
    budget = deadline.remaining_s() - MIN_ATTEMPT_S if deadline is not None else MAX_WAIT_WITHOUT_DEADLINE_S
    if wait_s > budget:
        return False
    time.sleep(wait_s)
    return True


def _is_connection_error(exc: SourceUnavailable) -> bool:
    cause = exc.__cause__
    return isinstance(cause, (httpx.NetworkError, httpx.RemoteProtocolError)) and not isinstance(cause, httpx.TimeoutException)


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
