"""OTLP/JSON ``TracesData`` -> SPANS frame.

Accepts every OTLP-shaped body we meet: spec OTLP/JSON (hex ids, int enums), Jaeger api_v3
(``{"result": TracesData}``), Tempo ``/api/traces`` (``batches``) and ``/api/v2/traces``
(``{"trace": ...}``; base64 ids, enum names), Tempo < 2.0 ``instrumentationLibrarySpans``, and the
collector file exporter's JSON lines (one TracesData per line).

Big files go through :func:`convert_otlp_lines`: line-aligned blocks of bytes, each line decoded by msgspec
into typed structs (only the fields we read), spans accumulated one batch at a time and turned into compact
polars parts (``finish.to_part``), so memory stays a small multiple of the file. A line the typed decoder
cannot take (another wrapper, a wrong type somewhere) is converted by the general path above, exactly as
before; a line that is not JSON or not OTLP is skipped and counted in one notice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import msgspec
import polars as pl

from connectors.errors import PayloadError
from connectors.traces.finish import Part, finish, finish_parts, to_part
from connectors.traces.frame import (
    MAX_NESTING,
    Converted,
    SpanRows,
    as_dict,
    as_list,
    load_json,
    plain,
    scalar_text,
    short,
    to_int,
)

FMT = "otlp"
KIND_BY_INT = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS_BY_INT = {0: "unset", 1: "ok", 2: "error"}
_IGNORED_KEYS = {"metrics", "status", "message", "partialSuccess", "schemaUrl"}
BATCH_SPANS = 10_000  # spans held as Python objects at once while streaming (~25 MB)
UNSET = msgspec.UNSET


def spans_from_otlp(payload: str | bytes | dict[str, Any]) -> pl.DataFrame:
    """OTLP/JSON (any of the variants above) -> SPANS frame. Malformed input raises PayloadError."""
    return convert_otlp(payload).frame


def convert_otlp(payload: object) -> Converted:
    """Like :func:`spans_from_otlp`, with the data-quality notices."""
    rows = SpanRows(FMT)
    doc = load_json(payload, FMT)
    try:
        for where, resource_spans in _resource_span_lists(doc, "", rows):
            for i, rs in enumerate(resource_spans):
                _add_resource_spans(rows, as_dict(rs, f"{where}[{i}]", FMT), f"{where}[{i}]")
    except RecursionError as exc:
        raise PayloadError(f"{FMT} payload is nested too deeply") from exc
    return finish(rows)


def _resource_span_lists(doc: object, where: str, rows: SpanRows, depth: int = 0):  # type: ignore[no-untyped-def]
    """Yield ``(path, list of ResourceSpans)`` for every TracesData inside the wrappers."""
    if depth > 4:
        raise PayloadError(f"{FMT} payload: wrappers nested too deeply at {where or 'top level'}")
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from _resource_span_lists(item, f"{where}[{i}]", rows, depth + 1)
        return
    if not isinstance(doc, dict):
        raise PayloadError(f"{FMT} payload: expected an object at {where or 'top level'}, got {type(doc).__name__}")
    for key in ("resourceSpans", "batches"):  # Tempo's v1 API renames resourceSpans to batches
        if key in doc:
            yield f"{where}.{key}", as_list(doc[key], f"{where}.{key}", FMT)
            return
    if "result" in doc:  # Jaeger api_v3
        yield from _resource_span_lists(doc["result"], f"{where}.result", rows, depth + 1)
    elif "trace" in doc:  # Tempo /api/v2/traces
        if doc.get("status") == "PARTIAL":
            rows.notices.append(f"{FMT}: the backend returned a PARTIAL trace: {short(doc.get('message', ''), 120)}")
        yield from _resource_span_lists(doc["trace"], f"{where}.trace", rows, depth + 1)
    elif "error" in doc:
        error = doc["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise PayloadError(f"{FMT} payload is an error response: {short(message, 200)}")
    elif set(doc) - _IGNORED_KEYS:
        keys = ", ".join(short(k, 30) for k in list(doc)[:5])
        raise PayloadError(f"not OTLP/JSON TracesData: expected 'resourceSpans' at {where or 'top level'}, found keys {keys}")


def _add_resource_spans(rows: SpanRows, rs: dict[str, Any], where: str) -> None:
    resource = as_dict(rs.get("resource"), f"{where}.resource", FMT)
    res_attrs = attributes(resource.get("attributes"), rows)
    service = next((v for k, v in res_attrs if k == "service.name"), None)
    res_index = rows.add_resource(res_attrs)
    scope_key = "scopeSpans" if "scopeSpans" in rs else "instrumentationLibrarySpans"  # Tempo < 2.0
    for j, scope_spans in enumerate(as_list(rs.get(scope_key), f"{where}.{scope_key}", FMT)):
        scope_where = f"{where}.{scope_key}[{j}]"
        spans = as_list(as_dict(scope_spans, scope_where, FMT).get("spans"), f"{scope_where}.spans", FMT)
        for k, span in enumerate(spans):
            if not isinstance(span, dict):
                raise PayloadError(f"{FMT} payload: {scope_where}.spans[{k}] must be an object")
            _add_span(rows, span, service, res_index)


def _add_span(rows: SpanRows, span: dict[str, Any], service: str | None, res_index: int) -> None:
    start_ns = to_int(span.get("startTimeUnixNano")) or None  # 0 means "not set"
    end_ns = to_int(span.get("endTimeUnixNano")) or None
    duration_ms = (end_ns - start_ns) / 1e6 if start_ns and end_ns else None  # ns -> ms
    status = span.get("status")
    status = status if isinstance(status, dict) else {}
    attrs = attributes(span.get("attributes"), rows)
    message = status.get("message")
    if isinstance(message, str) and message:
        attrs.append(("otel.status_description", message))
    rows.add_span(
        trace_id=span.get("traceId"), span_id=span.get("spanId"), parent_span_id=span.get("parentSpanId"),
        service=service, operation=span.get("name"), kind=_enum(span.get("kind"), "SPAN_KIND_", KIND_BY_INT),
        start_us=start_ns // 1000 if start_ns else None, duration_ms=duration_ms,  # ns -> µs
        status=_enum(status.get("code"), "STATUS_CODE_", STATUS_BY_INT), resource=res_index, attrs=attrs,
    )


def _enum(value: object, prefix: str, by_int: dict[int, str]) -> str:
    """Spec OTLP/JSON sends ints; Tempo sends names (``SPAN_KIND_SERVER``); absent means the zero value."""
    if value is None:
        return by_int[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return by_int.get(value, "?")
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return by_int.get(int(text), "?")
        return text.upper().removeprefix(prefix).lower() or by_int[0]
    return "?"


def attributes(raw: object, rows: SpanRows) -> list[tuple[str, str | None]]:
    """OTLP ``[KeyValue]`` -> ``[(key, text)]``; malformed entries are skipped and counted."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        rows.counts["malformed attribute lists skipped"] += 1
        return []
    out: list[tuple[str, str | None]] = []
    for item in raw:
        key = item.get("key") if type(item) is dict else None
        if type(key) is not str:
            rows.counts["malformed attributes skipped"] += 1
            continue
        value = item.get("value")
        text = value.get("stringValue") if type(value) is dict else None  # the common case, kept fast
        out.append((key, text if type(text) is str else any_value(value)))
    return out


