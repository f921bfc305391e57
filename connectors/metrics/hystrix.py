"""Hystrix / Turbine SSE stream → breakers, pools (thread pools) and events.

Source options::

    url: http://app:8080
    path: /hystrix.stream            # or /actuator/hystrix.stream, /turbine.stream?cluster=api
    window_s: 3                      # read the stream this long ...
    max_bytes: 2000000               # ... or until this many bytes, whichever comes first
    instance: app-1                  # optional label for the rows (Turbine: the cluster)

Hystrix publishes rolling-window counts only (default 10 s), never cumulative counters, so
``calls`` and ``not_permitted_calls`` are *lower-bound* cumulative estimates: the running sum of
the rises of ``requestCount`` and of short-circuited + semaphore/thread-pool-rejected counts.
Turbine sums numbers over ``reportingHosts``: percentages and means are divided back; the
open flag may be a bool, a count of open hosts or ``{"true": n, "false": m}`` and is "open" as
soon as one host is open. Events: ``breaker_transition`` when the open flag flips inside the
window and one ``breaker_config`` per command (thresholds for ``should_have_tripped``).
"""

from __future__ import annotations

import json
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

TS = pl.Datetime("us", "UTC")


def events_from_stream(text: str | bytes) -> tuple[list[dict[str, Any]], int]:
    """Parse SSE text into its ``data:`` JSON objects; keep-alives skipped. Returns (objects, skipped)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    found: list[dict[str, Any]] = []
    skipped = 0
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in block.split("\n") if line.startswith("data:"))
        if not data:
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            skipped += 1  # usually the last event, cut by the byte bound
            continue
        if isinstance(obj, dict):
            found.append(obj)
    return found, skipped


def _looks_like_sse(text: bytes) -> bool:
    """True when every non-blank line is an SSE field or comment (``data:``, ``:ping``, ``ping:``, ``event:``...)."""
    lines = [ln.strip() for ln in text.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    return all(ln.startswith((":", "data:", "ping", "event:", "id:", "retry:")) for ln in lines)


def _open_flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value > 0
    if isinstance(value, dict):
        return int(value.get("true", 0) or 0) > 0
    return None


def _rows(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o.get("type") == kind and o.get("name") is not None and o.get("currentTime") is not None]


def _cumulative(col: str, key: str) -> pl.Expr:
    """Lower-bound cumulative count from a rolling-window count: the running sum of its rises."""
    rise = (pl.col(col) - pl.col(col).shift(1).over(key)).clip(lower_bound=0)
    return rise.fill_null(pl.col(col)).cum_sum().over(key)


@payload_boundary
def breakers_from_hystrix(payload: str | bytes | list[dict[str, Any]], source: str = "hystrix", instance: str | None = None) -> pl.DataFrame:
    """HystrixCommand events → breakers frame (one row per event)."""
    objs = payload if isinstance(payload, list) else events_from_stream(payload)[0]
    rows = _rows(objs, "HystrixCommand")
    if not rows:
        return empty_frame("breakers")
    frame = pl.DataFrame(
        {
            "ms": [int(r["currentTime"]) for r in rows],
            "breaker": [str(r["name"]) for r in rows],
            "open": [_open_flag(r.get("isCircuitBreakerOpen")) for r in rows],
            "forced": [bool(r.get("propertyValue_circuitBreakerForceOpen")) for r in rows],
            "enabled": [r.get("propertyValue_circuitBreakerEnabled", True) is not False for r in rows],
            "hosts": [max(1, int(r.get("reportingHosts") or 1)) for r in rows],
            "error_pct": [float(r.get("errorPercentage") or 0) for r in rows],
            "requests": [int(r.get("requestCount") or 0) for r in rows],
            "blocked": [sum(int(r.get(k) or 0) for k in ("rollingCountShortCircuited", "rollingCountSemaphoreRejected",
                                                         "rollingCountThreadPoolRejected")) for r in rows],
        }
    ).sort(["breaker", "ms"])
    state = (
        pl.when(pl.col("forced")).then(pl.lit("forced_open"))
        .when(~pl.col("enabled")).then(pl.lit("disabled"))
        .when(pl.col("open")).then(pl.lit("open"))
        .when(pl.col("open").is_null()).then(None)
        .otherwise(pl.lit("closed"))
    )
    return frame.select(
        (pl.col("ms") * 1000).cast(TS).alias("ts"), pl.lit(source).alias("source"), "breaker",
        pl.lit(instance, dtype=pl.String).alias("instance"), state.alias("state"),
        (pl.col("error_pct") / pl.col("hosts") / 100.0).alias("failure_rate"),
        pl.lit(None, dtype=pl.Float64).alias("slow_call_rate"),
        _cumulative("requests", "breaker").cast(pl.Int64).alias("calls"),
        _cumulative("blocked", "breaker").cast(pl.Int64).alias("not_permitted_calls"),
    ).cast(BREAKERS)


@payload_boundary
def pools_from_hystrix(payload: str | bytes | list[dict[str, Any]], source: str = "hystrix", instance: str | None = None) -> pl.DataFrame:
    """HystrixThreadPool events → pools frame (active threads, queue as pending, max pool size)."""
    objs = payload if isinstance(payload, list) else events_from_stream(payload)[0]
    rows = _rows(objs, "HystrixThreadPool")
    if not rows:
        return empty_frame("pools")
    num = lambda r, k: int(r.get(k) or 0)  # noqa: E731
    frame = pl.DataFrame(
        {
            "ms": [int(r["currentTime"]) for r in rows],
            "pool": [f"hystrix:{r['name']}" for r in rows],
            "active": [num(r, "currentActiveCount") for r in rows],
            "size": [num(r, "currentPoolSize") for r in rows],
            "pending": [num(r, "currentQueueSize") for r in rows],
            "max": [num(r, "currentMaximumPoolSize") or None for r in rows],
            "rejected": [num(r, "rollingCountCommandRejections") for r in rows],
        }
    ).sort(["pool", "ms"])
    return frame.select(
        (pl.col("ms") * 1000).cast(TS).alias("ts"), pl.lit(source).alias("source"), "pool",
        pl.lit(instance, dtype=pl.String).alias("instance"), "active",
        (pl.col("size") - pl.col("active")).clip(lower_bound=0).alias("idle"), "pending", "max",
        _cumulative("rejected", "pool").alias("timeouts"), pl.lit(None, dtype=pl.Float64).alias("acquire_p99_ms"),
    ).cast(POOLS)


@payload_boundary
def events_from_hystrix(payload: str | bytes | list[dict[str, Any]], source: str = "hystrix", instance: str | None = None) -> pl.DataFrame:
    """Open-flag flips as ``breaker_transition`` and each command's thresholds as one ``breaker_config``."""
    objs = payload if isinstance(payload, list) else events_from_stream(payload)[0]
    breakers = breakers_from_hystrix(objs, source, instance)
    if breakers.height == 0:
        return empty_frame("events")
    prev = pl.col("state").shift(1).over("breaker")
    flips = breakers.with_columns(prev.alias("prev")).filter(
        pl.col("prev").is_not_null() & (pl.col("state") != pl.col("prev")).fill_null(False)
    )
    transitions = flips.select(
        "ts", pl.lit("breaker_transition").alias("kind"), pl.col("breaker").alias("service"),
        pl.format("breaker {} {} -> {}", "breaker", "prev", "state").alias("description"),
        pl.struct(pl.col("breaker"), pl.col("instance"), pl.col("prev").alias("from_state"), pl.col("state").alias("to_state"),
                  pl.lit(source).alias("source")).struct.json_encode().alias("attrs"),
    ) if flips.height else empty_frame("events")
    configs = []
    for r in {o["name"]: o for o in _rows(objs, "HystrixCommand")}.values():
        attrs = {
            "breaker": r["name"], "source": source,
            "failure_rate_threshold": _num(r.get("propertyValue_circuitBreakerErrorThresholdPercentage"), 0.01),
            "minimum_number_of_calls": _num(r.get("propertyValue_circuitBreakerRequestVolumeThreshold")),
            "timeout_ms": _num(r.get("propertyValue_executionIsolationThreadTimeoutInMilliseconds")
                               or r.get("propertyValue_executionTimeoutInMilliseconds")),
        }
        configs.append({"ts": datetime.fromtimestamp(int(r["currentTime"]) / 1000, timezone.utc), "kind": "breaker_config",
                        "service": r["name"], "description": f"Hystrix settings of {r['name']}", "attrs": json.dumps(attrs)})
    config_frame = pl.DataFrame(configs, schema=EVENTS, orient="row")
    return pl.concat([transitions.cast(EVENTS), config_frame]).sort("ts")


