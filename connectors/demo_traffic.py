"""The demo incident's requests: who sent them, when, and what went wrong for each.

One row per request with its root attributes and the per-request faults the incident injects.
``demo_spans`` turns these rows into span trees. Everything is drawn from one seeded
``numpy.random.Generator`` so the same seed gives the same frames, row for row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

WINDOW_START = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
WINDOW_S = 3600

# Minutes after WINDOW_START at which each failure mode begins/ends.
FLAG_CHANGE_MIN = 18.0
DEPLOY_MIN = 25.0
POOL_START_MIN, POOL_END_MIN = 31.0, 44.0
ELECTION_MIN, STORM_END_MIN = 47.0, 49.5

ROUTES = ["GET /search", "GET /product/{id}", "POST /checkout", "GET /cart", "GET /account"]
ROUTE_P = [0.30, 0.25, 0.20, 0.15, 0.10]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1", "sa-east-1"]
REGION_P = [0.32, 0.18, 0.20, 0.14, 0.10, 0.06]
# (client_version, platform, share)
CLIENTS = [
    ("5.2.0", "ios", 0.10), ("5.2.0", "android", 0.06), ("5.1.3", "ios", 0.14), ("5.1.3", "android", 0.12),
    ("5.1.2", "android", 0.08), ("5.0.9", "ios", 0.06), ("4.9.1", "android", 0.09), ("4.8.0", "android", 0.04),
    ("web-2026.03", "web", 0.21), ("web-2026.02", "web", 0.10),
]
N_TENANTS = 320
N_USERS = 40_000
CHRONIC_TENANT = "t-0004"
SLOW_COHORT = {"region": "eu-west-1", "client_version": "5.2.0"}
SCA_REGIONS = ("eu-west-1", "eu-central-1")


@dataclass(frozen=True)
class Traffic:
    """Per-request draws (numpy arrays of length n) shared by the span builder."""

    n: int
    t_s: np.ndarray  # offset from WINDOW_START, seconds
    route: np.ndarray
    region: np.ndarray
    client_version: np.ndarray
    platform: np.ndarray
    tenant: np.ndarray
    user: np.ndarray
    gateway_host: np.ndarray
    flag_new_checkout: np.ndarray
    flag_dark_mode: np.ndarray
    client_retry: np.ndarray  # 0 for a first attempt, 1..2 for a client-side retry of the whole request
    sca: np.ndarray  # bool: request passes the strong-customer-auth check in payments
    sca_slow: np.ndarray  # bool: that check hangs ~10.5 s (the deploy's regression)
    pool_wait_ms: np.ndarray  # time spent acquiring a payments DB connection (checkout only)
    pool_timeout: np.ndarray  # bool: acquire gave up after 5 s -> HTTP 500
    inventory_attempts: np.ndarray  # 1..3 calls to inventory (retries after the leader election)
    inventory_failed: np.ndarray  # bool: the last inventory attempt failed too -> HTTP 503
    chronic_error: np.ndarray  # bool: the chronically bad tenant's search failure (502)
    background_error: np.ndarray  # bool: unrelated 500s sprinkled everywhere
    decoy_extra_ms: np.ndarray  # extra latency within SLO for android search after the deploy


def draw_traffic(rng: np.random.Generator, n_requests: int) -> Traffic:
    """Draw the demo's requests: a steady 60-minute load plus a client retry storm after the election."""
    n_base = n_requests
    n_storm = int(n_requests * 0.06)
    n = n_base + n_storm
    t_s = np.concatenate([
        rng.uniform(0, WINDOW_S, n_base),
        rng.uniform(ELECTION_MIN * 60 + 5, STORM_END_MIN * 60, n_storm),
    ])
    order = np.argsort(t_s, kind="stable")
    t_s = t_s[order]
    client_retry = np.concatenate([np.zeros(n_base, dtype=np.int8), rng.integers(1, 3, n_storm).astype(np.int8)])[order]

    route = np.array(ROUTES)[rng.choice(len(ROUTES), n, p=ROUTE_P)]
    region = np.array(REGIONS)[rng.choice(len(REGIONS), n, p=REGION_P)]
    client_idx = rng.choice(len(CLIENTS), n, p=[c[2] for c in CLIENTS])
    client_version = np.array([c[0] for c in CLIENTS])[client_idx]
    platform = np.array([c[1] for c in CLIENTS])[client_idx]
    tenant_rank = np.minimum(rng.zipf(1.3, n), N_TENANTS)
    tenant = np.char.add("t-", np.char.zfill(tenant_rank.astype(str), 4))
    user = np.char.add("u-", np.char.zfill(rng.integers(0, N_USERS, n).astype(str), 6))
    gateway_host = np.char.add("gateway-", rng.integers(0, 6, n).astype(str))
    flag_new_checkout = np.where(rng.random(n) < 0.5, "on", "off")
    dark_after = t_s >= FLAG_CHANGE_MIN * 60
    flag_dark_mode = np.where(dark_after & (rng.random(n) < 0.3), "on", "off")

    minute = t_s / 60.0
    sca = (client_version == "5.2.0") & np.isin(region, SCA_REGIONS)
    cohort = (client_version == SLOW_COHORT["client_version"]) & (region == SLOW_COHORT["region"])
    # The payments v2.14.0 rollout reaches all hosts over two minutes.
    deployed = minute >= DEPLOY_MIN + rng.uniform(0, 2, n)
    sca_slow = cohort & deployed & (rng.random(n) < 0.93)

    checkout = route == "POST /checkout"
    in_pool = (minute >= POOL_START_MIN) & (minute < POOL_END_MIN)
    ramp = np.clip(np.minimum(minute - POOL_START_MIN, POOL_END_MIN - minute) / 2.0, 0, 1)
    # Most checkouts get a connection after a short queue; the unlucky ones wait behind the held
    # connections until Hikari's 5 s connectionTimeout.
    unlucky = rng.random(n) < 0.14 * ramp
    pool_wait_ms = np.where(
        checkout & in_pool,
        np.where(unlucky, rng.uniform(2500, 5600, n), rng.gamma(2.0, 120.0, n) * ramp),
        rng.exponential(0.8, n),
    )
    pool_timeout = checkout & in_pool & (pool_wait_ms > 5000)
    pool_wait_ms = np.minimum(pool_wait_ms, 5000.0)

    uses_inventory = np.isin(route, ["GET /product/{id}", "POST /checkout", "GET /cart"])
    in_election = (minute >= ELECTION_MIN) & (minute < ELECTION_MIN + 1.2)
    attempts = np.where(uses_inventory & in_election, rng.choice([1, 2, 3], n, p=[0.2, 0.35, 0.45]), 1)
    inventory_failed = uses_inventory & in_election & (attempts == 3) & (rng.random(n) < 0.5)

    chronic_error = (tenant == CHRONIC_TENANT) & (route == "GET /search") & (rng.random(n) < 0.45)
    background_error = rng.random(n) < 0.004
    decoy_extra_ms = np.where(
        (platform == "android") & (route == "GET /search") & (minute >= DEPLOY_MIN), rng.uniform(500, 900, n), 0.0
    )
    return Traffic(
        n=n, t_s=t_s, route=route, region=region, client_version=client_version, platform=platform,
        tenant=tenant, user=user, gateway_host=gateway_host, flag_new_checkout=flag_new_checkout,
        flag_dark_mode=flag_dark_mode, client_retry=client_retry, sca=sca, sca_slow=sca_slow,
        pool_wait_ms=pool_wait_ms, pool_timeout=pool_timeout, inventory_attempts=attempts,
        inventory_failed=inventory_failed, chronic_error=chronic_error, background_error=background_error,
        decoy_extra_ms=decoy_extra_ms,
    )