def any_value(value: object) -> str | None:
    """OTLP ``AnyValue`` -> text (arrays and maps as compact JSON)."""
    unwrapped = _unwrap(value, 0)
    if isinstance(unwrapped, (list, dict)):
        return json.dumps(unwrapped, ensure_ascii=False)
    return scalar_text(unwrapped)


def _unwrap(value: object, depth: int) -> object:
    """``{"stringValue": "a"}`` -> ``"a"``, recursively through arrayValue/kvlistValue (cut at MAX_NESTING)."""
    if not isinstance(value, dict):
        return plain(value, depth)
    if depth >= MAX_NESTING:
        return "…"
    for key in ("stringValue", "boolValue", "intValue", "doubleValue", "bytesValue"):
        if key in value:
            return plain(value[key], depth)
    if "arrayValue" in value:
        items = value["arrayValue"].get("values") if isinstance(value["arrayValue"], dict) else None
        return [_unwrap(v, depth + 1) for v in items or [] if v is not None] if isinstance(items or [], list) else None
    if "kvlistValue" in value:
        items = value["kvlistValue"].get("values") if isinstance(value["kvlistValue"], dict) else None
        if not isinstance(items or [], list):
            return None
        return {str(kv.get("key")): _unwrap(kv.get("value"), depth + 1) for kv in items or [] if isinstance(kv, dict)}
    return None


