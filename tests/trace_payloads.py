"""Test-side writers of trace files (OTLP/JSON, OTLP JSON lines, Jaeger, Zipkin v2) from a spans-like spec.

A spec is a list of :class:`SpanSpec`; every writer emits the wire format as the real systems do
(see docs/CONNECTOR_FORMATS.md), so the CLI tests exercise the real converters end to end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl


@dataclass(frozen=True)
class SpanSpec:
    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_span_id: str | None
    service: str
    operation: str
    start: datetime
    duration_ms: float
    error: bool = False
    http_status: int | None = None
    attrs: dict[str, str] = field(default_factory=dict)


def specs_from_requests(requests: pl.DataFrame) -> list[SpanSpec]:
    """One root span per row of a frame shaped like ``tests.cohort_data.make_requests`` output."""
    attr_cols = [c for c in requests.columns if c.startswith("attr.")]
    out = []
    for row in requests.iter_rows(named=True):
        out.append(SpanSpec(
            trace_id=row["trace_id"], span_id=row["span_id"], parent_span_id=None, service=row["service"],
            operation=row["operation"], start=row["start"], duration_ms=row["duration_ms"],
            error=row["status"] == "error", http_status=row["http_status"],
            attrs={c[len("attr."):]: row[c] for c in attr_cols if row[c] is not None},
        ))
    return out


def _ns(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000) * 1000


def _us(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000)


def otlp_document(spans: Sequence[SpanSpec]) -> dict[str, object]:
    """OTLP/JSON ``ExportTraceServiceRequest``: one resourceSpans per service."""
    by_service: dict[str, list[dict[str, object]]] = {}
    for s in spans:
        attrs = [{"key": k, "value": {"stringValue": v}} for k, v in s.attrs.items()]
        if s.http_status is not None:
            attrs.append({"key": "http.response.status_code", "value": {"intValue": str(s.http_status)}})
        by_service.setdefault(s.service, []).append({
            "traceId": s.trace_id, "spanId": s.span_id, "parentSpanId": s.parent_span_id or "",
            "name": s.operation, "kind": 2 if s.parent_span_id is None else 3,
            "startTimeUnixNano": str(_ns(s.start)),
            "endTimeUnixNano": str(_ns(s.start) + int(s.duration_ms * 1_000_000)),
            "attributes": attrs, "status": {"code": 2 if s.error else 1},
        })
    return {"resourceSpans": [
        {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
         "scopeSpans": [{"scope": {"name": "test"}, "spans": items}]}
        for svc, items in by_service.items()
    ]}


def jaeger_document(spans: Sequence[SpanSpec]) -> dict[str, object]:
    """Jaeger query ``/api/traces`` response."""
    traces: dict[str, list[SpanSpec]] = {}
    for s in spans:
        traces.setdefault(s.trace_id, []).append(s)
    data = []
    for trace_id, items in traces.items():
        services = sorted({s.service for s in items})
        pid = {svc: f"p{i + 1}" for i, svc in enumerate(services)}
        jspans = []
        for s in items:
            tags = [{"key": k, "type": "string", "value": v} for k, v in s.attrs.items()]
            kind = "server" if s.parent_span_id is None else "client"
            tags.append({"key": "span.kind", "type": "string", "value": kind})
            if s.http_status is not None:
                tags.append({"key": "http.status_code", "type": "int64", "value": s.http_status})
            if s.error:
                tags.append({"key": "error", "type": "bool", "value": True})
            refs = [] if s.parent_span_id is None else [
                {"refType": "CHILD_OF", "traceID": trace_id, "spanID": s.parent_span_id}
            ]
            jspans.append({
                "traceID": trace_id, "spanID": s.span_id, "operationName": s.operation, "references": refs,
                "startTime": _us(s.start), "duration": int(s.duration_ms * 1000), "tags": tags, "logs": [],
                "processID": pid[s.service], "warnings": None, "flags": 1,
            })
        data.append({"traceID": trace_id, "spans": jspans,
                     "processes": {pid[svc]: {"serviceName": svc, "tags": []} for svc in services}, "warnings": None})
    return {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": None}


def zipkin_document(spans: Sequence[SpanSpec]) -> list[dict[str, object]]:
    """Zipkin v2 span list (``/api/v2/spans`` body)."""
    out = []
    for s in spans:
        tags = dict(s.attrs)
        if s.http_status is not None:
            tags["http.status_code"] = str(s.http_status)
        if s.error:
            tags["error"] = "true"
        item: dict[str, object] = {
            "traceId": s.trace_id, "id": s.span_id, "name": s.operation.lower(),
            "kind": "SERVER" if s.parent_span_id is None else "CLIENT",
            "timestamp": _us(s.start), "duration": int(s.duration_ms * 1000),
            "localEndpoint": {"serviceName": s.service}, "tags": tags,
        }
        if s.parent_span_id:
            item["parentId"] = s.parent_span_id
        out.append(item)
    return out


def write_trace_file(path: Path, spans: Sequence[SpanSpec], fmt: str) -> Path:
    """Write ``spans`` as ``fmt``: otlp, otlp-lines (collector file exporter), jaeger or zipkin."""
    if fmt == "otlp":
        path.write_text(json.dumps(otlp_document(spans)))
    elif fmt == "otlp-lines":
        half = len(spans) // 2
        lines = [json.dumps(otlp_document(part)) for part in (spans[:half], spans[half:]) if part]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "jaeger":
        path.write_text(json.dumps(jaeger_document(spans)))
    elif fmt == "zipkin":
        path.write_text(json.dumps(zipkin_document(spans)))
    else:
        raise ValueError(fmt)
    return path
