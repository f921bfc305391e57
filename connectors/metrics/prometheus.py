"""Prometheus HTTP API → breakers, pools and change events, through the YAML mapping.

Source options::

    url: http://prometheus:9090
    mappings: [teams/payments-prom.yaml]   # extra mapping files (see prometheus_mappings.yaml)
    matchers: 'namespace="prod"'           # added to every selector
    step_s: 15                             # query_range step; raised so a range has <= 1000 points
    max_points: 1000

Query.params: ``instant: true`` runs ``/api/v1/query`` at ``end``; ``step_s`` overrides the step.
Each frame kind is one ``query_range`` over ``{__name__=~"<every mapped metric>"}``; event rules
with their own ``query`` run one request each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import httpx
import polars as pl

from connectors.runtime import http
from connectors.base import Health, Query, Result, run_query
from connectors.errors import ConfigError
from connectors.metrics.prometheus_frames import breakers_from_samples, events_from_samples, pools_from_samples
from connectors.metrics.prometheus_mapping import MappingSet, load_mappings
from config import SourceConfig
from connectors.metrics.samples import samples_from_api
from model.schemas import empty_frame

KINDS = ("breakers", "pools", "events")


def breakers_from_prometheus(payload: str | bytes | dict[str, Any], mapping: MappingSet, source: str = "prometheus") -> pl.DataFrame:
    """A query/query_range response → breakers frame (warnings are dropped; see ``samples_from_api``)."""
    return breakers_from_samples(samples_from_api(payload)[0], mapping, source)


def pools_from_prometheus(payload: str | bytes | dict[str, Any], mapping: MappingSet, source: str = "prometheus") -> pl.DataFrame:
    """A query/query_range response → pools frame."""
    return pools_from_samples(samples_from_api(payload)[0], mapping, source)


def events_from_prometheus(payload: str | bytes | dict[str, Any], mapping: MappingSet, source: str = "prometheus") -> pl.DataFrame:
    """A response holding the metric-rule series → events (custom-``query`` rules are run separately)."""
    rules = tuple(r for r in mapping.events if r.query is None)
    return events_from_samples(samples_from_api(payload)[0], rules, source)


def selector(metrics: Sequence[str], matchers: str = "") -> str:
    """One PromQL selector for many metric names: ``{__name__=~"a|b",<matchers>}``."""
    extra = f",{matchers.strip().strip(',')}" if matchers.strip() else ""
    return '{__name__=~"' + "|".join(sorted(set(metrics))) + '"' + extra + "}"


class PrometheusConnector:
    """Reads breakers/pools/events from one Prometheus server."""

    capabilities = frozenset({"breakers", "pools", "events"})

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None, mapping: MappingSet | None = None) -> None:
        self.name = source.name
        self.source = source
        opts = source.options
        if not opts.get("url") and client is None:
            raise ConfigError("option 'url' is required (e.g. http://prometheus:9090)", source=source.name)
        extra = opts.get("mappings") or []
        if isinstance(extra, str):
            extra = [extra]
        self.mapping = mapping or load_mappings(extra)
        self.matchers = str(opts.get("matchers", ""))
        self.step_s = float(opts.get("step_s", 15))
        self.max_points = int(opts.get("max_points", 1000))
        self.client = client or http.make_client(source)

    def check_health(self) -> Health:
        started = time.perf_counter()
        try:
            http.get_json(self.client, "/api/v1/status/buildinfo", self.name)
        except Exception as exc:  # never raises: health is a value
            message = exc.describe() if hasattr(exc, "describe") else str(exc)
            return Health("down", message, (time.perf_counter() - started) * 1000)
        return Health("ok", "Prometheus answered", (time.perf_counter() - started) * 1000)

    def query(self, queries: Sequence[Query]) -> list[Result]:
        return [run_query(self.name, q, self._fetch) for q in queries]

    def _fetch(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        if query.kind not in KINDS:
            raise ConfigError(f"Prometheus serves {KINDS}, not {query.kind!r}", source=self.name)
        if query.kind == "events":
            return self._events(query)
        metrics = self.mapping.metrics(query.kind)
        if not metrics:
            return empty_frame(query.kind), "", ("no mapping family for this kind",)
        promql = selector(metrics, self.matchers)
        samples, executed, notices = self._run(promql, query)
        convert = breakers_from_samples if query.kind == "breakers" else pools_from_samples
        return convert(samples, self.mapping, self.name), executed, notices

    def _events(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        frames: list[pl.DataFrame] = []
        executed: list[str] = []
        notices: list[str] = []
        metric_rules = tuple(r for r in self.mapping.events if r.query is None)
        if metric_rules:
            samples, ran, found = self._run(selector(self.mapping.metrics("events"), self.matchers), query)
            frames.append(events_from_samples(samples, metric_rules, self.name))
            executed.append(ran)
            notices += found
        for rule in (r for r in self.mapping.events if r.query is not None):
            samples, ran, found = self._run(str(rule.query), query)
            frames.append(events_from_samples(samples, (rule,), self.name))
            executed.append(ran)
            notices += found
        frames = [f for f in frames if f.height]
        frame = pl.concat(frames).sort("ts") if frames else empty_frame("events")
        return frame, "\n".join(executed), tuple(notices)

    def _run(self, promql: str, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        start_s, end_s = query.start.timestamp(), query.end.timestamp()
        if query.params.get("instant"):
            params: dict[str, Any] = {"query": promql, "time": f"{end_s:.3f}"}
            path = "/api/v1/query"
        else:
            span_s = max(end_s - start_s, 1.0)
            step = max(float(query.params.get("step_s", self.step_s)), math.ceil(span_s / self.max_points))
            params = {"query": promql, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}", "step": f"{step:g}"}
            path = "/api/v1/query_range"
        payload = http.get_json(self.client, path, self.name, params)
        samples, notices = samples_from_api(payload)
        executed = f"GET {path}?" + "&".join(f"{k}={v}" for k, v in params.items())
        return samples, executed, notices


def build(source: SourceConfig) -> PrometheusConnector:
    return PrometheusConnector(source)
