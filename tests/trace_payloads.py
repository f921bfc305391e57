"""Test-side trace files (OTLP/JSON, OTLP JSON lines, Jaeger, Zipkin v2) from a spans-like spec.

The wire formats themselves are written by :mod:`tests.trace_wire`; this module adapts a
datetime/ms-based spec to it and writes files.

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

from tests import trace_wire


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


def _wire(spans: Sequence[SpanSpec]) -> list[trace_wire.Span]:
    """The same spans in trace_wire's neutral form (roots are SERVER spans, children CLIENT calls)."""
    return [
        trace_wire.Span(
            trace_id=s.trace_id, span_id=s.span_id, parent_id=s.parent_span_id, service=s.service, name=s.operation,
            kind="server" if s.parent_span_id is None else "client",
            start_us=int(s.start.timestamp() * 1_000_000), duration_us=int(s.duration_ms * 1000),
            error=s.error, http_status=s.http_status, attrs=dict(s.attrs),
        )
        for s in spans
    ]


def otlp_document(spans: Sequence[SpanSpec]) -> dict[str, object]:
    """OTLP/JSON ``ExportTraceServiceRequest``: one resourceSpans per service."""
    return trace_wire.otlp_doc(_wire(spans))


def jaeger_document(spans: Sequence[SpanSpec]) -> dict[str, object]:
    """Jaeger query ``/api/traces`` response."""
    return trace_wire.jaeger_envelope(_wire(spans))


def zipkin_document(spans: Sequence[SpanSpec]) -> list[dict[str, object]]:
    """Zipkin v2 span list (``/api/v2/spans`` body)."""
    return trace_wire.zipkin_trace(_wire(spans))


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