def _num(value: Any, scale: float = 1.0) -> float | None:
    return float(value) * scale if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class HystrixConnector:
    capabilities = frozenset({"breakers", "pools", "events"})

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None) -> None:
        self.name = source.name
        opts = source.options
        if not opts.get("url") and client is None:
            raise ConfigError("option 'url' is required (the app or Turbine base URL)", source=source.name)
        self.path = str(opts.get("path", "/hystrix.stream"))
        self.window_s = float(opts.get("window_s", 3.0))
        self.max_bytes = int(opts.get("max_bytes", 2_000_000))
        self.instance = opts.get("instance")
        self.client = client or http.make_client(source)

    def check_health(self) -> Health:
        started = time.perf_counter()
        try:
            text, _ = self.read_window(window_s=min(self.window_s, 1.5))
        except Exception as exc:  # health is a value
            return Health("down", exc.describe() if hasattr(exc, "describe") else str(exc), (time.perf_counter() - started) * 1000)
        status = "ok" if events_from_stream(text)[0] else "degraded"
        return Health(status, "stream answered" + ("" if status == "ok" else " but sent no data yet"), (time.perf_counter() - started) * 1000)

    def read_window(self, window_s: float | None = None) -> tuple[bytes, str]:
        """Read the stream for at most ``window_s`` seconds (capped by the page deadline) or ``max_bytes`` bytes."""
        window = window_s or self.window_s
        text = http.stream_bytes(self.client, self.path, self.name, window_s=window, max_bytes=self.max_bytes,
                                 headers={"Accept": "text/event-stream"})
        return text, f"GET {self.path} (≤{window:g}s, ≤{self.max_bytes} B)"

    def query(self, queries: Sequence[Query]) -> list[Result]:
        cache: dict[str, tuple[list[dict[str, Any]], str, tuple[str, ...]]] = {}

        def fetch(query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
            if query.kind not in self.capabilities:
                raise ConfigError(f"Hystrix serves {sorted(self.capabilities)}, not {query.kind!r}", source=self.name)
            if "stream" not in cache:  # one bounded read serves every query of the batch
                text, executed = self.read_window()
                objs, skipped = events_from_stream(text)
                if not objs and not _looks_like_sse(text):
                    raise PayloadError("the stream sent no Hystrix data: events", hint="the path (hystrix.stream vs turbine.stream)")
                notices = (f"{skipped} malformed or truncated stream event(s) skipped",) if skipped else ()
                cache["stream"] = (objs, executed, notices)
            objs, executed, notices = cache["stream"]
            convert = {"breakers": breakers_from_hystrix, "pools": pools_from_hystrix, "events": events_from_hystrix}[query.kind]
            return convert(objs, self.name, self.instance), executed, notices

        return [run_query(self.name, q, fetch) for q in queries]


def build(source: SourceConfig) -> HystrixConnector:
    return HystrixConnector(source)
