"""ClickHouse over the OpenTelemetry Collector exporter's traces table (``otel_traces``).

``sources.yaml``::

    - name: clickhouse
      type: clickhouse
      timeout_s: 8
      options: {url: "http://clickhouse:8123", database: otel, table: otel_traces}

Credentials (``username``, ``password``) come from ``[connections.<name>]`` in ``.streamlit/secrets.toml``.
Capabilities ``spans``, ``trace_by_id``, ``search``:

* a spans query with ``purpose="window"`` returns whole traces sampled evenly with
  ``cityHash64(TraceId) % N = 0`` (N chosen so at most ``params["budget_traces"]`` traces come back,
  default :data:`DEFAULT_BUDGET_TRACES`) and says so in ``Result.coverage``;
* ``params["trace_id"]`` reads one trace, bounded through ``<table>_trace_id_ts`` when it exists;
* otherwise the search (service, operation, ``tags``, duration bounds, ``limit``) returns the newest
  matching traces.

:meth:`ClickHouseConnector.aggregates` gives the window-wide counts computed where the spans are
(:mod:`connectors.clickhouse.aggregates`). The layout is read from ``system.columns`` once.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence
from datetime import datetime

import httpx
import polars as pl

from config import SloConfig, SourceConfig
from connectors.base import Coverage, Health, Query, Result, run_query
from connectors.clickhouse.aggregates import ClickHouseAggregates
from connectors.clickhouse.client import ClickHouseClient, quote_identifier
from connectors.clickhouse.schema import TraceTable, read_table
from connectors.clickhouse.span_sql import sampled_spans, search_spans, trace_count, trace_spans
from connectors.clickhouse.spans import spans_from_clickhouse
from connectors.clickhouse.sql import DEFAULT_SLO, Outcome, Scope, Statement
from connectors.errors import ConfigError, ConnectorError
from connectors.traces.query import SpanSearch

__all__ = ["DEFAULT_BUDGET_TRACES", "ClickHouseConnector", "build"]
DEFAULT_BUDGET_TRACES = 20_000


class ClickHouseConnector:
    """Spans and pushed-down aggregates from an exporter traces table."""

    capabilities = frozenset({"spans", "trace_by_id", "search"})

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None, *, strict: bool = False) -> None:
        if not str(source.options.get("url", "")).strip():
            raise ConfigError(f"source {source.name!r}: options.url is required", source=source.name,
                              hint="sources.yaml")
        self.name = source.name
        self.database = str(source.options.get("database", "default"))
        self.table_name = str(source.options.get("table", "otel_traces"))
        for option, value in (("database", self.database), ("table", self.table_name)):
            try:
                quote_identifier(value)
            except ConfigError as exc:
                raise ConfigError(f"source {source.name!r}: options.{option}: {exc.message}", source=source.name,
                                  hint="sources.yaml") from exc
        self.client = ClickHouseClient(source, client)
        self.strict = strict
        self._table: TraceTable | None = None
        self._lock = threading.Lock()

    def table(self) -> TraceTable:
        """The table's layout, read from ``system.columns`` on first use (a failure is not cached)."""
        with self._lock:
            if self._table is None:
                self._table = read_table(self.client, self.database, self.table_name)
            return self._table

    def aggregates(self, start: datetime, end: datetime, slo: SloConfig = DEFAULT_SLO, *,
                   outcome: Outcome = "bad", roots_only: bool = True,
                   cohort: Sequence[tuple[str, str]] = ()) -> ClickHouseAggregates:
        """The aggregates of ``[start, end)`` for requests (roots) or every span, optionally within a cohort
        (``cohort``: the filter's pairs, keys as the user sees them: ``region``, ``service``)."""
        scope = Scope(start, end, slo, outcome, roots_only)
        return ClickHouseAggregates(self.client, self.table(), scope).within(cohort)

    # --- the contract ------------------------------------------------------------------------

    def query(self, queries: Sequence[Query]) -> list[Result]:
        """One Result per query, in order; never raises."""
        return [self._query_one(query) for query in queries]

    def _query_one(self, query: Query) -> Result:
        coverage: list[Coverage] = []  # filled by a window query: what the frame holds of the window
        result = run_query(self.name, query, lambda q: self._fetch(q, coverage), strict=self.strict)
        return dataclasses.replace(result, coverage=coverage[0]) if coverage and result.ok else result

    def check_health(self) -> Health:
        """Never raises: reads the table layout (a missing or foreign table is ``down`` with what is wrong)."""
        started = time.perf_counter()
        try:
            table = self.table()
        except ConnectorError as exc:
            return Health("down", exc.describe(), _ms(started))
        except Exception as exc:  # noqa: BLE001 — a health check must not take the Sources page down
            return Health("down", f"{self.name}: unexpected {type(exc).__name__}", _ms(started))
        lookup = "" if table.has_lookup else "; no trace-id lookup table (trace by id scans the table)"
        return Health("ok", f"{table.database}.{table.table}: {table.variant} exporter layout{lookup}", _ms(started))

    def _fetch(self, query: Query, coverage: list[Coverage]) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        if query.kind != "spans":
            raise ConfigError(f"clickhouse serves spans, not {query.kind!r}", source=self.name)
        table = self.table()
        search = SpanSearch.from_params({k: v for k, v in query.params.items() if k != "budget_traces"})
        if search.trace_id:
            return self._spans(trace_spans(table, search.trace_id), search.notices("clickhouse"))
        where = tuple((f"attr.{k}", v) for k, v in search.tags)
        if search.service:
            where = (("service", search.service),) + where
        scope = Scope(query.start, query.end, roots_only=False, where=where)
        if query.purpose == "window":
            budget = query.params.get("budget_traces", DEFAULT_BUDGET_TRACES)
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise ConfigError("params.budget_traces must be a positive integer", source=self.name)
            total = int(self.client.rows(*_args(trace_count(table, scope)))[0][0])
            every_nth = max(1, math.ceil(total / budget))
            frame, executed, notices = self._spans(sampled_spans(table, scope, every_nth), ())
            read = frame.get_column("trace_id").n_unique() if frame.height else 0
            coverage.append(Coverage(read, total, "all" if every_nth == 1 else "sampled_evenly"))
            return frame, executed, notices
        statement = search_spans(table, scope, operation=search.operation, min_duration_ms=search.min_duration_ms,
                                 max_duration_ms=search.max_duration_ms, limit=search.limit)
        return self._spans(statement, search.notices("clickhouse"))

    def _spans(self, statement: Statement, notices: tuple[str, ...]) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        frame, more = spans_from_clickhouse(self.client.frame(statement.sql, statement.params))
        return frame, _executed(statement), notices + more


def _args(statement: Statement) -> tuple[str, dict[str, object]]:
    return statement.sql, statement.params


def _executed(statement: Statement) -> str:
    shown = {k: v for k, v in statement.params.items() if k not in ("consumed", "kinds")}
    return f"{' '.join(statement.sql.split())} -- params {shown}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def build(source: SourceConfig) -> ClickHouseConnector:
    """Registry factory for ``type: clickhouse``."""
    return ClickHouseConnector(source)
