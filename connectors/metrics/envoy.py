"""Envoy admin (``/clusters?format=json`` + ``/stats?format=json``) → breakers, pools and events.

Source options: ``url`` (admin, e.g. http://127.0.0.1:9901 or :15000 in Istio), ``instance``.

* breakers: one row per cluster from ``/stats`` (``circuit_breakers.default.*_open`` gauges → open,
  ``upstream_rq_pending_overflow + upstream_cx_overflow + upstream_rq_retry_overflow`` as blocked
  calls, ``upstream_rq_total`` as calls), plus one row per *host* from ``/clusters`` — outlier
  detection is Envoy's per-host breaker: ``failed_outlier_check`` → open. Host ``failure_rate`` is
  ``1 - success_rate/100`` when outlier detection computed one, else ``rq_error / rq_total``.
* pools: one row per cluster: ``active`` = Σ host ``cx_active`` (or the cluster gauge), ``pending`` =
  ``upstream_rq_pending_active``, ``max`` = the default-priority ``max_connections`` threshold,
  ``timeouts`` = pending + connection-pool overflows.
* events: one ``outlier_ejection`` per host ejected at query time.

The Istio fixture mixes Envoy's snake_case with hand-edited camelCase, so keys are normalised;
host stat values are uint64 strings omitted when 0. Cluster names contain dots and ``|``, so
``/stats`` names are matched on known suffixes, never split on ``.``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import httpx
import polars as pl

from connectors.runtime import http
from connectors.base import Health, Query, Result, run_query
from connectors.errors import ConfigError, PayloadError, payload_boundary
from config import SourceConfig
from model.schemas import BREAKERS, EVENTS, POOLS, empty_frame

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_SUFFIXES = (
    "circuit_breakers.default.cx_open", "circuit_breakers.default.cx_pool_open", "circuit_breakers.default.rq_pending_open",
    "circuit_breakers.default.rq_open", "circuit_breakers.default.rq_retry_open", "upstream_rq_pending_overflow",
    "upstream_cx_overflow", "upstream_cx_pool_overflow", "upstream_rq_retry_overflow", "upstream_rq_pending_active",
    "upstream_cx_active", "upstream_rq_total",
)
_STAT = re.compile(r"^cluster\.(.+)\.(" + "|".join(re.escape(s) for s in _SUFFIXES) + r")$")


def snake(obj: Any) -> Any:
    """Recursively turn camelCase keys into snake_case (proto JSON may use either)."""
    if isinstance(obj, dict):
        return {_CAMEL.sub(r"_\1", k).lower(): snake(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [snake(v) for v in obj]
    return obj


def _doc(payload: dict[str, Any] | str | bytes) -> dict[str, Any]:
    doc = http.parse_json(payload) if isinstance(payload, (str, bytes)) else payload
    if not isinstance(doc, dict):
        raise PayloadError("Envoy admin answer is not a JSON object")
    return snake(doc)


def _address(host: dict[str, Any]) -> str:
    addr = host.get("address") or {}
    sock = addr.get("socket_address")
    if sock:
        return f"{sock.get('address')}:{sock.get('port_value')}"
    return str((addr.get("pipe") or {}).get("path", "?"))


def _host_stats(host: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: int(s.get("value", 0) or 0) for s in host.get("stats", []) if "name" in s}


@payload_boundary
def hosts_from_clusters(payload: dict[str, Any] | str | bytes) -> pl.DataFrame:
    """``/clusters?format=json`` → one row per (cluster, host): health, ejection, host stats, thresholds."""
    doc = _doc(payload)
    if "cluster_statuses" not in doc:
        raise PayloadError("no 'cluster_statuses' in /clusters?format=json", hint="the admin URL and ?format=json")
    rows = []
    for cluster in doc.get("cluster_statuses") or []:
        thresholds = (cluster.get("circuit_breakers") or {}).get("thresholds") or []
        default = next((t for t in thresholds if t.get("priority", "DEFAULT") == "DEFAULT"), {})
        for host in cluster.get("host_statuses") or []:
            health = host.get("health_status") or {}
            stats = _host_stats(host)
            rows.append({
                "cluster": cluster.get("name"), "host": _address(host),
                "eds_health": health.get("eds_health_status", "HEALTHY"),
                "ejected": bool(health.get("failed_outlier_check", False)),
                "failed_active_hc": bool(health.get("failed_active_health_check", False)),
                "success_rate": (host.get("success_rate") or {}).get("value"),
                "cx_active": stats.get("cx_active", 0), "rq_active": stats.get("rq_active", 0),
                "rq_total": stats.get("rq_total", 0), "rq_error": stats.get("rq_error", 0),
                "max_connections": default.get("max_connections"),
            })
    schema = {"cluster": pl.String, "host": pl.String, "eds_health": pl.String, "ejected": pl.Boolean, "failed_active_hc": pl.Boolean,
              "success_rate": pl.Float64, "cx_active": pl.Int64, "rq_active": pl.Int64, "rq_total": pl.Int64, "rq_error": pl.Int64,
              "max_connections": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")


@payload_boundary
def cluster_stats(payload: dict[str, Any] | str | bytes) -> pl.DataFrame:
    """``/stats?format=json`` → ``cluster, stat, value`` for the known per-cluster suffixes (histograms skipped)."""
    doc = payload if isinstance(payload, dict) else _doc(payload)
    rows = []
    for item in doc.get("stats") or []:
        match = _STAT.match(str(item.get("name", ""))) if isinstance(item, dict) and "value" in item else None
        if match and isinstance(item["value"], (int, float)):
            rows.append({"cluster": match.group(1), "stat": match.group(2), "value": float(item["value"])})
    return pl.DataFrame(rows, schema={"cluster": pl.String, "stat": pl.String, "value": pl.Float64}, orient="row")


def _wide(stats: pl.DataFrame) -> pl.DataFrame:
    if stats.height == 0:
        return pl.DataFrame(schema={"cluster": pl.String, **{s: pl.Float64 for s in _SUFFIXES}})
    wide = stats.pivot(on="stat", index="cluster", values="value", aggregate_function="sum")
    return wide.with_columns([pl.lit(None, dtype=pl.Float64).alias(s) for s in _SUFFIXES if s not in wide.columns])


@payload_boundary
def breakers_from_envoy(clusters: dict[str, Any] | str | bytes, stats: dict[str, Any] | str | bytes | None, *,
                        ts: datetime, source: str = "envoy", instance: str | None = None) -> pl.DataFrame:
    """Cluster breakers (from stats) + per-host outlier 'breakers' (from clusters)."""
    hosts = hosts_from_clusters(clusters)
    host_rows = hosts.select(
        pl.lit(ts).alias("ts"), pl.lit(source).alias("source"), pl.col("cluster").alias("breaker"), pl.col("host").alias("instance"),
        pl.when(pl.col("ejected")).then(pl.lit("open")).otherwise(pl.lit("closed")).alias("state"),
        pl.coalesce(1 - pl.col("success_rate") / 100.0,
                    pl.when(pl.col("rq_total") > 0).then(pl.col("rq_error") / pl.col("rq_total"))).alias("failure_rate"),
        pl.lit(None, dtype=pl.Float64).alias("slow_call_rate"), pl.col("rq_total").alias("calls"),
        pl.lit(None, dtype=pl.Int64).alias("not_permitted_calls"),
    )
    wide = _wide(cluster_stats(stats) if stats is not None else cluster_stats({}))
    opens = [c for c in _SUFFIXES if c.startswith("circuit_breakers")]
    cluster_rows = wide.select(
        pl.lit(ts).alias("ts"), pl.lit(source).alias("source"), pl.col("cluster").alias("breaker"), pl.lit(instance, pl.String).alias("instance"),
        pl.when(pl.max_horizontal([pl.col(c).fill_null(0) for c in opens]) >= 1).then(pl.lit("open")).otherwise(pl.lit("closed")).alias("state"),
        pl.lit(None, dtype=pl.Float64).alias("failure_rate"), pl.lit(None, dtype=pl.Float64).alias("slow_call_rate"),
        pl.col("upstream_rq_total").cast(pl.Int64).alias("calls"),
        pl.sum_horizontal([pl.col(c).fill_null(0) for c in ("upstream_rq_pending_overflow", "upstream_cx_overflow",
                                                            "upstream_rq_retry_overflow")]).cast(pl.Int64).alias("not_permitted_calls"),
    )
    return pl.concat([cluster_rows.cast(BREAKERS), host_rows.cast(BREAKERS)]).sort(["breaker", "instance"], nulls_last=False)


@payload_boundary
def pools_from_envoy(clusters: dict[str, Any] | str | bytes, stats: dict[str, Any] | str | bytes | None, *,
                     ts: datetime, source: str = "envoy", instance: str | None = None) -> pl.DataFrame:
    """One pools row per cluster: upstream connections against the max_connections threshold."""
    hosts = hosts_from_clusters(clusters).group_by("cluster", maintain_order=True).agg(
        pl.col("cx_active").sum().alias("host_cx_active"), pl.col("max_connections").first().alias("max"))
    wide = _wide(cluster_stats(stats) if stats is not None else cluster_stats({}))
    joined = hosts.join(wide, on="cluster", how="full", coalesce=True)
    return joined.select(
        pl.lit(ts).alias("ts"), pl.lit(source).alias("source"), pl.col("cluster").alias("pool"), pl.lit(instance, pl.String).alias("instance"),
        pl.coalesce(pl.col("upstream_cx_active").cast(pl.Int64), pl.col("host_cx_active")).alias("active"),
        pl.lit(None, dtype=pl.Int64).alias("idle"), pl.col("upstream_rq_pending_active").cast(pl.Int64).alias("pending"), "max",
        pl.when(pl.col("upstream_rq_pending_overflow").is_not_null() | pl.col("upstream_cx_pool_overflow").is_not_null()).then(
            pl.col("upstream_rq_pending_overflow").fill_null(0) + pl.col("upstream_cx_pool_overflow").fill_null(0)).cast(pl.Int64).alias("timeouts"),
        pl.lit(None, dtype=pl.Float64).alias("acquire_p99_ms"),
    ).cast(POOLS)


@payload_boundary
def events_from_envoy(clusters: dict[str, Any] | str | bytes, *, ts: datetime, source: str = "envoy") -> pl.DataFrame:
    """Hosts ejected by outlier detection right now, one ``outlier_ejection`` event each."""
    ejected = hosts_from_clusters(clusters).filter(pl.col("ejected"))
    return ejected.select(
        pl.lit(ts).alias("ts"), pl.lit("outlier_ejection").alias("kind"), pl.col("cluster").alias("service"),
        pl.format("host {} ejected from {} by outlier detection", "host", "cluster").alias("description"),
        pl.struct(pl.col("cluster"), pl.col("host"), pl.col("eds_health"), pl.lit(source).alias("source")).struct.json_encode().alias("attrs"),
    ).cast(EVENTS) if ejected.height else empty_frame("events")


class EnvoyConnector:
    capabilities = frozenset({"breakers", "pools", "events"})

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None) -> None:
        self.name = source.name
        if not source.options.get("url") and client is None:
            raise ConfigError("option 'url' is required (the Envoy admin address)", source=source.name)
        self.instance = source.options.get("instance")
        self.client = client or http.make_client(source)

    def check_health(self) -> Health:
        started = time.perf_counter()
        try:
            hosts_from_clusters(http.get_json(self.client, "/clusters", self.name, {"format": "json"}))
        except Exception as exc:  # health is a value
            return Health("down", exc.describe() if hasattr(exc, "describe") else str(exc), (time.perf_counter() - started) * 1000)
        return Health("ok", "Envoy admin answered", (time.perf_counter() - started) * 1000)

    def query(self, queries: Sequence[Query]) -> list[Result]:
        return [run_query(self.name, q, self._fetch) for q in queries]

    def _fetch(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        now = datetime.now(timezone.utc)
        clusters = http.get_json(self.client, "/clusters", self.name, {"format": "json"})
        if query.kind == "events":
            return events_from_envoy(clusters, ts=now, source=self.name), "GET /clusters?format=json", ()
        if query.kind not in ("breakers", "pools"):
            raise ConfigError(f"Envoy serves breakers, pools and events, not {query.kind!r}", source=self.name)
        stats = http.get_json(self.client, "/stats", self.name, {"format": "json", "filter": r"^cluster\."})
        convert = breakers_from_envoy if query.kind == "breakers" else pools_from_envoy
        frame = convert(clusters, stats, ts=now, source=self.name, instance=self.instance)
        return frame, "GET /clusters?format=json; GET /stats?format=json&filter=^cluster\\.", ()


def build(source: SourceConfig) -> EnvoyConnector:
    return EnvoyConnector(source)



