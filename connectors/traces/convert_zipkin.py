"""Zipkin v2 JSON -> SPANS frame.

Accepts a trace (``[Span]``, from ``/api/v2/trace/{id}``), a list of traces (``[[Span]]``, from
``/api/v2/traces``) and a single span object. ``timestamp`` and ``duration`` are µs; tag values are
strings and the mere presence of an ``error`` tag marks an error. A SERVER span with ``shared: true``
reusing its CLIENT's id is split off by ``spans_finish`` (step 4).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from connectors.errors import PayloadError
from connectors.traces.finish import finish
from connectors.traces.frame import Converted, SpanRows, load_json, scalar_text, short, status_from_tags, to_int

FMT = "zipkin"


def spans_from_zipkin(payload: str | bytes | dict[str, Any] | list[Any]) -> pl.DataFrame:
    """Zipkin v2 JSON -> SPANS frame; malformed input raises PayloadError."""
    return convert_zipkin(payload).frame


def convert_zipkin(payload: object) -> Converted:
    """Like :func:`spans_from_zipkin`, with the data-quality notices."""
    rows = SpanRows(FMT)
    doc = load_json(payload, FMT)
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise PayloadError(f"{FMT} payload must be a list of spans or of traces, got {type(doc).__name__}")
    for i, item in enumerate(doc):
        if isinstance(item, list):  # a list of traces
            for j, span in enumerate(item):
                _add_span(rows, span, f"[{i}][{j}]")
        else:
            _add_span(rows, item, f"[{i}]")
    return finish(rows)


def _add_span(rows: SpanRows, span: object, where: str) -> None:
    if not isinstance(span, dict):
        raise PayloadError(f"{FMT} payload: {where} must be a span object, got {type(span).__name__}")
    if "traceId" not in span and "id" not in span:
        keys = ", ".join(short(k, 30) for k in list(span)[:5])
        raise PayloadError(f"not Zipkin v2 JSON: the span at {where} has no 'traceId' or 'id' (keys: {keys})")
    tags = span.get("tags")
    if not isinstance(tags, dict):
        if tags is not None:
            rows.counts["malformed tag maps skipped"] += 1
        tags = {}
    attrs = [(str(k), scalar_text(v)) for k, v in tags.items()]
    local_raw, remote_raw = span.get("localEndpoint"), span.get("remoteEndpoint")
    local: dict[str, Any] = local_raw if isinstance(local_raw, dict) else {}
    remote: dict[str, Any] = remote_raw if isinstance(remote_raw, dict) else {}
    if isinstance(remote.get("serviceName"), str) and "peer.service" not in tags:
        attrs.append(("peer.service", remote["serviceName"]))  # the DB / downstream for attribution
    # Zipkin: the presence of "error" is the flag, whatever its value (often the message, sometimes "").
    status = "error" if "error" in tags else status_from_tags(None, tags.get("otel.status_code"))
    if status == "error" and isinstance(tags.get("error"), str) and tags["error"] not in ("", "true"):
        attrs.append(("error.message", tags["error"]))
    kind = span.get("kind")
    timestamp_us = to_int(span.get("timestamp")) or None
    duration_us = to_int(span.get("duration"))
    rows.add_span(
        trace_id=span.get("traceId"), span_id=span.get("id"), parent_span_id=span.get("parentId"),
        service=local.get("serviceName"), operation=span.get("name"),
        kind=kind.strip().lower() if isinstance(kind, str) else "unspecified",
        start_us=timestamp_us, duration_ms=duration_us / 1000 if duration_us is not None else None,  # µs -> ms
        status=status, resource=None, attrs=attrs,
    )
