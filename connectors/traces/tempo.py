"""Grafana Tempo: TraceQL search, then the matching traces fetched by id (at most ``max_traces``).

``sources.yaml``::

    - name: tempo
      type: tempo
      options: {url: "http://tempo:3200", tenant: team-a, max_traces: 20, spss: 3}

Units: search ``start``/``end`` are unix **seconds**; search trace ids come hex with leading zeros
stripped; trace bodies carry base64 ids and enum names (the OTLP converter handles both).
``/api/v2/traces/{id}`` is tried first and ``/api/traces/{id}`` (``batches``) on a 404; the first
version that answers is cached.

A window query (``purpose="window"``) searches whole-second time slices (``search_http.sample_window``);
the search answers ids and start times only, so at most ``window_fetch_traces`` (default 1000) of the
found traces are then fetched by id, every k-th in time order, and converted in one pass. The
slice estimate (``connectors.traces.sampling``) assumes a full search answers the slice's newest
traces; a Tempo that answers a full slice with an arbitrary subset makes the total a lower bound.

Where Tempo serves TraceQL metrics (``options.traceql_metrics``: ``auto`` probes once per source, ``on``
skips the probe, ``off`` never asks), an unfiltered window query takes its total from
``{ nestedSetParent = -1 } | count_over_time()`` (``connectors.traces.tempo_metrics``): the sampled traces
are then only exemplars, and ``Coverage.traces_total`` is exact. A filtered query keeps the estimate: a
search matches traces with *a* matching span, which a count of matching roots is not.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

import httpx
import polars as pl

from config import SourceConfig
from connectors.base import Coverage
from connectors.errors import ConfigError, ConnectorError, PayloadError, SourceRejected
from connectors.traces.convert_otlp import convert_otlp
from connectors.traces.frame import Converted, empty_converted, short
from connectors.traces.query import SpanSearch, epoch_us, go_duration, merge, normalize_trace_id
from connectors.traces.sampling import TimeSlice
from connectors.traces.search_http import NOT_FOUND, SliceFound, TraceHttpConnector, int_option
from connectors.traces.tempo_metrics import PATH as METRICS_PATH
from connectors.traces.tempo_metrics import (
    ROOTS_QUERY,
    RootCount,
    metrics_mode,
    metrics_params,
    not_enabled,
    root_count,
)

__all__ = ["TempoConnector", "build", "traceql"]
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.\-/:]+$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
DEFAULT_WINDOW_FETCH = 1000  # by-id GETs per window query, options.fetch_workers at a time, within the deadline


def traceql(search: SpanSearch) -> str:
    """The TraceQL spanset filter for a search: every condition on the same span."""
    conds: list[str] = []
    if search.service:
        conds.append(f"resource.service.name = {_quote(search.service)}")
    if search.operation:
        conds.append(f"name = {_quote(search.operation)}")
    if search.min_duration_ms is not None:
        conds.append(f"duration >= {go_duration(search.min_duration_ms)}")
    if search.max_duration_ms is not None:
        conds.append(f"duration <= {go_duration(search.max_duration_ms)}")
    for key, value in search.tags:
        conds.append(_tag_condition(key, value))
    return "{ " + " && ".join(conds) + " }" if conds else "{}"


def _tag_condition(key: str, value: str) -> str:
    if key == "error":
        return "status = error" if value.lower() == "true" else "status != error"
    if not _SAFE_KEY.match(key):
        raise ConfigError(f"tag key {short(key)} cannot be searched in Tempo (letters, digits and _ . - / : only)")
    if key in ("http.status_code", "http.response.status_code") and value.isdigit():
        return f"span.{key} = {value}"
    if _NUMBER.match(value) or value in ("true", "false"):
        # the attribute may be typed or a string: match either
        return f"(.{key} = {_quote(value)} || .{key} = {value})"
    return f".{key} = {_quote(value)}"


def _quote(value: str) -> str:
    return json.dumps(value)  # a double-quoted literal with \" \\ \n \uXXXX escapes, which TraceQL accepts


class TempoConnector(TraceHttpConnector):
    """Spans from Tempo (multi-tenant via ``options.tenant`` -> ``X-Scope-OrgID``)."""

    type_name = "tempo"
    slice_granularity_us = 1_000_000  # search start/end are whole seconds

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None, *, strict: bool = False) -> None:
        super().__init__(source, client, strict=strict)
        tenant = source.options.get("tenant")
        if tenant:
            self.headers["X-Scope-OrgID"] = str(tenant)
        self.spss = int_option(source, "spss", 3, 1, 1000)
        self.window_fetch = int_option(source, "window_fetch_traces", DEFAULT_WINDOW_FETCH, 1, 100_000)
        self.traceql_metrics = metrics_mode(source)
        self._trace_api: Literal["v1", "v2"] | None = None
        self._metrics_available: bool | None = None  # None: not probed yet (options.traceql_metrics auto)
        self._lock = threading.Lock()

    def probe(self) -> str:
        body = self.get_or_not_found("/api/status/buildinfo")
        if body is NOT_FOUND:  # very old Tempo: fall back to the echo endpoint
            self.get_bytes("/api/echo")
            return "Tempo answers /api/echo"
        if not isinstance(body, dict) or not isinstance(body.get("version"), str):
            raise PayloadError("/api/status/buildinfo did not answer like Tempo", source=self.name, hint="options.url")
        return f"Tempo {body['version']}"

    def search(self, search: SpanSearch, start: datetime, end: datetime) -> tuple[Converted, str]:
        found = self._search_ids(search, start, end)
        ids = found.traces["trace_id"].to_list()
        converted = self.fetch_traces(ids, lambda trace_id: self.trace_by_id(trace_id)[0])
        return converted, f"{found.executed}; {min(len(ids), self.max_traces)} traces fetched by id"

    def sample_window(self, search: SpanSearch, start: datetime, end: datetime) -> tuple[Converted, str, Coverage]:
        """The even sample as for any search backend; its total counted by TraceQL metrics where Tempo has them."""
        converted, executed, coverage = super().sample_window(search, start, end)
        if coverage.complete or traceql(search) != "{}":
            return converted, executed, coverage
        counted, notices = self._count_roots(start, end)
        if counted is not None and counted.total < coverage.traces_read:  # roots missing or not yet ingested
            notices += (f"{self.name}: TraceQL metrics counted {counted.total:,} root spans but "
                        f"{coverage.traces_read:,} traces were read; the window's total is estimated from the sample",)
            counted = None
        if counted is not None:
            coverage = replace(coverage, traces_total=counted.total, total_exact=True)
            executed += f"; {counted.executed}"
        return Converted(converted.frame, converted.notices + notices), executed, coverage

    def _count_roots(self, start: datetime, end: datetime) -> tuple[RootCount | None, tuple[str, ...]]:
        """The window's requests counted by Tempo, or None (metrics off or not enabled; failed: with a notice)."""
        if self.traceql_metrics == "off":
            return None, ()
        try:
            if not self._metrics_served(end):
                return None, ()
            params = metrics_params(ROOTS_QUERY, start, end)
            return root_count(self.get(METRICS_PATH, params), params, self.name), ()
        except SourceRejected as exc:
            if not_enabled(exc) and self.traceql_metrics == "auto":
                self._remember_metrics(False)
                return None, ()
            error: ConnectorError = exc
        except ConnectorError as exc:
            error = exc
        return None, (f"{self.name}: TraceQL metrics did not answer ({error.describe()}); "
                      "the window's total is estimated from the sample",)

    def _metrics_served(self, end: datetime) -> bool:
        """``on``: yes. ``auto``: what one cheap probe said, remembered once it answered (a probe that fails
        otherwise than "not enabled" raises, and is tried again next window)."""
        if self.traceql_metrics == "on":
            return True
        with self._lock:
            known = self._metrics_available
        if known is None:
            self.get(METRICS_PATH, metrics_params(ROOTS_QUERY, end - timedelta(seconds=1), end))  # one 1 s step
            self._remember_metrics(known := True)
        return known

    def _remember_metrics(self, available: bool) -> None:
        with self._lock:
            self._metrics_available = available

    def search_slice(self, search: SpanSearch, time_slice: TimeSlice) -> SliceFound:
        """A slice's search gives ids and start times only; the traces are fetched in :meth:`complete_window`."""
        return self._search_ids(search, time_slice.start, time_slice.end)

    def complete_window(self, found: Sequence[SliceFound]) -> Converted:
        """Fetch up to ``options.window_fetch_traces`` of the found traces by id, spread evenly over their starts."""
        frames = [f.traces for f in found if f.traces.height]
        if not frames:
            return empty_converted()
        traces = pl.concat(frames).unique("trace_id").sort("start", "trace_id", nulls_last=True)
        keep = min(traces.height, self.window_fetch)
        picked = traces[[i * traces.height // keep for i in range(keep)]]  # every k-th in time order
        notices: tuple[str, ...] = ()
        if keep < traces.height:
            notice = f"{self.name}: fetched {keep} of {traces.height} sampled traces by id, evenly over the window"
            notices = (notice + " (options.window_fetch_traces)",)
        converted = self._fetch_bodies(picked["trace_id"].to_list())
        return Converted(converted.frame, converted.notices + notices)

    def _search_ids(self, search: SpanSearch, start: datetime, end: datetime) -> SliceFound:
        query = traceql(search)
        params = {"q": query, "limit": search.limit, "spss": self.spss,
                  "start": epoch_us(start) // 1_000_000, "end": math.ceil(epoch_us(end) / 1_000_000)}  # seconds
        body = self.get("/api/search", params)
        if not isinstance(body, dict):
            raise PayloadError("/api/search did not return an object", source=self.name)
        traces = body.get("traces") or []  # omitted when empty (gogo jsonpb)
        if not isinstance(traces, list):
            raise PayloadError("/api/search 'traces' is not a list", source=self.name)
        ids: list[str] = []
        starts_ns: list[int | None] = []
        for item in traces:
            raw = item.get("traceID") if isinstance(item, dict) else None
            if not isinstance(raw, str):
                raise PayloadError(f"/api/search returned a trace without a traceID: {short(item)}", source=self.name)
            try:
                ids.append(normalize_trace_id(raw))  # leading zeros are stripped by Tempo
            except ConfigError as exc:
                raise PayloadError(f"/api/search returned a bad traceID {short(raw)}", source=self.name) from exc
            started = str(item.get("startTimeUnixNano", ""))  # uint64 as a string; omitted when 0
            starts_ns.append(int(started) if started.isdigit() else None)
        frame = pl.DataFrame(
            {"trace_id": ids, "start_ns": starts_ns}, schema={"trace_id": pl.String, "start_ns": pl.Int64}
        )
        frame = frame.select("trace_id", pl.from_epoch(pl.col("start_ns") // 1000, time_unit="us")  # ns -> µs
                             .dt.replace_time_zone("UTC").alias("start"))
        executed = f"GET /api/search q={query} start={params['start']} end={params['end']} limit={search.limit}"
        return SliceFound(frame, None, executed)

    def trace_by_id(self, trace_id: str) -> tuple[Converted, str]:
        body, path = self._trace_body(trace_id)
        return (empty_converted() if body is None else convert_otlp(body)), f"GET {path}"

    def _trace_body(self, trace_id: str) -> tuple[bytes | None, str]:
        """One trace's raw body (None when not found) and the path that answered, v2 first."""
        with self._lock:
            api = self._trace_api
        if api in (None, "v2"):
            body = self.get_or_not_found(f"/api/v2/traces/{trace_id}", raw=True)
            if body is not NOT_FOUND:
                self._remember("v2")
                return body, f"/api/v2/traces/{trace_id}"
            if api == "v2":
                return None, f"/api/v2/traces/{trace_id}"
        body = self.get_or_not_found(f"/api/traces/{trace_id}", raw=True)  # Tempo < 2.5, or not found
        if body is NOT_FOUND:
            return None, f"/api/traces/{trace_id}"
        self._remember("v1")
        return body, f"/api/traces/{trace_id}"

    def _fetch_bodies(self, trace_ids: list[str]) -> Converted:
        """Fetch traces concurrently and convert them in one pass (one document per line): far cheaper than
        one conversion per trace. A body that does not convert is dropped with a notice, not the window."""
        answers, errors = self.concurrently(lambda trace_id: self._trace_body(trace_id)[0], trace_ids)
        if errors and not answers:
            raise errors[0]
        bodies = [body.strip() for _, body in answers if body]
        notices: list[str] = []
        if errors:
            notices.append(
                f"{self.name}: {len(errors)} of {len(trace_ids)} traces could not be fetched ({errors[0].describe()})"
            )
        try:
            converted = convert_otlp(b"\n".join(bodies)) if bodies else empty_converted()
        except PayloadError:
            parts, bad = [], 0
            for body in bodies:
                try:
                    parts.append(convert_otlp(body))
                except PayloadError:
                    bad += 1
            notices.append(f"{self.name}: {bad} of {len(bodies)} fetched traces were not valid OTLP and were left out")
            converted = merge(parts)
        return Converted(converted.frame, converted.notices + tuple(notices))

    def _remember(self, api: Literal["v1", "v2"]) -> None:
        with self._lock:
            self._trace_api = api


def build(source: SourceConfig) -> TempoConnector:
    """Registry factory for ``type: tempo``."""
    return TempoConnector(source)
