"""What the HTTP trace connectors (Jaeger, Tempo, Zipkin) share: the query boundary, 404-as-empty, bounded fetches.

Subclasses implement ``search(search, start, end)``, ``trace_by_id(trace_id)`` (both return
``(Converted, executed_query)``) and ``probe()`` (a one-line health message; raise on failure).
All HTTP goes through ``connectors.runtime.http`` (deadline, retry, breaker, error mapping).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import polars as pl

from config import SourceConfig
from connectors.base import Health, Query, Result, run_query
from connectors.errors import ConfigError, ConnectorError, PayloadError, SourceRejected
from connectors.runtime.http import get_bytes, get_json, make_client
from connectors.traces.frame import Converted, short
from connectors.traces.query import SpanSearch, merge

DEFAULT_MAX_TRACES = 20
DEFAULT_WORKERS = 4


class NotFound:
    """Sentinel: the backend answered 404 (no such trace / no match)."""


NOT_FOUND = NotFound()


def int_option(source: SourceConfig, key: str, default: int, low: int, high: int) -> int:
    value = source.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"source {source.name!r}: options.{key} must be an integer in {low}..{high}",
                          source=source.name, hint="sources.yaml")
    return value


class TraceHttpConnector:
    """Base class; see the module docstring."""

    type_name = "traces"
    capabilities = frozenset({"spans", "trace_by_id", "search"})

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None, *, strict: bool = False) -> None:
        if not str(source.options.get("url", "")).strip():
            raise ConfigError(f"source {source.name!r}: options.url is required", source=source.name, hint="sources.yaml")
        self.source = source
        self.name = source.name
        self.client = client if client is not None else make_client(source)
        self.strict = strict
        self.max_traces = int_option(source, "max_traces", DEFAULT_MAX_TRACES, 1, 500)
        self.workers = int_option(source, "fetch_workers", DEFAULT_WORKERS, 1, 16)
        self.headers: dict[str, str] = {}

    # --- the contract ------------------------------------------------------------------------

    def query(self, queries: Sequence[Query]) -> list[Result]:
        """One Result per query, in order; never raises."""
        return [run_query(self.name, q, self._fetch, strict=self.strict) for q in queries]

    def check_health(self) -> Health:
        """Never raises: a failure is a ``down`` Health with the error's one-line description."""
        started = time.perf_counter()
        try:
            message = self.probe()
        except ConnectorError as exc:
            return Health("down", exc.describe(), _ms(started))
        except Exception as exc:  # a health check must not take the Sources page down
            return Health("down", f"{self.name}: unexpected {type(exc).__name__}: {short(str(exc), 120)}", _ms(started))
        return Health("ok", message, _ms(started))

    def _fetch(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        if query.kind != "spans":
            raise ConfigError(f"{self.type_name} serves spans, not {query.kind!r}", source=self.name)
        search = SpanSearch.from_params(query.params)
        try:
            if search.trace_id:
                converted, executed = self.trace_by_id(search.trace_id)
            else:
                converted, executed = self.search(search, query.start, query.end)
        except PayloadError as exc:
            if not exc.hint:
                exc.hint = f"that options.url points at a {self.type_name} query API"
            raise
        notices = converted.notices + search.notices(self.type_name) + search.limit_notice(self.name, converted.frame)
        return converted.frame, executed, notices

    # --- for subclasses ----------------------------------------------------------------------

    def search(self, search: SpanSearch, start: datetime, end: datetime) -> tuple[Converted, str]:
        raise NotImplementedError

    def trace_by_id(self, trace_id: str) -> tuple[Converted, str]:
        raise NotImplementedError

    def probe(self) -> str:
        raise NotImplementedError

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET JSON through ``connectors.runtime.http`` (deadline, retry, breaker, error mapping)."""
        return get_json(self.client, path, self.name, params, headers=self.headers or None)

    def get_bytes(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        """GET the raw body (converters parse it themselves, e.g. streamed JSON lines)."""
        return get_bytes(self.client, path, self.name, params, headers=self.headers or None)

    def get_or_not_found(self, path: str, params: Mapping[str, Any] | None = None, *, raw: bool = False) -> Any:
        """Like :meth:`get` (or :meth:`get_bytes` when ``raw``), but a 404 returns ``NOT_FOUND``."""
        try:
            return self.get_bytes(path, params) if raw else self.get(path, params)
        except SourceRejected as exc:
            if exc.not_found:
                return NOT_FOUND
            raise

    def fetch_traces(self, trace_ids: Iterable[str], fetch_one: Callable[[str], Converted]) -> Converted:
        """Fetch up to ``options.max_traces`` traces, a few at a time; partial failure becomes a notice."""
        wanted = list(dict.fromkeys(trace_ids))
        ids = wanted[: self.max_traces]
        notices: list[str] = []
        if len(wanted) > len(ids):
            notices.append(f"{self.name}: fetched {len(ids)} of {len(wanted)} matching traces (options.max_traces)")
        if not ids:
            return merge([])
        parts: list[Converted] = []
        errors: list[ConnectorError] = []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(ids)), thread_name_prefix=f"{self.name}-fetch") as pool:
            # each task runs in a copy of our context so the caller's deadline (a ContextVar) applies
            futures = [pool.submit(contextvars.copy_context().run, fetch_one, trace_id) for trace_id in ids]
            for future in futures:
                try:
                    parts.append(future.result())
                except ConnectorError as exc:
                    errors.append(exc)
        if errors and not parts:
            raise errors[0]
        if errors:
            notices.append(f"{self.name}: {len(errors)} of {len(ids)} traces could not be fetched "
                           f"({errors[0].describe()})")
        merged = merge(parts)
        return Converted(merged.frame, merged.notices + tuple(notices))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
