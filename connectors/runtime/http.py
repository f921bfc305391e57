"""The one way connectors talk HTTP: a client per source, deadlines, one retry, a breaker, one error map.

* :func:`make_client` builds an ``httpx.Client`` for a source with connect/read/pool timeouts from its
  config (``policy.policy_from_options``) and registers the source's breaker.
* :func:`get_json` / :func:`get_bytes` GET a path under the current :class:`resilience.Deadline`
  (``use_deadline``): every timeout is ``min(configured, remaining)``, the body is streamed with a
  size cap and a deadline check between chunks, and the call

  - retries **at most once**, only these idempotent GETs, only on 429/502/503/504 or a connection
    error (refused, reset, dropped), after a jittered pause or the server's ``Retry-After``, and only
    when the pause plus a minimal attempt still fits in the deadline;
  - goes through the source's circuit breaker when the client came from :func:`make_client`: an open
    breaker raises ``SourceUnavailable("breaker open; next probe at HH:MM:SS UTC")`` with no I/O.
* :func:`mapped_errors` is the only place httpx exceptions become the connector error tree.
"""

from __future__ import annotations

import json
import random
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from connectors.errors import ConnectorError, PayloadError, SourceUnavailable
from connectors.runtime.http_transport import _retry_after, _send, _stream_window
from connectors.runtime.http_transport import check_status as check_status  # re-exported: connectors call http.check_status
from connectors.runtime.http_transport import mapped_errors as mapped_errors  # ... and http.mapped_errors
from connectors.runtime.policy import SourcePolicy, policy_from_options, register_policy
from config import SourceConfig
from connectors.runtime.resilience import (
    CallScope,
    SourceBreaker,
    breaker_for,
    counts_as_failure,
    current_deadline,
    current_scope,
)

MAX_BODY_BYTES = 64 * 1024 * 1024
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MIN_ATTEMPT_S = 0.2  # do not retry unless at least this much budget is left for the second attempt
MAX_WAIT_WITHOUT_DEADLINE_S = 2.0
T = TypeVar("T")

_client_policies: weakref.WeakKeyDictionary[httpx.Client, SourcePolicy] = weakref.WeakKeyDictionary()


def make_client(source: SourceConfig, *, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx.Client for one source, with timeouts and breaker thresholds from its config."""
    policy = register_policy(source.name, policy_from_options(source.name, source.options, source.timeout_s))
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
    _client_policies[client] = policy
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


def _guarded(client: httpx.Client, source: str, work: Callable[[SourcePolicy | None], T]) -> T:
    """Run ``work`` behind the source's breaker (clients from make_client only) and record the outcome."""
    policy = _client_policies.get(client)
    breaker = breaker_for(source) if policy is not None else None
    probe = breaker.acquire() if breaker is not None else False  # raises at once, without I/O, while open
    error: BaseException | None = None
    try:
        return work(policy)
    except BaseException as exc:
        error = exc
        raise
    finally:
        scope = current_scope()
        if breaker is not None and not (scope is not None and scope.abandoned):
            _record(breaker, scope, error, probe)


def _record(breaker: SourceBreaker, scope: CallScope | None, error: BaseException | None, probe: bool) -> None:
    if error is not None and not isinstance(error, ConnectorError):
        breaker.record_neutral()  # our own exception says nothing about the source
    elif scope is None or (probe and error is None):  # a good probe closes at once: the query's next calls may pass
        breaker.record(error)
    elif error is not None and counts_as_failure(error):
        breaker.record_failure(error)
        scope.failure_recorded = True
    # inside a fanout call, fanout records the success (or the converter's PayloadError) from the final result


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
            retry_after = _retry_after(response)
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


