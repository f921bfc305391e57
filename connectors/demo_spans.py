"""Turn the demo's requests into span trees (the spans frame).

A trace is a fixed set of *hops* (gateway → auth → payments → fraud, gateway → checkout →
inventory/payments → postgres, ...). Each hop applies to the requests its mask selects.
Siblings under one parent run one after another; a parent lasts its own time plus its children's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from connectors.demo_traffic import DEPLOY_MIN, WINDOW_START, Traffic, hex_ids
from model.schemas import SPANS


@dataclass
class Hop:
    name: str
    parent: str | None
    service: str
    operation: str
    kind: str
    mask: np.ndarray
    self_ms: np.ndarray
    error: np.ndarray
    http_status_ok: int = 200
    http_status_error: int = 500
    propagates: np.ndarray | None = None  # failures the parent sees (None: every error); a retried attempt's isn't
    attrs: dict[str, np.ndarray | pl.Series | str] = field(default_factory=dict)


def _lognormal(rng: np.random.Generator, median_ms: float, n: int, sigma: float = 0.45) -> np.ndarray:
    return rng.lognormal(np.log(median_ms), sigma, n)


def _hops(rng: np.random.Generator, tr: Traffic) -> list[Hop]:
    n = tr.n
    none = np.zeros(n, dtype=bool)
    everyone = np.ones(n, dtype=bool)
    route = tr.route
    minute = tr.t_s / 60.0
    deployed = minute >= DEPLOY_MIN + 1.0
    payments_version = np.where(deployed, "2.14.0", "2.13.4")
    search, product, checkout, cart, account = (route == r for r in
                                                ("GET /search", "GET /product/{id}", "POST /checkout", "GET /cart", "GET /account"))
    fraud_ms = np.where(tr.sca_slow, rng.uniform(10_000, 11_200, n), _lognormal(rng, 35, n))
    failed_attempt_ms = rng.uniform(250, 1000, n)

    def host(svc: str, k: int = 4) -> pl.Series:
        return pl.Series([f"{svc}-{i}" for i in range(k)]).gather(rng.integers(0, k, n))

    hops = [
        Hop("root", None, "gateway", "", "server", everyone, _lognormal(rng, 6, n),
            tr.background_error, attrs={"host": tr.gateway_host, "service_version": "1.42.0"}),
        Hop("auth", "root", "auth", "POST /verify", "server", everyone, _lognormal(rng, 12, n), none,
            attrs={"host": host("auth"), "service_version": "3.8.1"}),
        Hop("sca", "auth", "payments", "GET /sca/status", "server", tr.sca, _lognormal(rng, 4, n), none,
            attrs={"host": host("payments"), "service_version": payments_version}),
        Hop("sca_fraud", "sca", "fraud", "POST /score", "server", tr.sca, fraud_ms, none,
            attrs={"host": host("fraud", 2), "service_version": "0.9.7"}),
        Hop("search", "root", "search", "GET /query", "server", search, _lognormal(rng, 80, n) + tr.decoy_extra_ms,
            tr.chronic_error, http_status_error=502, attrs={"host": host("search", 6), "service_version": "5.0.2"}),
        Hop("rank", "search", "recommender", "GET /rank", "server", search, _lognormal(rng, 40, n),
            tr.chronic_error, attrs={"host": host("recommender"), "service_version": "2.2.0"}),
        Hop("account", "root", "account", "GET /profile", "server", account, _lognormal(rng, 25, n), none,
            attrs={"host": host("account", 2), "service_version": "1.3.0"}),
        Hop("account_db", "account", "postgres", "SELECT users", "client", account, _lognormal(rng, 3, n), none,
            attrs={"db.system": "postgresql"}),
        Hop("checkout", "root", "checkout", "POST /orders", "server", checkout, _lognormal(rng, 15, n),
            tr.pool_timeout | (checkout & tr.inventory_failed), attrs={"host": host("checkout"), "service_version": "4.1.0"}),
        Hop("cart", "root", "cart", "GET /cart", "server", cart, _lognormal(rng, 10, n), cart & tr.inventory_failed,
            http_status_error=503, attrs={"host": host("cart", 2), "service_version": "2.0.5"}),
    ]
    for parent, mask, operation in (("root", product, "GET /stock"), ("checkout", checkout, "POST /reserve"),
                                    ("cart", cart, "GET /stock")):
        for attempt in range(3):
            present = mask & (tr.inventory_attempts > attempt)
            is_last = tr.inventory_attempts == attempt + 1
            failed = present & (~is_last | tr.inventory_failed)
            self_ms = np.where(failed, failed_attempt_ms, _lognormal(rng, 18, n))
            attrs: dict[str, np.ndarray | pl.Series | str] = {"host": host("inventory"), "service_version": "7.4.2"}
            if attempt:
                attrs["retry_attempt"] = str(attempt)
            hops.append(Hop(f"inv_{parent}_{attempt}", parent, "inventory", operation, "server", present, self_ms,
                            failed, http_status_error=503, propagates=present & is_last & tr.inventory_failed,
                            attrs=attrs))
    hops += [
        Hop("related", "root", "recommender", "GET /related", "server", product, _lognormal(rng, 30, n), none,
            attrs={"host": host("recommender"), "service_version": "2.2.0"}),
        Hop("charge", "checkout", "payments", "POST /charge", "server", checkout, _lognormal(rng, 9, n), tr.pool_timeout,
            attrs={"host": host("payments"), "service_version": payments_version,
                   "idempotency_key": hex_ids(rng, n, 8)}),
        Hop("acquire", "charge", "payments", "hikari.acquire", "internal", checkout, tr.pool_wait_ms, tr.pool_timeout,
            attrs={"db.pool": "payments-db"}),
        Hop("ledger", "charge", "postgres", "UPDATE ledger", "client", checkout & ~tr.pool_timeout, _lognormal(rng, 6, n),
            none, attrs={"db.system": "postgresql", "db.statement": "UPDATE ledger SET balance = balance - $1 WHERE id = $2"}),
        Hop("charge_fraud", "charge", "fraud", "POST /score", "server", checkout & ~tr.pool_timeout,
            _lognormal(rng, 35, n), none, attrs={"host": host("fraud", 2), "service_version": "0.9.7"}),
    ]
    return hops


def _timings(hops: list[Hop], n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Durations bottom-up, then start offsets top-down (children of one parent run in sequence)."""
    children: dict[str, list[Hop]] = {h.name: [] for h in hops}
    for h in hops:
        if h.parent:
            children[h.parent].append(h)
    duration: dict[str, np.ndarray] = {}
    for h in reversed(hops):  # every child is listed after its parent
        total = h.self_ms.copy()
        for c in children[h.name]:
            total += np.where(c.mask, duration[c.name], 0.0)
        duration[h.name] = total
    offset: dict[str, np.ndarray] = {"root": np.zeros(n)}
    for h in hops:
        cursor = offset[h.name] + 0.4  # ms of local work before the first outgoing call
        for c in children[h.name]:
            offset[c.name] = cursor.copy()
            cursor = cursor + np.where(c.mask, duration[c.name] + 0.2, 0.0)
    return duration, offset


