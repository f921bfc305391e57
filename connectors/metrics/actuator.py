"""Spring Boot actuator + Resilience4j/HikariCP → breakers, pools and events.

Source options::

    url: http://app:8080
    base_path: /actuator          # management.endpoints.web.base-path
    instance: app-1               # optional label for the rows
    pools: [HikariPool-1]         # optional; default: every pool the metrics endpoint lists

breakers: the ``/circuitbreakers`` snapshot (now) plus one row per STATE_TRANSITION event in the
query window (state after the transition), so short opens between polls are not lost.
events: every STATE_TRANSITION as ``breaker_transition`` (attrs ``breaker, from_state, to_state``)
and each breaker's thresholds as ``breaker_config``. pools: ``/metrics/hikaricp.connections.*``
per pool (the Spring docs say this endpoint is for diagnosis; Prometheus is better for history).
Rates are strings like ``"50.0%"`` (``-1.0%`` = not enough calls → null); ``creationTime`` is a
Java ``ZonedDateTime`` (``...+01:00[Europe/Berlin]``). The dashboard never POSTs (that changes state).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import httpx
import polars as pl

from connectors.runtime import http
from connectors.base import Health, Query, Result, run_query
from connectors.errors import ConfigError, PayloadError, SourceRejected, payload_boundary
from config import SourceConfig
from model.schemas import BREAKERS, EVENTS, POOLS, empty_frame

_ZONE = re.compile(r"\[[^\]]*\]$")
_STATE = {"metrics_only": "disabled"}
HIKARI_METRICS = {
    "active": ("hikaricp.connections.active", "VALUE"),
    "idle": ("hikaricp.connections.idle", "VALUE"),
    "pending": ("hikaricp.connections.pending", "VALUE"),
    "max": ("hikaricp.connections.max", "VALUE"),
    "timeouts": ("hikaricp.connections.timeout", "COUNT"),
    "acquire_p99_ms": ("hikaricp.connections.acquire", "MAX"),
}


def parse_rate(text: Any) -> float | None:
    """``"50.0%"`` → 0.5; ``"-1.0%"`` (fewer than minimumNumberOfCalls) → None."""
    if text is None:
        return None
    try:
        value = float(str(text).strip().rstrip("%"))
    except ValueError as exc:
        raise PayloadError(f"rate {text!r} is not a percentage") from exc
    return None if value < 0 else value / 100.0


def parse_zoned(text: str) -> datetime:
    """Java ``ZonedDateTime.toString()`` (``2024-01-15T10:30:45.123+01:00[Europe/Berlin]``) → UTC."""
    try:
        parsed = datetime.fromisoformat(_ZONE.sub("", str(text).strip()))
    except ValueError as exc:
        raise PayloadError(f"creationTime {text!r} is not an ISO-8601 zoned time") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _state(text: Any) -> str | None:
    value = str(text).lower() if text is not None else None
    return _STATE.get(value, value) if value else None


def _breaker_map(payload: dict[str, Any] | str | bytes) -> dict[str, dict[str, Any]]:
    doc = http.parse_json(payload) if isinstance(payload, (str, bytes)) else payload
    found = doc.get("circuitBreakers") if isinstance(doc, dict) else None
    if not isinstance(found, dict):
        raise PayloadError("no 'circuitBreakers' object in /circuitbreakers", hint="base_path and the resilience4j actuator module")
    return found


@payload_boundary
def breakers_from_actuator(payload: dict[str, Any] | str | bytes, *, ts: datetime, source: str = "actuator",
                           instance: str | None = None) -> pl.DataFrame:
    """``/actuator/circuitbreakers`` → breakers frame at ``ts`` (calls: unknown, the endpoint has no cumulative total)."""
    rows = [
        {"ts": ts, "source": source, "breaker": name, "instance": instance, "state": _state(cb.get("state")),
         "failure_rate": parse_rate(cb.get("failureRate")), "slow_call_rate": parse_rate(cb.get("slowCallRate")),
         "calls": None, "not_permitted_calls": cb.get("notPermittedCalls")}
        for name, cb in _breaker_map(payload).items()
    ]
    return pl.DataFrame(rows, schema=BREAKERS, orient="row") if rows else empty_frame("breakers")


@payload_boundary
def events_from_actuator(payload: dict[str, Any] | str | bytes, *, source: str = "actuator", instance: str | None = None) -> pl.DataFrame:
    """``/actuator/circuitbreakerevents`` → ``breaker_transition`` events (other event types are dropped)."""
    doc = http.parse_json(payload) if isinstance(payload, (str, bytes)) else payload
    items = doc.get("circuitBreakerEvents") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise PayloadError("no 'circuitBreakerEvents' list in /circuitbreakerevents")
    rows = []
    for item in items:
        if item.get("type") != "STATE_TRANSITION" or not item.get("stateTransition"):
            continue
        before, _, after = str(item["stateTransition"]).lower().partition("_to_")
        name = item.get("circuitBreakerName")
        rows.append({
            "ts": parse_zoned(item["creationTime"]), "kind": "breaker_transition", "service": name,
            "description": f"breaker {name} {before} -> {after}",
            "attrs": json.dumps({"breaker": name, "instance": instance, "from_state": _state(before), "to_state": _state(after),
                                 "source": source}),
        })
    return pl.DataFrame(rows, schema=EVENTS, orient="row").sort("ts") if rows else empty_frame("events")


@payload_boundary
def config_events_from_actuator(payload: dict[str, Any] | str | bytes, *, ts: datetime, source: str = "actuator") -> pl.DataFrame:
    """Each breaker's thresholds (``failureRateThreshold``...) as a ``breaker_config`` event."""
    rows = [
        {"ts": ts, "kind": "breaker_config", "service": name, "description": f"Resilience4j thresholds of {name}",
         "attrs": json.dumps({"breaker": name, "source": source,
                              "failure_rate_threshold": parse_rate(cb.get("failureRateThreshold")),
                              "slow_call_rate_threshold": parse_rate(cb.get("slowCallRateThreshold"))})}
        for name, cb in _breaker_map(payload).items()
    ]
    return pl.DataFrame(rows, schema=EVENTS, orient="row") if rows else empty_frame("events")


