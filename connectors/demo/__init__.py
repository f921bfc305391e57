"""The built-in demo incident: a seeded, deterministic simulation served through the connector contract.

A 60-minute window of a shop's microservices (gateway, auth, checkout, payments, fraud, inventory,
search, recommender, cart, account, postgres) in which several failure modes overlap: a payments
deploy that makes ``region=eu-west-1 AND client_version=5.2.0`` slow-but-200-OK (~11 s); one slow
report query holding the payments DB pool; a payments→fraud breaker that never trips; an inventory
leader election followed by a client retry storm; background errors; and a tenant that was bad
before the incident too. ``ground_truth()`` says what was injected.

Options (``sources.yaml``): ``seed`` (int), ``requests`` (1k–10M, default 200k),
``full_trace_limit`` (requests that keep their child spans; the rest keep only the root span),
``latency_ms`` (simulated backend latency per query), ``kinds`` (the frame kinds it serves, so a
real backend can provide the rest).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl

from config import SourceConfig
from connectors.base import Coverage, Fetched, Health, Query, Result, run_query
from connectors.demo.signals import build_breakers, build_events, build_pool_holders, build_pools
from connectors.demo.spans import build_spans
from connectors.demo.traffic import WINDOW_S, WINDOW_START, draw_traffic, ground_truth
from connectors.errors import ConfigError
from connectors.runtime.policy import RESILIENCE_OPTIONS

__all__ = ["DemoConfig", "DemoConnector", "build", "demo_frames", "ground_truth"]

MAX_REQUESTS = 10_000_000
KINDS = ("spans", "breakers", "pools", "pool_holders", "events")


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 7
    requests: int = 200_000
    full_trace_limit: int = 250_000
    latency_ms: float = 0.0
    kinds: tuple[str, ...] = KINDS

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DemoConfig:
        unknown = set(options) - {"seed", "requests", "full_trace_limit", "latency_ms", "kinds", "secret"} - RESILIENCE_OPTIONS
        if unknown:
            raise ConfigError(f"demo: unknown option(s) {sorted(unknown)}")
        try:
            cfg = cls(
                seed=int(options.get("seed", cls.seed)),
                requests=int(options.get("requests", cls.requests)),
                full_trace_limit=int(options.get("full_trace_limit", cls.full_trace_limit)),
                latency_ms=float(options.get("latency_ms", cls.latency_ms)),
                kinds=tuple(options.get("kinds", KINDS)),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"demo: options must be numbers ({exc})") from exc
        if not set(cfg.kinds) <= set(KINDS) or not cfg.kinds:
            raise ConfigError(f"demo: kinds must be a non-empty subset of {list(KINDS)}")
        if not 1_000 <= cfg.requests <= MAX_REQUESTS:
            raise ConfigError(f"demo: requests must be between 1000 and {MAX_REQUESTS:,}")
        return cfg


@lru_cache(maxsize=2)
def demo_frames(seed: int = 7, requests: int = 200_000, full_trace_limit: int = 250_000) -> dict[str, pl.DataFrame]:
    """Every frame of the demo incident; the same arguments always give the same frames."""
    rng = np.random.default_rng(seed)
    traffic = draw_traffic(rng, requests)
    return {
        "spans": build_spans(rng, traffic, full_trace_limit),
        "breakers": build_breakers(rng, traffic),
        "pools": build_pools(rng, traffic),
        "pool_holders": build_pool_holders(rng),
        "events": build_events(),
    }


class DemoConnector:
    """Serves the simulated incident; ``query`` filters by time and the usual span parameters."""

    def __init__(self, name: str, config: DemoConfig) -> None:
        self.name = name
        self.config = config
        self.capabilities = frozenset(config.kinds) | (frozenset({"trace_by_id", "search"}) if "spans" in config.kinds
                                                       else frozenset())
        # Simulate up front, so the first page's queries are cheap filters within their deadline.
        demo_frames(config.seed, config.requests, config.full_trace_limit)

    def check_health(self) -> Health:
        return Health("ok", f"built-in demo incident (seed {self.config.seed}, {self.config.requests:,} requests)", 0.0)

    def query(self, queries: Sequence[Query]) -> list[Result]:
        return [run_query(self.name, q, self._fetch) for q in queries]

    def _fetch(self, q: Query) -> Fetched:
        if q.kind not in self.config.kinds:
            raise ConfigError(f"demo cannot serve frame kind {q.kind!r}", source=self.name)
        if self.config.latency_ms:
            time.sleep(self.config.latency_ms / 1000)
        cfg = self.config
        frame = demo_frames(cfg.seed, cfg.requests, cfg.full_trace_limit)[q.kind]
        ts = "start" if q.kind == "spans" else "ts"
        frame = _between(frame, ts, q.start, q.end)
        executed = f"demo {q.kind} [{q.start.isoformat()}, {q.end.isoformat()})"
        coverage = None
        if q.kind == "spans":
            window = q.purpose == "window" and not q.params.get("trace_id")
            # a window query reads every trace of the window: a search limit does not apply to it
            frame = _filter_spans(frame, {k: v for k, v in q.params.items() if not (window and k == "limit")})
            executed += f" {dict(q.params)}" if q.params else ""
            if window:
                traces = frame["trace_id"].n_unique()
                coverage = Coverage(traces_read=traces, traces_total=traces, method="all")
        return Fetched(frame, executed, (), coverage)


def _between(frame: pl.DataFrame, ts: str, start: Any, end: Any) -> pl.DataFrame:
    """Rows with ``start <= ts < end``: the frame itself when all of it is inside (the whole window of the
    spans: 2 M rows at 1 M requests, so no copy), else a filtered copy."""
    column = frame.get_column(ts)
    if frame.height and column.min() >= start and column.max() < end:
        return frame
    return frame.filter(pl.col(ts) >= start, pl.col(ts) < end)


def _filter_spans(frame: pl.DataFrame, params: Mapping[str, Any]) -> pl.DataFrame:
    """Apply search parameters at trace level: a trace matches when any of its spans does."""
    conds = []
    if params.get("trace_id"):
        needle = str(params["trace_id"]).lower().rjust(32, "0")
        return frame.filter(pl.col("trace_id") == needle)
    if params.get("service"):
        conds.append(pl.col("service") == params["service"])
    if params.get("operation"):
        conds.append(pl.col("operation") == params["operation"])
    for key, value in dict(params.get("tags") or {}).items():
        column = f"attr.{key}"
        conds.append(pl.col(column) == str(value) if column in frame.columns else pl.lit(False))
    if params.get("min_duration_ms") is not None:
        conds.append(pl.col("duration_ms") >= float(params["min_duration_ms"]))
    if params.get("max_duration_ms") is not None:
        conds.append(pl.col("duration_ms") <= float(params["max_duration_ms"]))
    if not conds:
        return frame
    matching = frame.filter(pl.all_horizontal(conds)).select("trace_id").unique()
    limit = params.get("limit")
    if limit:
        matching = matching.sort("trace_id").head(int(limit))
    return frame.join(matching, on="trace_id", how="semi")


def build(source: SourceConfig) -> DemoConnector:
    return DemoConnector(source.name, DemoConfig.from_options(source.options))


def window() -> tuple[Any, Any]:
    """The demo's 60-minute window (UTC)."""
    from datetime import timedelta

    return WINDOW_START, WINDOW_START + timedelta(seconds=WINDOW_S)