def at_minute(minute: float) -> datetime:
    return WINDOW_START + timedelta(minutes=minute)


def ground_truth() -> dict[str, object]:
    """What the demo injected, for tests and for checking the analysis by eye."""
    return {
        "window": (WINDOW_START, WINDOW_START + timedelta(seconds=WINDOW_S)),
        "incident_start": at_minute(DEPLOY_MIN),
        "slow_cohort": dict(SLOW_COHORT),
        "slow_cohort_http_status": 200,
        "slow_cohort_duration_ms": (10_000.0, 12_500.0),
        "slow_service": "fraud",  # the time is spent in fraud's eu-west-1 model, called by the new payments path
        "slow_edge": ("payments", "fraud"),
        "deploy": {"service": "payments", "version": "2.14.0", "at": at_minute(DEPLOY_MIN)},
        "never_tripping_breaker": "payments->fraud",
        "pool_saturation": {"pool": "payments-db", "from": at_minute(POOL_START_MIN), "to": at_minute(POOL_END_MIN)},
        "slow_query_pid": 48213,
        "leader_election": {"service": "inventory", "at": at_minute(ELECTION_MIN)},
        "retry_storm": (at_minute(ELECTION_MIN), at_minute(STORM_END_MIN)),
        "chronic_tenant": CHRONIC_TENANT,
        "decoy_cohort": {"platform": "android", "http.route": "GET /search"},
    }


def hex_ids(rng: np.random.Generator, n: int, n_bytes: int) -> pl.Series:
    """``n`` random lowercase hex ids of ``n_bytes`` bytes (no zero bytes, so numpy keeps every byte)."""
    raw = rng.integers(1, 256, size=n * n_bytes, dtype=np.uint8).tobytes()
    return pl.Series(np.frombuffer(raw, dtype=f"S{n_bytes}")).bin.encode("hex")