def breakers_from_transitions(events: pl.DataFrame, source: str = "actuator") -> pl.DataFrame:
    """One breakers row per transition event: the state it entered, at the time it entered it."""
    if events.height == 0:
        return empty_frame("breakers")
    attrs = events.get_column("attrs").str.json_decode(pl.Struct({"breaker": pl.String, "instance": pl.String, "to_state": pl.String}))
    return events.select("ts").with_columns(attrs.alias("a")).unnest("a").select(
        "ts", pl.lit(source).alias("source"), "breaker", "instance", pl.col("to_state").alias("state"),
        *[pl.lit(None, dtype=BREAKERS[c]).alias(c) for c in ("failure_rate", "slow_call_rate", "calls", "not_permitted_calls")],
    ).cast(BREAKERS)


def pool_row_from_metrics(pool: str, metrics: dict[str, dict[str, Any]], *, ts: datetime, source: str,
                          instance: str | None) -> dict[str, Any]:
    """``/metrics/hikaricp.*?tag=pool:X`` documents (by column) → one pools row."""
    row: dict[str, Any] = {"ts": ts, "source": source, "pool": pool, "instance": instance}
    for column, (_, statistic) in HIKARI_METRICS.items():
        doc = metrics.get(column) or {}
        values = [m.get("value") for m in doc.get("measurements", []) if m.get("statistic") == statistic]
        value = float(values[0]) if values and values[0] is not None else None
        row[column] = value * 1000.0 if column == "acquire_p99_ms" and value is not None else (
            int(round(value)) if value is not None and column != "acquire_p99_ms" else value)
    return row