# --- the streamed path: typed structs for the fields we read; anything else is left to the general path ---

class _AnyValue(msgspec.Struct):
    stringValue: Any = UNSET
    boolValue: Any = UNSET
    intValue: Any = UNSET
    doubleValue: Any = UNSET
    bytesValue: Any = UNSET
    arrayValue: Any = UNSET
    kvlistValue: Any = UNSET


class _KeyValue(msgspec.Struct):
    key: str
    value: _AnyValue | None = None


class _Span(msgspec.Struct):
    traceId: Any = None
    spanId: Any = None
    parentSpanId: Any = None
    name: Any = None
    kind: Any = None
    startTimeUnixNano: Any = None
    endTimeUnixNano: Any = None
    attributes: list[_KeyValue] | None = None
    status: Any = None


class _Resource(msgspec.Struct):
    attributes: list[_KeyValue] | None = None


class _ScopeSpans(msgspec.Struct):
    spans: list[_Span] | None = None


class _ResourceSpans(msgspec.Struct):
    resource: _Resource | None = None
    scopeSpans: list[_ScopeSpans] | None | msgspec.UnsetType = UNSET


class _TracesData(msgspec.Struct):
    resourceSpans: list[_ResourceSpans] | msgspec.UnsetType = UNSET


_DECODER = msgspec.json.Decoder(_TracesData)
_VALUE_FIELDS = _AnyValue.__struct_fields__


class _General(Exception):
    """This document needs the general (dict-walking) path."""


def convert_otlp_lines(blocks: Iterable[bytes]) -> Converted:
    """OTLP/JSON lines (the collector file exporter), given as blocks that end at a line break -> SPANS frame.

    Malformed lines are skipped and counted in one notice; when no line is usable, PayloadError.
    """
    stream = _Stream()
    for block in blocks:
        for line in block.split(b"\n"):
            stream.line(line)
    return stream.finish()


def convert_otlp_document(data: bytes) -> Converted | None:
    """One TracesData document (bytes) through the typed decoder; None when it is not that plain shape."""
    stream = _Stream()
    try:
        stream.typed(_DECODER.decode(data.removeprefix(b"\xef\xbb\xbf")))
    except (msgspec.DecodeError, _General, RecursionError):  # the general path converts it or says why not
        return None
    stream.good = 1
    return stream.finish()


