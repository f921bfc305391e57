"""Jaeger query service: api_v3 (OTLP JSON, preferred) or the v1 ``/api`` of the classic UI.

``sources.yaml``::

    - name: jaeger
      type: jaeger
      options: {url: "http://jaeger:16686", api: auto, max_services: 10}

``api: auto`` asks ``/api/v3/services`` first, then ``/api/services``, and caches the answer (v1
search was removed after v2.20; older servers lack api_v3). Units: v1 ``start``/``end`` are µs,
``/api/dependencies`` ``endTs``/``lookback`` ms, durations Go strings; v3 times are RFC 3339.
A search without a service fans out over the first ``max_services`` services. A window query
(``purpose="window"``) searches time slices (``search_http.sample_window``); Jaeger's search returns
whole traces, so nothing is fetched by id.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
import polars as pl

from config import SourceConfig
from connectors.errors import ConfigError, PayloadError, SourceRejected
from connectors.traces.convert_jaeger import convert_jaeger, spans_from_jaeger
from connectors.traces.convert_otlp import convert_otlp
from connectors.traces.frame import Converted, empty_converted
from connectors.traces.query import SpanSearch, epoch_us, go_duration, merge, rfc3339
from connectors.traces.search_http import NOT_FOUND, TraceHttpConnector, int_option

Api = Literal["v1", "v3"]
__all__ = ["JaegerConnector", "build", "spans_from_jaeger"]


class JaegerConnector(TraceHttpConnector):
    """Spans from Jaeger; also :meth:`services`, :meth:`operations` and :meth:`dependencies`."""

    type_name = "jaeger"

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None, *, strict: bool = False) -> None:
        super().__init__(source, client, strict=strict)
        api = source.options.get("api", "auto")
        if api not in ("auto", "v1", "v3"):
            raise ConfigError(f"source {source.name!r}: options.api must be auto, v1 or v3", source=source.name)
        self._api: Api | None = None if api == "auto" else api
        self._lock = threading.Lock()
        self.max_services = int_option(source, "max_services", 10, 1, 200)

    def api(self) -> Api:
        """Which API the server speaks, detected once (only a positive answer is cached)."""
        with self._lock:
            if self._api is None:
                self._api = self._detect()
            return self._api

    def _detect(self) -> Api:
        body = self.get_or_not_found("/api/v3/services")
        if isinstance(body, dict) and "error" not in body:
            return "v3"
        body = self.get_or_not_found("/api/services")
        if isinstance(body, dict) and "data" in body:
            return "v1"
        raise SourceRejected("neither api_v3 (/api/v3/services) nor the v1 API (/api/services) answered like Jaeger",
                             source=self.name, hint="options.url points at the Jaeger query service (port 16686)")

    def services(self) -> list[str]:
        if self.api() == "v3":
            return _strings(self.get("/api/v3/services"), "services", self.name)
        return _strings(self.get("/api/services"), "data", self.name)

    def operations(self, service: str) -> list[str]:
        if self.api() == "v3":
            body = self.get("/api/v3/operations", {"service": service})
            ops = body.get("operations") if isinstance(body, dict) else None
            return [op["name"] for op in ops or [] if isinstance(op, dict) and isinstance(op.get("name"), str)]
        return _strings(self.get(f"/api/services/{quote(service, safe='')}/operations"), "data", self.name)

    def dependencies(self, start: datetime, end: datetime) -> pl.DataFrame:
        """Service links over ``[start, end)``: ``parent``, ``child``, ``call_count`` (both APIs serve it)."""
        end_ms = epoch_us(end) // 1000
        lookback_ms = max(1, end_ms - epoch_us(start) // 1000)
        body = self.get("/api/dependencies", {"endTs": end_ms, "lookback": lookback_ms})  # ms, ms
        links = body.get("data") if isinstance(body, dict) else body
        if not isinstance(links, list):
            raise PayloadError("/api/dependencies did not return a list of links", source=self.name)
        rows = [(d.get("parent"), d.get("child"), d.get("callCount")) for d in links if isinstance(d, dict)]
        return pl.DataFrame(rows, schema={"parent": pl.String, "child": pl.String, "call_count": pl.Int64},
                            orient="row", strict=False)

    def probe(self) -> str:
        api = self.api()
        return f"Jaeger {'api_v3' if api == 'v3' else 'v1 API'}: {len(self.services())} services"

    def trace_by_id(self, trace_id: str) -> tuple[Converted, str]:
        wire_id = trace_id[16:] if trace_id.startswith("0" * 16) else trace_id  # 64-bit ids in their usual form
        if self.api() == "v3":
            path = f"/api/v3/traces/{wire_id}"
            body = self.get_or_not_found(path, raw=True)
            return (empty_converted() if body is NOT_FOUND else convert_otlp(body)), f"GET {path}"
        path = f"/api/traces/{wire_id}"
        body = self.get_or_not_found(path, raw=True)
        return (empty_converted() if body is NOT_FOUND else convert_jaeger(body)), f"GET {path}"

    def window_parts(self, search: SpanSearch) -> list[SpanSearch]:
        """Jaeger searches need a service: without one, each slice is searched once per service."""
        if search.service:
            return [search]
        return [replace(search, service=service) for service in self.services()[: self.max_services]] or [search]

    def search(self, search: SpanSearch, start: datetime, end: datetime) -> tuple[Converted, str]:
        api = self.api()
        services = [search.service] if search.service else self.services()[: self.max_services]
        parts, executed = [], []
        for service in services:
            if api == "v3":
                params = _v3_params(search, service, start, end)
                # 404 = "No traces found"; raw because Jaeger 1.x streams one {"result": ...} per line
                body = self.get_or_not_found("/api/v3/traces", params, raw=True)
                parts.append(empty_converted() if body is NOT_FOUND else convert_otlp(body))
                executed.append(f"GET /api/v3/traces {_show(params)}")
            else:
                params = _v1_params(search, service, start, end)
                parts.append(convert_jaeger(self.get_bytes("/api/traces", params)))
                executed.append(f"GET /api/traces {_show(params)}")
        merged = merge(parts)
        notices = merged.notices
        if not search.service:
            notices += (f"{self.name}: no service given; searched {len(services)} services",)
        return Converted(merged.frame, notices), "; ".join(executed) or "no services to search"


def _v1_params(search: SpanSearch, service: str, start: datetime, end: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {"service": service, "start": epoch_us(start), "end": epoch_us(end),  # µs
                              "limit": search.limit}
    if search.operation:
        params["operation"] = search.operation
    if search.min_duration_ms is not None:
        params["minDuration"] = go_duration(search.min_duration_ms)
    if search.max_duration_ms is not None:
        params["maxDuration"] = go_duration(search.max_duration_ms)
    if search.tags:
        params["tags"] = json.dumps(dict(search.tags))
    return params


def _v3_params(search: SpanSearch, service: str, start: datetime, end: datetime) -> dict[str, Any]:
    # snake_case names: accepted by Jaeger v1.x and v2.x alike
    params: dict[str, Any] = {"query.service_name": service, "query.start_time_min": rfc3339(start),
                              "query.start_time_max": rfc3339(end), "query.num_traces": search.limit}
    if search.operation:
        params["query.operation_name"] = search.operation
    if search.min_duration_ms is not None:
        params["query.duration_min"] = go_duration(search.min_duration_ms)
    if search.max_duration_ms is not None:
        params["query.duration_max"] = go_duration(search.max_duration_ms)
    if search.tags:
        params["query.attributes"] = json.dumps(dict(search.tags))
    return params


def _strings(body: object, key: str, source: str) -> list[str]:
    values = body.get(key) if isinstance(body, dict) else None
    if values is None and isinstance(body, dict):
        return []  # proto3 JSON omits an empty list
    if not isinstance(values, list):
        raise PayloadError(f"expected a list under {key!r}", source=source, hint="options.url points at Jaeger")
    return [v for v in values if isinstance(v, str)]


def _show(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def build(source: SourceConfig) -> JaegerConnector:
    """Registry factory for ``type: jaeger``."""
    return JaegerConnector(source)
