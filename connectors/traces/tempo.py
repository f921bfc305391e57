"""Grafana Tempo: TraceQL search, then the matching traces fetched by id (at most ``max_traces``).

``sources.yaml``::

    - name: tempo
      type: tempo
      options: {url: "http://tempo:3200", tenant: team-a, max_traces: 20, spss: 3}

Units: search ``start``/``end`` are unix **seconds**; search trace ids come hex with leading zeros
stripped; trace bodies carry base64 ids and enum names (the OTLP converter handles both).
``/api/v2/traces/{id}`` is tried first and ``/api/traces/{id}`` (``batches``) on a 404; the first
version that answers is cached.
"""

from __future__ import annotations

import json
import math
import re
import threading
from datetime import datetime
from typing import Literal

import httpx

from connectors.traces.convert_otlp import convert_otlp
from connectors.errors import ConfigError, PayloadError
from config import SourceConfig
from connectors.traces.frame import Converted, empty_converted, short
from connectors.traces.search_http import NOT_FOUND, TraceHttpConnector, int_option
from connectors.traces.query import SpanSearch, epoch_us, go_duration, normalize_trace_id

__all__ = ["TempoConnector", "build", "traceql"]
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.\-/:]+$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def traceql(search: SpanSearch) -> str:
    """The TraceQL spanset filter for a search: every condition on the same span."""
    conds: list[str] = []
    if search.service:
        conds.append(f"resource.service.name = {_quote(search.service)}")
    if search.operation:
        conds.append(f"name = {_quote(search.operation)}")
    if search.min_duration_ms is not None:
        conds.append(f"duration >= {go_duration(search.min_duration_ms)}")
    if search.max_duration_ms is not None:
        conds.append(f"duration <= {go_duration(search.max_duration_ms)}")
    for key, value in search.tags:
        conds.append(_tag_condition(key, value))
    return "{ " + " && ".join(conds) + " }" if conds else "{}"


def _tag_condition(key: str, value: str) -> str:
    if key == "error":
        return "status = error" if value.lower() == "true" else "status != error"
    if not _SAFE_KEY.match(key):
        raise ConfigError(f"tag key {short(key)} cannot be searched in Tempo (letters, digits and _ . - / : only)")
    if key in ("http.status_code", "http.response.status_code") and value.isdigit():
        return f"span.{key} = {value}"
    if _NUMBER.match(value) or value in ("true", "false"):
        # the attribute may be typed or a string: match either
        return f"(.{key} = {_quote(value)} || .{key} = {value})"
    return f".{key} = {_quote(value)}"


def _quote(value: str) -> str:
    return json.dumps(value)  # a double-quoted literal with \" \\ \n \uXXXX escapes, which TraceQL accepts


class TempoConnector(TraceHttpConnector):
    """Spans from Tempo (multi-tenant via ``options.tenant`` -> ``X-Scope-OrgID``)."""

    type_name = "tempo"

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None, *, strict: bool = False) -> None:
        super().__init__(source, client, strict=strict)
        tenant = source.options.get("tenant")
        if tenant:
            self.headers["X-Scope-OrgID"] = str(tenant)
        self.spss = int_option(source, "spss", 3, 1, 1000)
        self._trace_api: Literal["v1", "v2"] | None = None
        self._lock = threading.Lock()

    def probe(self) -> str:
        body = self.get_or_not_found("/api/status/buildinfo")
        if body is NOT_FOUND:  # very old Tempo: fall back to the echo endpoint
            self.get_bytes("/api/echo")
            return "Tempo answers /api/echo"
        if not isinstance(body, dict) or not isinstance(body.get("version"), str):
            raise PayloadError("/api/status/buildinfo did not answer like Tempo", source=self.name, hint="options.url")
        return f"Tempo {body['version']}"

    def search(self, search: SpanSearch, start: datetime, end: datetime) -> tuple[Converted, str]:
        query = traceql(search)
        params = {"q": query, "limit": search.limit, "spss": self.spss,
                  "start": epoch_us(start) // 1_000_000, "end": math.ceil(epoch_us(end) / 1_000_000)}  # seconds
        body = self.get("/api/search", params)
        if not isinstance(body, dict):
            raise PayloadError("/api/search did not return an object", source=self.name)
        traces = body.get("traces") or []  # omitted when empty (gogo jsonpb)
        if not isinstance(traces, list):
            raise PayloadError("/api/search 'traces' is not a list", source=self.name)
        ids = []
        for item in traces:
            raw = item.get("traceID") if isinstance(item, dict) else None
            if not isinstance(raw, str):
                raise PayloadError(f"/api/search returned a trace without a traceID: {short(item)}", source=self.name)
            try:
                ids.append(normalize_trace_id(raw))  # leading zeros are stripped by Tempo
            except ConfigError as exc:
                raise PayloadError(f"/api/search returned a bad traceID {short(raw)}", source=self.name) from exc
        converted = self.fetch_traces(ids, lambda trace_id: self.trace_by_id(trace_id)[0])
        executed = f"GET /api/search q={query} start={params['start']} end={params['end']} limit={search.limit}"
        return converted, f"{executed}; {min(len(ids), self.max_traces)} traces fetched by id"

    def trace_by_id(self, trace_id: str) -> tuple[Converted, str]:
        with self._lock:
            api = self._trace_api
        if api in (None, "v2"):
            body = self.get_or_not_found(f"/api/v2/traces/{trace_id}", raw=True)
            if body is not NOT_FOUND:
                self._remember("v2")
                return convert_otlp(body), f"GET /api/v2/traces/{trace_id}"
            if api == "v2":
                return empty_converted(), f"GET /api/v2/traces/{trace_id}"
        body = self.get_or_not_found(f"/api/traces/{trace_id}", raw=True)  # Tempo < 2.5, or not found
        if body is NOT_FOUND:
            return empty_converted(), f"GET /api/traces/{trace_id}"
        self._remember("v1")
        return convert_otlp(body), f"GET /api/traces/{trace_id}"

    def _remember(self, api: Literal["v1", "v2"]) -> None:
        with self._lock:
            self._trace_api = api


def build(source: SourceConfig) -> TempoConnector:
    """Registry factory for ``type: tempo``."""
    return TempoConnector(source)
