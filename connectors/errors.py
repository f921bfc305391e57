"""The one error tree every connector speaks.

::

    ConnectorError
    ├── DownstreamError            the source misbehaved; not our fault, maybe transient
    │   ├── SourceTimeout          connect/read/pool timeout or the deadline ran out
    │   ├── SourceUnavailable      connection refused/reset, 5xx, breaker open
    │   ├── SourceRejected         4xx: auth, bad query, not allowed
    │   └── PayloadError           the body is not what the wire format promises
    ├── ConfigError                sources.yaml / secrets are wrong: the user's fault
    └── ConnectorBug               our fault: schema violation or an unexpected exception

``query()`` never raises these past its boundary; it stores them in ``Result.error``.
Every error carries ``source`` (the connector name) and a message fit to show an on-call
engineer: what failed and what to check, never a stack trace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from model.validate import SchemaError

P = ParamSpec("P")
R = TypeVar("R")


class ConnectorError(Exception):
    """Root of the tree. ``hint`` says what to check."""

    def __init__(self, message: str, *, source: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def describe(self) -> str:
        """One line for a degraded-panel notice: source, what failed, what to check."""
        where = f"{self.source}: " if self.source else ""
        tail = f" — check {self.hint}" if self.hint else ""
        return f"{where}{type(self).__name__}: {self.message}{tail}"


class DownstreamError(ConnectorError):
    """The data source failed or answered badly. ``status_code`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, source: str = "", hint: str = "", status_code: int | None = None) -> None:
        super().__init__(message, source=source, hint=hint)
        self.status_code = status_code


class SourceTimeout(DownstreamError):
    """No answer within the deadline."""


class SourceUnavailable(DownstreamError):
    """Refused, reset, 5xx, or our breaker for this source is open (``from_breaker``: no I/O was made)."""

    def __init__(self, message: str, *, source: str = "", hint: str = "", status_code: int | None = None,
                 retry_after_s: float | None = None, from_breaker: bool = False) -> None:
        super().__init__(message, source=source, hint=hint, status_code=status_code)
        self.retry_after_s = retry_after_s
        self.from_breaker = from_breaker


class SourceRejected(DownstreamError):
    """The source refused the request (4xx); ``status_code`` says which (None for e.g. a redirect loop)."""

    @property
    def not_found(self) -> bool:
        return self.status_code == 404


class PayloadError(DownstreamError):
    """The body could not be parsed as the documented wire format."""


class ConfigError(ConnectorError):
    """The configuration is wrong (unknown type, missing option, bad YAML)."""


class ConnectorBug(ConnectorError):
    """A frame violated its schema or an unexpected exception escaped a converter."""


def payload_boundary(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a converter: a structural surprise in the payload (a null where an object should be, a
    number where a list should be, nesting deep enough to exhaust the parser) becomes a PayloadError
    naming the converter, instead of an AttributeError/TypeError escaping to the page."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (ConnectorError, SchemaError):
            raise  # already classified; a schema violation is our bug, not the payload's
        except (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError) as exc:
            raise PayloadError(f"{func.__name__}: unexpected payload structure ({type(exc).__name__}: {exc})",
                               hint="that the source speaks the documented API version") from exc

    return wrapper
