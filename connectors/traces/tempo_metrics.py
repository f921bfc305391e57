"""Tempo's TraceQL metrics (``/api/metrics/query_range``): the window's exact request count where the data is.

A window query to Tempo samples traces evenly (``search_http.sample_window``); with TraceQL metrics the
number of requests in the window need not be estimated from the sample: ``count_over_time()`` over the
root spans (``nestedSetParent = -1``) counts them all, and only the exemplar traces are fetched.

Request parameters (``q``, ``start``/``end`` in unix seconds, ``step`` a duration) follow Tempo's API
docs, "TraceQL Metrics" (grafana/tempo ``docs/sources/tempo/api_docs/_index.md``). The answer is the
JSON form of ``QueryRangeResponse`` (grafana/tempo ``pkg/tempopb/tempo.proto``)::

    {"series": [{"labels": [...], "samples": [{"timestampMs": "1700000000000", "value": 42}]}]}

``timestampMs`` is an int64, which protobuf's JSON mapping writes as a string; both forms are accepted.
A Tempo without the feature answers 404 (no route) or 400 ("... not enabled ..."): remembered as
unavailable. Any other failure is a notice, and the window's total stays the sampled estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from config import SourceConfig
from connectors.errors import ConfigError, PayloadError, SourceRejected
from connectors.traces.frame import short
from connectors.traces.query import epoch_us

__all__ = ["MetricsMode", "RootCount", "metrics_mode", "metrics_params", "not_enabled", "root_count", "ROOTS_QUERY"]

MetricsMode = Literal["auto", "on", "off"]
PATH = "/api/metrics/query_range"
ROOTS_QUERY = "{ nestedSetParent = -1 } | count_over_time()"  # root spans: one per request
MAX_STEPS = 120  # buckets per window: a coarse step keeps the query cheap, the sum is exact at any step


@dataclass(frozen=True)
class RootCount:
    """The window's root spans counted by Tempo: ``total`` over ``steps`` buckets of ``step_s`` seconds."""

    total: int
    steps: int
    step_s: int
    executed: str


def metrics_mode(source: SourceConfig) -> MetricsMode:
    """``options.traceql_metrics``: ``auto`` (default: probe once), ``on`` (no probe) or ``off`` (never)."""
    value = source.options.get("traceql_metrics", "auto")
    if value is True:
        return "on"
    if value is False:
        return "off"
    if value not in ("auto", "on", "off"):
        raise ConfigError(f"source {source.name!r}: options.traceql_metrics must be auto, on or off",
                          source=source.name, hint="sources.yaml")
    mode: MetricsMode = value
    return mode


def metrics_params(query: str, start: datetime, end: datetime) -> dict[str, str | int]:
    """``q``/``start``/``end``/``step`` covering ``[start, end)`` in whole seconds with at most ``MAX_STEPS`` steps."""
    start_s = epoch_us(start) // 1_000_000
    end_s = max(start_s + 1, math.ceil(epoch_us(end) / 1_000_000))
    step_s = max(1, math.ceil((end_s - start_s) / MAX_STEPS))
    return {"q": query, "start": start_s, "end": end_s, "step": f"{step_s}s"}


def not_enabled(exc: SourceRejected) -> bool:
    """A 404, or a 400 saying the feature is off: this Tempo has no TraceQL metrics (not a passing fault)."""
    if exc.not_found:
        return True
    text = exc.message.lower()
    return exc.status_code == 400 and any(word in text for word in ("not enabled", "disabled", "not supported",
                                                                    "unsupported", "local-blocks"))


def root_count(body: Any, params: Mapping[str, str | int], source: str) -> RootCount:
    """The sum of every sample of every series in a ``QueryRangeResponse`` (see the module docstring)."""
    if not isinstance(body, dict):
        raise PayloadError(f"{PATH} did not return an object", source=source)
    series = body.get("series", [])  # omitted when nothing matched
    if not isinstance(series, list):
        raise PayloadError(f"{PATH} 'series' is not a list", source=source)
    total = 0.0
    for one in series:
        samples = one.get("samples") or [] if isinstance(one, dict) else None
        if not isinstance(samples, list):
            raise PayloadError(f"{PATH} returned a series without samples: {short(one)}", source=source)
        for sample in samples:
            value = sample.get("value") if isinstance(sample, dict) else None
            number = _number(value)
            if not math.isfinite(number) or number < 0:
                raise PayloadError(f"{PATH} returned a sample that is not a count: {short(sample)}", source=source)
            total += number
    start_s, end_s = int(params["start"]), int(params["end"])
    step_s = int(str(params["step"]).rstrip("s"))
    executed = f"GET {PATH} q={params['q']} start={start_s} end={end_s} step={params['step']}"
    return RootCount(round(total), math.ceil((end_s - start_s) / step_s), step_s, executed)


def _number(value: object) -> float:
    """A sample's value (a JSON number, or a string such as "NaN" from protobuf's JSON mapping); NaN if neither."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return math.nan
    try:
        return float(value)
    except ValueError:
        return math.nan