class ActuatorConnector:
    capabilities = frozenset({"breakers", "pools", "events"})

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None) -> None:
        self.name = source.name
        opts = source.options
        if not opts.get("url") and client is None:
            raise ConfigError("option 'url' is required (the Spring Boot app's base URL)", source=source.name)
        self.base = "/" + str(opts.get("base_path", "/actuator")).strip("/")
        self.instance = opts.get("instance")
        self.pools = list(opts.get("pools") or [])
        self.client = client or http.make_client(source)

    def _get(self, path: str, params: Any = None) -> Any:
        return http.get_json(self.client, f"{self.base}{path}", self.name, params)

    def _get_optional(self, path: str, params: Any = None) -> Any:
        """GET a metric that may not exist: 404 (no HikariCP in this app, or no such meter) is None, not an error."""
        try:
            return self._get(path, params)
        except SourceRejected as exc:
            if exc.not_found:
                return None
            raise

    def check_health(self) -> Health:
        started = time.perf_counter()
        try:
            self._get("/circuitbreakers")
        except Exception as exc:  # health is a value
            return Health("down", exc.describe() if hasattr(exc, "describe") else str(exc), (time.perf_counter() - started) * 1000)
        return Health("ok", "actuator answered", (time.perf_counter() - started) * 1000)

    def query(self, queries: Sequence[Query]) -> list[Result]:
        return [run_query(self.name, q, self._fetch) for q in queries]

    def _fetch(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        now = datetime.now(timezone.utc)
        in_window = (pl.col("ts") >= query.start) & (pl.col("ts") < query.end)
        if query.kind == "breakers":
            snapshot = breakers_from_actuator(self._get("/circuitbreakers"), ts=now, source=self.name, instance=self.instance)
            moves = events_from_actuator(self._get("/circuitbreakerevents"), source=self.name, instance=self.instance).filter(in_window)
            frame = pl.concat([breakers_from_transitions(moves, self.name), snapshot]).sort(["breaker", "ts"])
            return frame, f"GET {self.base}/circuitbreakers; GET {self.base}/circuitbreakerevents", ()
        if query.kind == "events":
            moves = events_from_actuator(self._get("/circuitbreakerevents"), source=self.name, instance=self.instance)
            configs = config_events_from_actuator(self._get("/circuitbreakers"), ts=now, source=self.name)
            notices = ("the actuator keeps only the last events per breaker (ring buffer); older transitions are gone",)
            return pl.concat([moves.filter(in_window), configs]).sort("ts"), f"GET {self.base}/circuitbreakerevents", notices
        if query.kind == "pools":
            return self._pools(now)
        raise ConfigError(f"actuator serves breakers, pools and events, not {query.kind!r}", source=self.name)

    def _pools(self, now: datetime) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        pools = self.pools
        if not pools:
            doc = self._get_optional("/metrics/hikaricp.connections")
            if doc is not None and not (isinstance(doc, dict) and isinstance(doc.get("availableTags", []), list)):
                raise PayloadError("/metrics/hikaricp.connections is not a Micrometer metric document")
            tags = [t for t in (doc or {}).get("availableTags", []) if isinstance(t, dict) and t.get("tag") == "pool"]
            pools = list(tags[0].get("values", [])) if tags else []
        rows = []
        for pool in pools:
            metrics = {col: self._get_optional(f"/metrics/{name}", {"tag": f"pool:{pool}"}) or {}
                       for col, (name, _) in HIKARI_METRICS.items()}
            rows.append(pool_row_from_metrics(pool, metrics, ts=now, source=self.name, instance=self.instance))
        frame = pl.DataFrame(rows, schema=POOLS, orient="row") if rows else empty_frame("pools")
        return frame, f"GET {self.base}/metrics/hikaricp.connections.*?tag=pool:<pool> for {len(pools)} pool(s)", ()


def build(source: SourceConfig) -> ActuatorConnector:
    return ActuatorConnector(source)