class _Stream:
    """The state of one streamed conversion: the current batch, the finished parts, resources seen, bad lines."""

    def __init__(self) -> None:
        self.rows = SpanRows(FMT)
        self.parts: list[Part] = []
        self.notices: list[str] = []
        self.counts: Counter[str] = Counter()
        self.n_rows = 0
        self.n_res = 0
        self.resources: dict[tuple[tuple[str, str | None], ...], tuple[int, str | None]] = {}
        self.line_no = 0
        self.good = 0
        self.bad = 0
        self.first_bad: tuple[int, str] | None = None

    def line(self, raw: bytes) -> None:
        self.line_no += 1
        if self.line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte order mark
        if not raw.strip():
            return
        try:
            try:
                self.typed(_DECODER.decode(raw))
            except (msgspec.DecodeError, _General):  # another shape, several documents on a line, or broken JSON
                self.general(raw)
        except (msgspec.DecodeError, PayloadError, RecursionError, ValueError) as exc:
            self.bad += 1
            if self.first_bad is None:
                self.first_bad = (self.line_no, exc.message if isinstance(exc, PayloadError) else "not valid JSON")
            return
        self.good += 1
        if len(self.rows.cols["span_id"]) >= BATCH_SPANS:
            self.flush()

    def general(self, raw: bytes) -> None:
        """The dict-walking path for one document, into a scratch accumulator merged only when it all converts."""
        scratch = SpanRows(FMT)
        doc = load_json(raw, FMT)
        for where, resource_spans in _resource_span_lists(doc, "", scratch):
            for i, rs in enumerate(resource_spans):
                _add_resource_spans(scratch, as_dict(rs, f"{where}[{i}]", FMT), f"{where}[{i}]")
        self.flush()
        self.rows = scratch
        self.flush()

    def typed(self, doc: _TracesData) -> None:
        if doc.resourceSpans is UNSET:
            raise _General
        rows = self.rows
        for rs in doc.resourceSpans:
            if rs.scopeSpans is UNSET:
                raise _General  # instrumentationLibrarySpans, or no spans at all: the general path decides
        for rs in doc.resourceSpans:
            res_attrs = _typed_attrs(rs.resource.attributes if rs.resource is not None else None)
            res_index, service = self._resource(res_attrs)
            for scope in rs.scopeSpans or ():  # type-narrowed above: UNSET was refused
                for span in scope.spans or ():
                    _add_typed_span(rows, span, service, res_index)

    def _resource(self, attrs: list[tuple[str, str | None]]) -> tuple[int, str | None]:
        """A resource index relative to the current batch (identical resources across lines are stored once)."""
        key = tuple(attrs)
        hit = self.resources.get(key)
        if hit is None:
            service = next((v for k, v in attrs if k == "service.name"), None)
            hit = (self.n_res + self.rows.add_resource(attrs), service)
            self.resources[key] = hit
        return hit[0] - self.n_res, hit[1]

    def flush(self) -> None:
        rows = self.rows
        if rows.cols["span_id"] or rows.n_resources:
            self.parts.append(to_part(rows, self.n_rows, self.n_res))
            self.n_rows += len(rows.cols["span_id"])
            self.n_res += rows.n_resources
        self.notices += rows.notices
        self.counts.update(rows.counts)
        self.rows = SpanRows(FMT)

    def finish(self) -> Converted:
        if self.good == 0:
            if self.first_bad is None:
                raise PayloadError(f"{FMT} payload is empty")
            line, why = self.first_bad
            raise PayloadError(f"{FMT} payload: no usable line ({self.bad} malformed; line {line}: {why})")
        self.flush()
        if self.bad and self.first_bad is not None:
            line, why = self.first_bad
            self.notices.append(f"{FMT}: skipped {self.bad} malformed lines of {self.bad + self.good} "
                                f"(not JSON or not OTLP; the first at line {line}: {short(why, 120)})")
        return finish_parts(FMT, self.parts, self.notices, self.counts)


def _typed_attrs(raw: list[_KeyValue] | None) -> list[tuple[str, str | None]]:
    if not raw:
        return []
    out = []
    for kv in raw:
        value = kv.value
        text = value.stringValue if value is not None else None
        out.append((kv.key, text if type(text) is str else _value_text(value)))
    return out


def _value_text(value: _AnyValue | None) -> str | None:
    if value is None:
        return None
    return any_value({f: getattr(value, f) for f in _VALUE_FIELDS if getattr(value, f) is not UNSET})


def _add_typed_span(rows: SpanRows, span: _Span, service: str | None, res_index: int) -> None:
    """:func:`_add_span` for a typed span (same rules, read from struct fields)."""
    start_ns = to_int(span.startTimeUnixNano) or None  # 0 means "not set"
    end_ns = to_int(span.endTimeUnixNano) or None
    duration_ms = (end_ns - start_ns) / 1e6 if start_ns and end_ns else None  # ns -> ms
    status = span.status if type(span.status) is dict else {}
    attrs = _typed_attrs(span.attributes)
    message = status.get("message")
    if isinstance(message, str) and message:
        attrs.append(("otel.status_description", message))
    kind = span.kind
    rows.add_span(
        trace_id=span.traceId, span_id=span.spanId, parent_span_id=span.parentSpanId,
        service=service, operation=span.name,
        kind=KIND_BY_INT.get(kind, "?") if type(kind) is int else _enum(kind, "SPAN_KIND_", KIND_BY_INT),
        start_us=start_ns // 1000 if start_ns else None, duration_ms=duration_ms,  # ns -> µs
        status=_enum(status.get("code"), "STATUS_CODE_", STATUS_BY_INT), resource=res_index, attrs=attrs,
    )
