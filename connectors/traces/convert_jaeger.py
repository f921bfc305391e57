"""Jaeger v1 UI-model JSON -> SPANS frame.

Accepts the ``/api/traces`` envelope (``{"data": [Trace], "errors": ...}``), a bare Trace
(``{traceID, spans, processes}``), a list of traces, and a list of spans carrying an inline
``process`` (the anonymizer's output). Times are µs. The parent is the first ``CHILD_OF``
reference within the same trace (then ``FOLLOWS_FROM``, then the deprecated ``parentSpanID``),
as Jaeger's ``Span.ParentSpanID``. Errors: tag ``error`` true or ``"true"``, or ``otel.status_code``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from connectors.errors import PayloadError
from connectors.traces.finish import finish
from connectors.traces.frame import (
    Converted,
    SpanRows,
    as_dict,
    as_list,
    load_json,
    scalar_text,
    short,
    status_from_tags,
    to_int,
)

FMT = "jaeger"
MAX_WARNINGS = 5


def spans_from_jaeger(payload: str | bytes | dict[str, Any]) -> pl.DataFrame:
    """Jaeger v1 JSON (envelope, trace, list of traces or of spans) -> SPANS frame; malformed -> PayloadError."""
    return convert_jaeger(payload).frame


def convert_jaeger(payload: object) -> Converted:
    """Like :func:`spans_from_jaeger`, with the data-quality notices (including Jaeger's own warnings)."""
    rows = SpanRows(FMT)
    warnings: dict[str, None] = {}
    _walk(load_json(payload, FMT), "", rows, warnings, 0)
    rows.notices.extend(f"{FMT}: backend warning: {short(w, 200)}" for w in list(warnings)[:MAX_WARNINGS])
    return finish(rows)


def _walk(doc: object, where: str, rows: SpanRows, warnings: dict[str, None], depth: int) -> None:
    at = where or "top level"
    if depth > 4:
        raise PayloadError(f"{FMT} payload: wrappers nested too deeply at {at}")
    if isinstance(doc, list):
        loose: list[dict[str, Any]] = []
        for i, item in enumerate(doc):
            if isinstance(item, dict) and "spans" not in item and "data" not in item and "spanID" in item:
                loose.append(item)  # a list of spans with inline processes
            else:
                _walk(item, f"{where}[{i}]", rows, warnings, depth + 1)
        if loose:
            _add_trace(rows, {"spans": loose}, where, warnings)
        return
    if not isinstance(doc, dict):
        raise PayloadError(f"{FMT} payload: expected an object or a list at {at}, got {type(doc).__name__}")
    if "data" in doc:
        errors = [e for e in as_list(doc.get("errors"), f"{where}.errors", FMT) if e]
        messages = [str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in errors]
        if doc["data"] is None:
            if messages:
                raise PayloadError(f"{FMT} answered with errors: {short('; '.join(messages), 200)}")
            return
        for message in messages:
            warnings.setdefault(f"error from the query service: {message}")
        _walk(doc["data"], f"{where}.data", rows, warnings, depth + 1)
    elif "spans" in doc:
        _add_trace(rows, doc, where, warnings)
    elif "spanID" in doc:
        _add_trace(rows, {"spans": [doc]}, where, warnings)
    else:
        keys = ", ".join(short(k, 30) for k in list(doc)[:5])
        raise PayloadError(f"not Jaeger JSON: expected 'data', 'spans' or 'spanID' at {at}, found keys {keys}")


def _add_trace(rows: SpanRows, trace: dict[str, Any], where: str, warnings: dict[str, None]) -> None:
    processes = as_dict(trace.get("processes"), f"{where}.processes", FMT)
    resources: dict[int, tuple[int, object]] = {}  # id(process dict) -> (resource index, serviceName)
    for w in _warnings(trace.get("warnings")):
        warnings.setdefault(w)
    for i, span in enumerate(as_list(trace.get("spans"), f"{where}.spans", FMT)):
        if not isinstance(span, dict):
            raise PayloadError(f"{FMT} payload: {where}.spans[{i}] must be an object")
        for w in _warnings(span.get("warnings")):
            warnings.setdefault(w)
        process = span.get("process")
        if not isinstance(process, dict):
            pid = span.get("processID")
            process = processes.get(pid) if isinstance(pid, str) else None
        resource, service = None, None
        if isinstance(process, dict):
            if id(process) not in resources:
                resources[id(process)] = (rows.add_resource(_tags(process.get("tags"), rows)[0]),
                                          process.get("serviceName"))
            resource, service = resources[id(process)]
        else:
            rows.counts["spans whose process is missing"] += 1
        attrs, raw = _tags(span.get("tags"), rows)
        start_us = to_int(span.get("startTime")) or None  # µs since the epoch
        duration_us = to_int(span.get("duration"))
        rows.add_span(
            trace_id=span.get("traceID"), span_id=span.get("spanID"), parent_span_id=_parent(span),
            service=service, operation=span.get("operationName"),
            kind=str(raw.get("span.kind") or "unspecified").strip().lower(),
            start_us=start_us, duration_ms=duration_us / 1000 if duration_us is not None else None,  # µs -> ms
            status=status_from_tags(raw.get("error"), raw.get("otel.status_code")), resource=resource, attrs=attrs,
        )


def _tags(raw: object, rows: SpanRows) -> tuple[list[tuple[str, str | None]], dict[str, object]]:
    """Jaeger ``[KeyValue]`` -> ``[(key, text)]`` plus the raw values of the keys that set fixed columns."""
    if not isinstance(raw, list):
        if raw is not None:
            rows.counts["malformed tag lists skipped"] += 1
        return [], {}
    out: list[tuple[str, str | None]] = []
    special: dict[str, object] = {}
    for tag in raw:
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
            rows.counts["malformed tags skipped"] += 1
            continue
        key, value = tag["key"], tag.get("value")
        if key in ("error", "span.kind", "otel.status_code"):
            special.setdefault(key, value)
        out.append((key, scalar_text(value)))
    return out, special


def _parent(span: dict[str, Any]) -> object:
    trace = span.get("traceID")
    refs = span.get("references")
    if isinstance(refs, list):
        for wanted in ("CHILD_OF", "FOLLOWS_FROM"):
            for ref in refs:
                # refType is omitted when it is the proto zero value, CHILD_OF
                if isinstance(ref, dict) and ref.get("refType", "CHILD_OF") == wanted and _same_trace(ref, trace):
                    return ref.get("spanID")
    parent = span.get("parentSpanID")
    return parent if isinstance(parent, str) and parent else None


def _same_trace(ref: dict[str, Any], trace: object) -> bool:
    other = ref.get("traceID")
    if not isinstance(other, str) or not isinstance(trace, str):
        return True
    return other.lstrip("0").lower() == trace.lstrip("0").lower()  # 16- and 32-char forms of one id


def _warnings(raw: object) -> list[str]:
    return [w for w in raw if isinstance(w, str)] if isinstance(raw, list) else []
