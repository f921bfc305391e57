"""Prometheus samples as one long polars frame, from the HTTP API or from exposition text.

The frame has three fixed columns — ``__name__`` (metric name, null after PromQL functions),
``__ts`` (``Datetime("us", "UTC")``) and ``__value`` (Float64; NaN/±Inf kept as floats) — plus one
``String`` column per label seen in any series (null where a series lacks it). Both the
``query_range`` JSON and the text exposition format land in this shape, so one YAML mapping
(``connectors.metrics.prometheus_mapping``) turns either into breakers/pools/events frames.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any

import polars as pl

from connectors.errors import PayloadError, payload_boundary

NAME, TS, VALUE = "__name__", "__ts", "__value"
TS_TYPE = pl.Datetime("us", "UTC")

_SPECIAL = {"NaN": math.nan, "+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf}
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+(-?\d+(?:\.\d+)?))?\s*(?:#.*)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def empty_samples() -> pl.DataFrame:
    return pl.DataFrame(schema={NAME: pl.String, TS: TS_TYPE, VALUE: pl.Float64})


def parse_value(raw: str) -> float:
    """A Prometheus sample value (a JSON string or exposition token) as a float; NaN/±Inf allowed."""
    if raw in _SPECIAL:
        return _SPECIAL[raw]
    return float(raw)


def _frame(labels: list[dict[str, str]], ts_s: list[list[float]], values: list[list[float]]) -> pl.DataFrame:
    if not labels:
        return empty_samples()
    keys = sorted({k for lab in labels for k in lab} | {NAME})
    columns: dict[str, Any] = {k: [lab.get(k) for lab in labels] for k in keys}
    series = pl.DataFrame(
        {**columns, "__t": ts_s, VALUE: values},
        schema={**{k: pl.String for k in keys}, "__t": pl.List(pl.Float64), VALUE: pl.List(pl.Float64)},
    )
    exploded = series.explode(["__t", VALUE])
    return exploded.with_columns(
        (pl.col("__t") * 1_000_000).round().cast(pl.Int64).cast(TS_TYPE).alias(TS)
    ).drop("__t").select([NAME, TS, VALUE, *[k for k in keys if k != NAME]])


@payload_boundary
def samples_from_api(payload: str | bytes | dict[str, Any]) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """``/api/v1/query`` or ``/api/v1/query_range`` JSON → (samples, notices).

    ``warnings``/``infos`` become notices (real Prometheus keeps ``status: success`` and adds them;
    some test doubles say ``status: warning``). ``status: error`` raises PayloadError.
    """
    doc = _load(payload)
    status = doc.get("status")
    if status == "error":
        raise PayloadError(f"Prometheus error {doc.get('errorType', '')}: {doc.get('error', '')}".strip(),
                           hint="the PromQL in the executed query")
    if status not in ("success", "warning"):
        raise PayloadError(f"not a Prometheus API response (status={status!r})", hint="that the URL points at Prometheus")
    notices = tuple(f"Prometheus warning: {w}" for w in doc.get("warnings") or ()) + tuple(
        f"Prometheus info: {w}" for w in doc.get("infos") or ()
    )
    data = doc.get("data")
    if not isinstance(data, dict) or "result" not in data:
        raise PayloadError("Prometheus response has no data.result")
    kind, result = data.get("resultType"), data.get("result") or []
    labels: list[dict[str, str]] = []
    ts_s: list[list[float]] = []
    values: list[list[float]] = []
    try:
        if kind == "matrix":
            for series in result:
                points = series.get("values") or []
                labels.append(dict(series.get("metric") or {}))
                ts_s.append([float(p[0]) for p in points])
                values.append([parse_value(p[1]) for p in points])
        elif kind == "vector":
            for series in result:
                labels.append(dict(series.get("metric") or {}))
                ts_s.append([float(series["value"][0])])
                values.append([parse_value(series["value"][1])])
        elif kind in ("scalar", "string"):
            return empty_samples(), notices + (f"Prometheus returned a {kind}, not series; ignored",)
        else:
            raise PayloadError(f"unknown Prometheus resultType {kind!r}")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise PayloadError(f"malformed Prometheus {kind} result: {type(exc).__name__}: {exc}") from exc
    return _frame(labels, ts_s, values), notices


@payload_boundary
def samples_from_exposition(text: str | bytes, ts: datetime | None = None) -> pl.DataFrame:
    """Prometheus/OpenMetrics text exposition → samples.

    Every sample gets its own timestamp (ms, as written) or ``ts`` (default: now). Comments,
    blank lines, ``# EOF`` and ``_created`` series are skipped; the Java client's trailing comma
    in label sets is accepted. A line that does not parse raises PayloadError naming its number.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    default_s = (ts or datetime.now(timezone.utc)).timestamp()
    labels: list[dict[str, str]] = []
    ts_s: list[list[float]] = []
    values: list[list[float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise PayloadError(f"exposition line {number} does not parse: {line[:120]!r}")
        name, label_text, value_text, ts_ms = match.groups()
        if name.endswith("_created"):
            continue
        series = {NAME: name, **_labels(label_text or "", number)}
        try:
            value = parse_value(value_text)
        except ValueError as exc:
            raise PayloadError(f"exposition line {number}: bad value {value_text!r}") from exc
        labels.append(series)
        ts_s.append([float(ts_ms) / 1000.0 if ts_ms else default_s])
        values.append([value])
    return _frame(labels, ts_s, values)


def _labels(text: str, number: int) -> dict[str, str]:
    inner = text[1:-1] if text else ""
    found: dict[str, str] = {}
    pos = 0
    while pos < len(inner):
        if not inner[pos:].strip():
            break
        match = _LABEL.match(inner, pos)
        if match is None:
            raise PayloadError(f"exposition line {number}: bad label set {text[:120]!r}")
        found[match.group(1)] = match.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        pos = match.end()
    return found


def _load(payload: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(payload, dict):
        return payload
    if not isinstance(payload, (str, bytes)):
        raise PayloadError(f"Prometheus response is a JSON {type(payload).__name__}, not an object")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"malformed JSON: {exc}", hint="that the URL points at the Prometheus API") from exc
    if not isinstance(doc, dict):
        raise PayloadError("Prometheus response is not a JSON object")
    return doc
