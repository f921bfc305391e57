"""The one way connectors talk HTTP: a client per source and one place that maps httpx errors.

(Issue 7 extends this module with retries, per-source breakers and deadlines.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from connectors.errors import (
    ConnectorError,
    PayloadError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from connectors.registry import SourceConfig

MAX_BODY_BYTES = 64 * 1024 * 1024


def make_client(source: SourceConfig) -> httpx.Client:
    """An httpx.Client for one source, with timeouts from its config."""
    opts = source.options
    headers = {"User-Agent": "faultline"}
    token = source.secrets.get("token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    auth = None
    if source.secrets.get("username"):
        auth = httpx.BasicAuth(str(source.secrets["username"]), str(source.secrets.get("password", "")))
    timeout = httpx.Timeout(source.timeout_s, connect=min(source.timeout_s, 3.0))
    return httpx.Client(base_url=str(opts.get("url", "")), headers=headers, auth=auth, timeout=timeout)


@contextmanager
def mapped_errors(source: str) -> Iterator[None]:
    """Translate every httpx exception into the connector error tree (the only place that does)."""
    try:
        yield
    except ConnectorError:
        raise
    except httpx.TimeoutException as exc:
        raise SourceTimeout(f"no answer in time ({type(exc).__name__})", source=source, hint="the source's load and network") from exc
    except httpx.TransportError as exc:
        raise SourceUnavailable(f"cannot reach the source ({type(exc).__name__}: {exc})", source=source, hint="the URL and that the service is up") from exc
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


def get_json(client: httpx.Client, path: str, source: str, params: Mapping[str, Any] | None = None) -> Any:
    """GET ``path`` and parse JSON; errors are mapped onto the tree."""
    with mapped_errors(source):
        response = client.get(path, params=params)
    check_status(response, source)
    return parse_json(response.content, source)


def parse_json(body: bytes | str, source: str = "") -> Any:
    """Parse a JSON body; anything malformed or oversized is a PayloadError."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError(f"body of {len(body)} bytes exceeds the {MAX_BODY_BYTES} byte limit", source=source)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"malformed JSON: {exc}", source=source, hint="that the URL points at the right API") from exc


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
