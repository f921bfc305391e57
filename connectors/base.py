"""The connector contract: every backend is read through ``Connector.query``.

Modelled on Grafana's ``QueryData``/``CheckHealth`` and Jaeger's ``Reader``:

* ``query`` takes a batch of :class:`Query` and returns one :class:`Result` per query, in order.
  **It never raises**: a failure is stored in ``Result.error`` (a ``ConnectorError``), and one
  failing query never fails its siblings.
* Not-found is an empty frame with the full schema (``model.schemas.empty_frame``), not an error.
* Data-quality problems (clock skew, dropped rows, unknown enum values) become ``Result.notices``.
* Every returned frame has passed ``model.validate.validate`` for ``Query.kind``.
* ``capabilities`` declares which frame kinds (and ``"trace_by_id"``/``"search"``) the connector
  serves, so pages never probe.
* ``check_health`` never raises either; it returns a :class:`Health`.

Constructors take a frozen config and, for HTTP sources, an injected ``httpx.Client``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import polars as pl

from connectors.errors import ConnectorBug, ConnectorError
from model.validate import SchemaError, validate

# What a spans query is for (DESIGN.md, "Two jobs of a source"):
#   "window" — window-wide analysis: every request of [start, end), or a sample spread evenly across it
#              (never "the newest N"); params["budget_traces"] bounds what a search-only backend fetches.
#   "search" — trace search and lookup for the Traces page: the backend's own search semantics.
Purpose = Literal["window", "search"]


@dataclass(frozen=True)
class Query:
    """One request for one frame kind over ``[start, end)`` (UTC); ``params`` are kind-specific."""

    ref_id: str
    kind: str
    start: datetime
    end: datetime
    params: Mapping[str, Any] = field(default_factory=dict)
    purpose: Purpose = "search"


@dataclass(frozen=True)
class Coverage:
    """What a spans frame holds of its window: every trace, or a stated sample of it.

    ``traces_total`` is the number of traces in the window (estimated for a sample, None when the
    backend gives no way to estimate it). ``method`` says how the traces were chosen. ``total_exact``
    says a sample's ``traces_total`` was counted where the data is (Tempo's TraceQL metrics), not estimated.
    """

    traces_read: int
    traces_total: int | None
    method: Literal["all", "sampled_evenly"] = "all"
    slices: int = 1
    total_exact: bool = False

    @property
    def complete(self) -> bool:
        return self.method == "all"

    @property
    def scale(self) -> float:
        """Multiply a count over the sample by this to estimate it over the window (1.0 when complete)."""
        if self.complete or not self.traces_total or not self.traces_read:
            return 1.0
        return max(1.0, self.traces_total / self.traces_read)


@dataclass(frozen=True)
class Result:
    """A frame *or* an error, plus what was executed and any data-quality notices."""

    ref_id: str
    kind: str
    frame: pl.DataFrame | None = None
    executed_query: str = ""
    notices: tuple[str, ...] = ()
    error: ConnectorError | None = None
    duration_ms: float = 0.0
    coverage: Coverage | None = None  # spans queries with purpose "window": what the frame holds of the window

    @property
    def ok(self) -> bool:
        return self.error is None and self.frame is not None


@dataclass(frozen=True)
class Health:
    """``status`` is ``ok``, ``degraded`` or ``down``; ``message`` says why in plain words."""

    status: Literal["ok", "degraded", "down"]
    message: str = ""
    latency_ms: float | None = None


@dataclass(frozen=True)
class Progress:
    """How far a long load has got: ``done`` of ``total`` ``unit`` (total None while unknown)."""

    done: int
    total: int | None
    unit: str = "bytes"


@runtime_checkable
class ReportsProgress(Protocol):
    """A connector whose loads take long (big local files) says how far the current one has got."""

    def progress(self) -> Progress | None: ...


# Capability of a source that reads local files the user pointed at: its reads are not bounded by the
# page deadline (that bounds calls to backends); long loads report progress instead.
LOCAL = "local"


@runtime_checkable
class Connector(Protocol):
    """A data source. See the module docstring for the full contract."""

    name: str
    capabilities: frozenset[str]

    def check_health(self) -> Health: ...

    def query(self, queries: Sequence[Query]) -> list[Result]: ...


@dataclass(frozen=True)
class Fetched:
    """What a connector's fetch step returns when it has more to say than a frame: e.g. its coverage."""

    frame: pl.DataFrame
    executed_query: str
    notices: tuple[str, ...] = ()
    coverage: Coverage | None = None


def run_query(
    source: str,
    query: Query,
    fetch: Callable[[Query], tuple[pl.DataFrame, str, tuple[str, ...]] | Fetched],
    *,
    strict: bool = False,
) -> Result:
    """Run one query through ``fetch`` at the boundary: validate, time, and turn errors into a Result.

    ``fetch`` returns ``(frame, executed_query, notices)`` or a :class:`Fetched`, or raises.
    ``strict`` re-raises ``ConnectorBug`` (tests turn it on).
    """
    started = time.perf_counter()
    executed = ""
    try:
        answer = fetch(query)
        fetched = answer if isinstance(answer, Fetched) else Fetched(*answer)
        executed = fetched.executed_query
        validate(fetched.frame, query.kind)
        return Result(query.ref_id, query.kind, fetched.frame, executed, fetched.notices, None, _ms(started),
                      coverage=fetched.coverage)
    except ConnectorError as exc:
        if not exc.source:
            exc.source = source
        error: ConnectorError = exc
    except SchemaError as exc:
        error = ConnectorBug(str(exc), source=source, hint="the connector's converter (our bug)")
    except Exception as exc:  # the boundary: nothing unexpected may escape query()
        error = ConnectorBug(f"unexpected {type(exc).__name__}: {exc}", source=source, hint="the Faultline log")
    if strict and isinstance(error, ConnectorBug):
        raise error
    return Result(query.ref_id, query.kind, None, executed, (), error, _ms(started))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
