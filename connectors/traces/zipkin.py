"""Zipkin v2 API: ``/api/v2/services``, ``/api/v2/traces`` (search), ``/api/v2/trace/{id}``.

``sources.yaml``::

    - name: zipkin
      type: zipkin
      options: {url: "http://zipkin:9411"}

Units: ``endTs`` and ``lookback`` are **ms**; ``minDuration``/``maxDuration`` are **µs**.
Tags are searched with ``annotationQuery`` (``key=value and error``). A window query
(``purpose="window"``) searches whole-millisecond time slices (``search_http.sample_window``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from config import SourceConfig
from connectors.errors import ConfigError, PayloadError
from connectors.traces.convert_zipkin import convert_zipkin, spans_from_zipkin
from connectors.traces.frame import Converted, empty_converted, short
from connectors.traces.query import SpanSearch, epoch_us
from connectors.traces.search_http import NOT_FOUND, TraceHttpConnector

__all__ = ["ZipkinConnector", "annotation_query", "build", "spans_from_zipkin"]


def annotation_query(tags: tuple[tuple[str, str], ...]) -> str:
    """``{"http.path": "/x", "error": "true"}`` -> ``http.path=/x and error``."""
    terms = []
    for key, value in tags:
        if " and " in f" {key} {value} ".lower() or "=" in key or not key.strip():
            raise ConfigError(f"tag {short(key)}={short(value)} cannot be expressed as a Zipkin annotationQuery")
        terms.append(key if key == "error" and value.lower() == "true" else f"{key}={value}")
    return " and ".join(terms)


class ZipkinConnector(TraceHttpConnector):
    """Spans from a Zipkin server (or anything serving its v2 API)."""

    type_name = "zipkin"
    slice_granularity_us = 1000  # endTs/lookback are ms

    def services(self) -> list[str]:
        body = self.get("/api/v2/services")
        if not isinstance(body, list):
            raise PayloadError("/api/v2/services did not return a list", source=self.name, hint="options.url")
        return [s for s in body if isinstance(s, str)]

    def probe(self) -> str:
        return f"Zipkin v2 API: {len(self.services())} services"

    def search(self, search: SpanSearch, start: datetime, end: datetime) -> tuple[Converted, str]:
        end_ms = epoch_us(end) // 1000
        params: dict[str, Any] = {"endTs": end_ms, "lookback": max(1, end_ms - epoch_us(start) // 1000),  # ms
                                  "limit": search.limit}
        if search.service:
            params["serviceName"] = search.service
        if search.operation:
            params["spanName"] = search.operation
        if search.min_duration_ms is not None:
            params["minDuration"] = round(search.min_duration_ms * 1000)  # ms -> µs
        if search.max_duration_ms is not None:
            params["maxDuration"] = round(search.max_duration_ms * 1000)
        if search.tags:
            params["annotationQuery"] = annotation_query(search.tags)
        converted = convert_zipkin(self.get_bytes("/api/v2/traces", params))
        return converted, "GET /api/v2/traces " + " ".join(f"{k}={v}" for k, v in params.items())

    def trace_by_id(self, trace_id: str) -> tuple[Converted, str]:
        wire_id = trace_id[16:] if trace_id.startswith("0" * 16) else trace_id  # 64-bit ids as Zipkin stores them
        path = f"/api/v2/trace/{wire_id}"
        body = self.get_or_not_found(path, raw=True)
        return (empty_converted() if body is NOT_FOUND else convert_zipkin(body)), f"GET {path}"


def build(source: SourceConfig) -> ZipkinConnector:
    """Registry factory for ``type: zipkin``."""
    return ZipkinConnector(source)