def build_spans(rng: np.random.Generator, tr: Traffic, full_trace_limit: int) -> pl.DataFrame:
    """All spans of the demo; requests past ``full_trace_limit`` keep only their root span."""
    n = tr.n
    hops = _hops(rng, tr)
    duration, offset = _timings(hops, n)
    trace_ids = hex_ids(rng, n, 16)
    span_ids = {h.name: hex_ids(rng, n, 8) for h in hops}
    keep_children = np.zeros(n, dtype=bool)
    keep_children[rng.permutation(n)[: min(full_trace_limit, n)]] = True
    start_us = (tr.t_s * 1e6).astype(np.int64)
    root_error = np.zeros(n, dtype=bool)
    root_status = np.full(n, 200, dtype=np.int32)
    for h in hops[1:]:
        if h.parent == "root":
            failed = h.mask & (h.error if h.propagates is None else h.propagates)
            root_status = np.where(failed & ~root_error, h.http_status_error, root_status)
            root_error |= failed
    root_status = np.where(hops[0].error & ~root_error, 500, root_status)
    root_error |= hops[0].error

    parts = []
    root_attrs = {
        "region": tr.region, "client_version": tr.client_version, "platform": tr.platform, "tenant": tr.tenant,
        "user_id": tr.user, "http.route": tr.route, "http.method": np.char.partition(tr.route, " ")[:, 0],
        "feature_flag.new_checkout": tr.flag_new_checkout, "feature_flag.dark_mode": tr.flag_dark_mode,
        "correlation_id": "req-" + hex_ids(rng, n, 6),
        "client.address": np.char.add("203.0.113.", rng.integers(1, 255, n).astype(str)),
        "retry_attempt": pl.Series(tr.client_retry.astype(str)).replace("0", None),
    }
    for h in hops:
        is_root = h.parent is None
        mask = h.mask if is_root else h.mask & keep_children
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            continue
        error = root_error if is_root else h.error
        status = root_status if is_root else np.where(h.error, h.http_status_error, h.http_status_ok)
        columns: dict[str, object] = {
            "trace_id": trace_ids.gather(idx),
            "span_id": span_ids[h.name].gather(idx),
            "parent_span_id": None if is_root else span_ids[h.parent or ""].gather(idx),
            "service": h.service,
            "operation": tr.route[idx] if is_root else h.operation,
            "kind": h.kind,
            "start_us": start_us[idx] + (offset[h.name][idx] * 1000).astype(np.int64),
            "duration_ms": np.round(duration[h.name][idx], 3),
            "status": np.where(error[idx], "error", "unset"),
            "http_status": status[idx].astype(np.int32) if h.kind == "server" else None,
            "is_root": is_root,
        }
        attrs = dict(root_attrs) if is_root else {}
        attrs.update(h.attrs)
        for key, value in attrs.items():
            if isinstance(value, pl.Series):
                value = value.gather(idx)
            elif isinstance(value, np.ndarray):
                value = pl.Series(value[idx].astype(str))
            columns[f"attr.{key}"] = value
        parts.append(pl.DataFrame(columns).with_columns(pl.col(c).cast(pl.String) for c in columns if c.startswith("attr.")))
    frame = pl.concat(parts, how="diagonal_relaxed")
    base_us = int(WINDOW_START.timestamp() * 1e6)
    frame = frame.with_columns(
        start=(pl.col("start_us") + base_us).cast(pl.Datetime("us", "UTC")),
        parent_span_id=pl.col("parent_span_id").cast(pl.String),
        http_status=pl.col("http_status").cast(pl.Int32),
    ).drop("start_us")
    attr_cols = sorted(c for c in frame.columns if c.startswith("attr."))
    return frame.select([pl.col(c).cast(t) for c, t in SPANS.items()] + [pl.col(c) for c in attr_cols])
