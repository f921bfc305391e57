"""The one place httpx exceptions and HTTP statuses become the connector error tree.

``connectors.runtime.http`` re-exports :func:`mapped_errors` and :func:`check_status`; every mapped
``DownstreamError`` from a response carries its ``status_code``, so callers test ``status_code == 404``
instead of parsing messages.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx

from connectors.errors import (
    ConfigError,
    ConnectorError,
    PayloadError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)


@contextmanager
def mapped_errors(source: str) -> Iterator[None]:
    """Translate every httpx exception into the connector error tree (the only place that does)."""
    try:
        yield
    except ConnectorError:
        raise
    except httpx.TimeoutException as exc:
        raise SourceTimeout(
            f"no answer in time ({type(exc).__name__})", source=source, hint="the source's load and network"
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ConfigError(
            f"bad source URL ({type(exc).__name__}: {exc})", source=source, hint="options.url (http:// or https://)"
        ) from exc
    except httpx.DecodingError as exc:
        raise PayloadError(
            f"undecodable body ({exc})", source=source, hint="the Content-Encoding the source sends"
        ) from exc
    except httpx.TransportError as exc:
        raise SourceUnavailable(
            f"cannot reach the source ({type(exc).__name__}: {exc})",
            source=source,
            hint="the URL and that the service is up",
        ) from exc
    except httpx.TooManyRedirects as exc:
        raise SourceRejected(f"redirect loop ({exc})", source=source, hint="options.url (a login page?)") from exc
    except httpx.HTTPStatusError as exc:
        try:
            check_status(exc.response, source)
        except ConnectorError as mapped:
            raise mapped from exc
        raise SourceUnavailable(f"HTTP failure ({exc})", source=source, status_code=exc.response.status_code) from exc
    except httpx.HTTPError as exc:
        raise SourceUnavailable(f"HTTP failure ({type(exc).__name__}: {exc})", source=source) from exc


def check_status(response: httpx.Response, source: str) -> None:
    """Raise the matching error for a non-2xx response."""
    code = response.status_code
    if code < 400:
        return
    snippet = response.text[:200].strip().replace("\n", " ")
    if code in (408, 504):
        raise SourceTimeout(f"HTTP {code} from {response.request.url.path}: {snippet}", source=source, status_code=code)
    if code == 429 or code >= 500:
        raise SourceUnavailable(
            f"HTTP {code} from {response.request.url.path}: {snippet}",
            source=source,
            hint="the source's own logs",
            status_code=code,
            retry_after_s=retry_after_s(response),
        )
    raise SourceRejected(f"HTTP {code} from {response.request.url.path}: {snippet}", source=source,
                         hint="credentials and query parameters", status_code=code)


def retry_after_s(response: httpx.Response) -> float | None:
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
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
