"""Test-side trace files (OTLP/JSON, OTLP JSON lines, Jaeger, Zipkin v2) from spans given in datetimes and ms.

The wire formats themselves are written by :mod:`tests.trace_wire` from its one span model
(:class:`tests.trace_wire.Span`); this module builds those spans from datetime/ms values or from a
spans-like frame, and writes files. Every writer emits the wire format as the real systems do
(see docs/CONNECTOR_FORMATS.md), so the CLI tests exercise the real converters end to end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import polars as pl

from tests import trace_wire
from tests.trace_wire import Span


def span(
    trace_id: str, span_id: str, parent_span_id: str | None, service: str, operation: str, start: datetime,
    duration_ms: float, *, error: bool = False, http_status: int | None = None, attrs: dict[str, str] | None = None,
) -> Span:
    """A span from datetime/ms values; roots are SERVER spans, children CLIENT calls."""
    return Span(
        trace_id=trace_id, span_id=span_id, parent_id=parent_span_id, service=service, name=operation,
        kind="server" if parent_span_id is None else "client",
        start_us=int(start.timestamp() * 1_000_000), duration_us=int(duration_ms * 1000),
        error=error, http_status=http_status, attrs=dict(attrs or {}),
    )


def spans_from_frame(frame: pl.DataFrame) -> list[Span]:
    """One span per row of a spans-like frame (``parent_span_id`` optional: roots without it)."""
    attr_cols = [c for c in frame.columns if c.startswith("attr.")]
    return [
        span(row["trace_id"], row["span_id"], row.get("parent_span_id"), row["service"], row["operation"],
             row["start"], row["duration_ms"], error=row["status"] == "error", http_status=row["http_status"],
             attrs={c[len("attr."):]: row[c] for c in attr_cols if row[c] is not None})
        for row in frame.iter_rows(named=True)
    ]


def otlp_document(spans: Sequence[Span]) -> dict[str, object]:
    """OTLP/JSON ``ExportTraceServiceRequest``: one resourceSpans per service."""
    return trace_wire.otlp_doc(list(spans))


def jaeger_document(spans: Sequence[Span]) -> dict[str, object]:
    """Jaeger query ``/api/traces`` response."""
    return trace_wire.jaeger_envelope(list(spans))


def zipkin_document(spans: Sequence[Span]) -> list[dict[str, object]]:
    """Zipkin v2 span list (``/api/v2/spans`` body)."""
    return trace_wire.zipkin_trace(list(spans))


def write_trace_file(path: Path, spans: Sequence[Span], fmt: str) -> Path:
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
