"""Shared machinery of the span converters: decode the payload, accumulate rows column-wise, finish a SPANS frame.

A converter walks its wire format once and calls :meth:`SpanRows.add_span` per span; everything
after that (id normalisation, attribute flattening and capping, ``http_status``, dedupe, the
Zipkin shared-id fix, ``is_root``) runs as polars expressions in ``connectors.traces.finish.finish``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from connectors.errors import PayloadError
from model.schemas import SPANS

MAX_ATTRS_PER_SPAN = 128  # per span and per resource; the rest are dropped with a notice
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 4096
MAX_ATTR_COLUMNS = 512  # distinct attribute keys per frame; the most frequent are kept
MAX_NESTING = 8  # arrays/maps inside attribute values deeper than this are cut
UNKNOWN_SERVICE = "unknown_service"  # what OTel SDKs report when service.name is missing
INT64_MAX = 2**63 - 1

# Keys that became fixed columns: repeating them as attr.* columns would offer the outcome itself as a cohort.
CONSUMED_KEYS = ("span.kind", "error", "otel.status_code", "http.status_code", "http.response.status_code", "service.name")
HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")  # newer semantic convention first
KINDS = ("server", "client", "producer", "consumer", "internal", "unspecified")
STATUSES = ("ok", "error", "unset")


@dataclass(frozen=True)
class Converted:
    """A converter's output: the SPANS frame plus data-quality notices for ``Result.notices``."""

    frame: pl.DataFrame
    notices: tuple[str, ...] = ()


def load_json(payload: object, fmt: str) -> Any:
    """``str | bytes | dict | list`` -> parsed JSON; several concatenated documents (JSON lines) become a list."""
    if isinstance(payload, (dict, list)):
        return payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            text = bytes(payload).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"{fmt} payload is not UTF-8 text (bad byte at offset {exc.start})") from exc
    elif isinstance(payload, str):
        text = payload.lstrip("\ufeff")
    else:
        raise PayloadError(f"{fmt} payload must be str, bytes, dict or list, not {type(payload).__name__}")
    if not text.strip():
        raise PayloadError(f"{fmt} payload is empty")
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise PayloadError(f"{fmt} payload is nested too deeply to be a trace") from exc
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise PayloadError(f"{fmt} payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise PayloadError(f"{fmt} payload has an unreadable value: {short(str(exc), 80)}") from exc
    return _json_documents(text, fmt)


def _json_documents(text: str, fmt: str) -> list[Any]:
    """JSON lines / concatenated documents (the collector file exporter writes one object per line)."""
    decoder, pos, end = json.JSONDecoder(), 0, len(text)
    docs: list[Any] = []
    while pos < end:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            break
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            line = text.count("\n", 0, pos) + 1
            raise PayloadError(f"{fmt} payload: document {len(docs) + 1} (line {line}) is not valid JSON") from exc
        docs.append(doc)
    return docs


def to_int(value: object) -> int | None:
    """A non-negative int64 from an int, an integral float or a decimal string; None otherwise."""
    if type(value) is str and value.isdigit() and len(value) <= 18:  # the common case: ns/µs as a decimal string
        return int(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 19:
        number = int(value.strip())
    else:
        return None
    return number if 0 <= number <= INT64_MAX else None


def short(value: object, limit: int = 40) -> str:
    """A repr safe to put in an error message (hostile strings are only data)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_list(value: object, where: str, fmt: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{fmt} payload: {where} must be a list, got {type(value).__name__}")
    return value


def as_dict(value: object, where: str, fmt: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{fmt} payload: {where} must be an object, got {type(value).__name__}")
    return value


def scalar_text(value: object) -> str | None:
    """A tag value as text: bools lower-case like JSON, containers as compact JSON (cut at MAX_NESTING)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(plain(value), ensure_ascii=False)


def plain(value: object, depth: int = 0) -> object:
    """A JSON-safe copy of ``value``, containers cut below MAX_NESTING levels."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if depth >= MAX_NESTING:
        return "…"
    if isinstance(value, list):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    return str(value)


def status_from_tags(error: object, otel_code: object) -> str:
    """Span status from an ``error`` tag (true or "true") and an ``otel.status_code`` tag."""
    if error is True or (isinstance(error, str) and error.strip().lower() == "true"):
        return "error"
    code = otel_code.strip().upper() if isinstance(otel_code, str) else ""
    return {"ERROR": "error", "OK": "ok"}.get(code, "unset")


class SpanRows:
    """Column-wise accumulator for one conversion (or one batch of a streamed one); see ``finish``."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.cols: dict[str, list[Any]] = {k: [] for k in (
            "trace_id", "span_id", "parent_span_id", "service", "operation", "kind", "start_us", "duration_ms",
            "status", "_res")}
        self.attr_row: list[int] = []
        self.attr_key: list[str] = []
        self.attr_val: list[str | None] = []
        self.res_idx: list[int] = []
        self.res_key: list[str] = []
        self.res_val: list[str | None] = []
        self.counts: Counter[str] = Counter()
        self.notices: list[str] = []
        self._n_res = 0

    @property
    def n_resources(self) -> int:
        return self._n_res

    def add_resource(self, attrs: Iterable[tuple[str, str | None]]) -> int:
        """Register resource (process) attributes shared by many spans; returns its index."""
        index = self._n_res
        self._n_res += 1
        self._add_attrs(attrs, index, self.res_idx, self.res_key, self.res_val)
        return index

    def add_span(
        self, *, trace_id: object, span_id: object, parent_span_id: object, service: object, operation: object,
        kind: str, start_us: int | None, duration_ms: float | None, status: str, resource: int | None,
        attrs: Iterable[tuple[str, str | None]],
    ) -> None:
        row = len(self.cols["span_id"])
        c = self.cols
        c["trace_id"].append(trace_id if isinstance(trace_id, str) else None)
        c["span_id"].append(span_id if isinstance(span_id, str) else None)
        c["parent_span_id"].append(parent_span_id if isinstance(parent_span_id, str) else None)
        c["service"].append(service if isinstance(service, str) and service else UNKNOWN_SERVICE)
        c["operation"].append(operation if isinstance(operation, str) else None)
        if kind not in KINDS:
            self.counts["spans with an unknown kind (set to unspecified)"] += 1
            kind = "unspecified"
        c["kind"].append(kind)
        if start_us is None:
            self.counts["spans without a start time"] += 1
        if duration_ms is not None and duration_ms < 0:
            self.counts["spans ending before they start (duration left empty)"] += 1
            duration_ms = None
        if status not in STATUSES:
            self.counts["spans with an unknown status (set to unset)"] += 1
            status = "unset"
        c["start_us"].append(start_us)
        c["duration_ms"].append(duration_ms)
        c["status"].append(status)
        c["_res"].append(resource)
        self._add_attrs(attrs, row, self.attr_row, self.attr_key, self.attr_val)

    def _add_attrs(self, attrs: Iterable[tuple[str, str | None]], index: int, rows: list[int], keys: list[str],
                   vals: list[str | None]) -> None:
        # Key checks, the per-span cap and null values are applied once, in ``finish``, for every converter.
        n = len(keys)
        for key, value in attrs:
            keys.append(key)
            vals.append(value)
        rows.extend([index] * (len(keys) - n))


def hash_id(raw: str, hex_len: int) -> str:
    """A stable hex id for a raw id that is neither hex nor base64."""
    return hashlib.blake2b(raw.encode("utf-8", "replace"), digest_size=hex_len // 2).hexdigest()


def empty_converted(notices: Iterable[str] = ()) -> Converted:
    return Converted(pl.DataFrame(schema=SPANS), tuple(notices))
