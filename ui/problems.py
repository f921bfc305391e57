"""What went wrong getting a frame, as types the panels render (never strings to re-parse).

A :class:`Problem` is a failure the user must know about (a source failed, is stale, cannot start, or
nothing serves the kind); a :class:`Notice` is a data-quality note that is shown but is not a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from connectors.base import Result
from connectors.errors import ConnectorError
from connectors.runtime.fanout import StaleResult

ProblemKind = Literal["failed", "stale", "cannot_start", "not_configured"]


@dataclass(frozen=True)
class Problem:
    """One source's problem: ``error`` is the live failure (for ``stale``, why the data is old)."""

    kind: ProblemKind
    source: str
    message: str
    error: ConnectorError | None = None
    stale_since: datetime | None = None

    @property
    def error_class(self) -> str:
        """The failure's class name in the error tree (``SourceTimeout``…), or "" when there is none."""
        return type(self.error).__name__ if self.error is not None else ""


@dataclass(frozen=True)
class Notice:
    """A data-quality note from one source (limits hit, rows dropped): shown, but not as a failure."""

    source: str
    message: str


def read_result(source: str, result: Result) -> tuple[tuple[Problem, ...], tuple[Notice, ...]]:
    """Split one Result into typed problems and notices."""
    notices = result.notices
    if isinstance(result, StaleResult):
        # fanout appends exactly one "stale since …" line to the last good answer's notices; the typed
        # fields below say the same, so that line is dropped rather than shown twice
        notices = notices[:-1]
        error = result.live_error
        problems: tuple[Problem, ...] = (Problem(
            "stale", source, error.describe() if error is not None else f"{source}: the source is failing",
            error, result.stale_since),)
    elif result.error is not None:
        problems = (Problem("failed", result.error.source or source, result.error.describe(), result.error),)
    else:
        problems = ()
    return problems, tuple(Notice(source, line) for line in notices)


def cannot_start(source: str, error: ConnectorError | None, message: str) -> Problem:
    """A source whose connector could not be built (bad options, missing driver, constructor bug)."""
    return Problem("cannot_start", source, message, error)


def not_configured(kind: str) -> Problem:
    return Problem("not_configured", "", f"no configured source serves {kind.replace('_', ' ')}")
