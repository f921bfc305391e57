"""The demo incident's requests: who sent them, when, and what went wrong for each.

One row per request with its root attributes and the per-request faults the incident injects.
``demo_spans`` turns these rows into span trees. Everything is drawn from one seeded
``numpy.random.Generator`` so the same seed gives the same frames, row for row.

Categorical attributes are small-int codes into the vocabularies below (``ROUTES[route]``,
``REGIONS[region]``, ``CLIENTS[client]``, tenant rank, user number); strings are only built
once, when the spans frame is assembled. Values that only matter for some requests (pool waits,
inventory retries, the slow SCA check, ...) are drawn only for those requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
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
SEARCH, PRODUCT, CHECKOUT, CART, ACCOUNT = range(len(ROUTES))  # codes into ROUTES
INVENTORY_ROUTES = ("GET /product/{id}", "POST /checkout", "GET /cart")
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1", "sa-east-1"]
REGION_P = [0.32, 0.18, 0.20, 0.14, 0.10, 0.06]
# (client_version, platform, share)
CLIENTS = [
    ("5.2.0", "ios", 0.10), ("5.2.0", "android", 0.06), ("5.1.3", "ios", 0.14), ("5.1.3", "android", 0.12),
    ("5.1.2", "android", 0.08), ("5.0.9", "ios", 0.06), ("4.9.1", "android", 0.09), ("4.8.0", "android", 0.04),
    ("web-2026.03", "web", 0.21), ("web-2026.02", "web", 0.10),
]
N_TENANTS = 320
TENANT_ZIPF_A = 1.3
N_USERS = 40_000
N_GATEWAYS = 6
CHRONIC_TENANT = "t-0004"
SLOW_COHORT = {"region": "eu-west-1", "client_version": "5.2.0"}
SCA_REGIONS = ("eu-west-1", "eu-central-1")


def tenant_name(rank: int) -> str:
    return f"t-{rank:04d}"


def is_any(codes: np.ndarray, names: list[str], *wanted: str) -> np.ndarray:
    """Bool mask: the code's name is one of ``wanted`` (one table lookup per row, no string compare)."""
    return np.array([name in wanted for name in names])[codes]


@dataclass(frozen=True)
class Traffic:
    """Per-request draws (numpy arrays of length n) shared by the span builder."""

    n: int
    t_s: np.ndarray  # offset from WINDOW_START, seconds (sorted)
    route: np.ndarray  # int8 code into ROUTES
    region: np.ndarray  # int8 code into REGIONS
    client: np.ndarray  # int8 code into CLIENTS (client_version, platform)
    tenant: np.ndarray  # int16 tenant rank 1..N_TENANTS, Zipf-skewed ("t-0004" is rank 4)
    user: np.ndarray  # int32 user number 0..N_USERS-1 ("u-000123")
    gateway_host: np.ndarray  # int8 gateway instance 0..N_GATEWAYS-1
    flag_new_checkout: np.ndarray  # bool: "on"
    flag_dark_mode: np.ndarray  # bool: "on"
    client_retry: np.ndarray  # 0 for a first attempt, 1..2 for a client-side retry of the whole request
    sca: np.ndarray  # bool: request passes the strong-customer-auth check in payments
    sca_slow: np.ndarray  # bool: that check hangs ~10.5 s (the deploy's regression)
    pool_wait_ms: np.ndarray  # time spent acquiring a payments DB connection (checkout only; 0 otherwise)
    pool_timeout: np.ndarray  # bool: acquire gave up after 5 s -> HTTP 500
    inventory_attempts: np.ndarray  # 1..3 calls to inventory (retries after the leader election)
    inventory_failed: np.ndarray  # bool: the last inventory attempt failed too -> HTTP 503
    chronic_error: np.ndarray  # bool: the chronically bad tenant's search failure (502)
    background_error: np.ndarray  # bool: unrelated 500s sprinkled everywhere
    decoy_extra_ms: np.ndarray  # extra latency within SLO for android search after the deploy

    def part(self, lo: int, hi: int) -> Traffic:
        """Requests ``lo:hi`` (views, no copies)."""
        arrays = {f.name: getattr(self, f.name)[lo:hi] for f in fields(self) if f.name != "n"}
        return replace(self, n=hi - lo, **arrays)


def _pick(rng: np.random.Generator, p: list[float], n: int) -> np.ndarray:
    """``n`` draws of category codes with probabilities ``p`` (code = how many cdf edges the uniform passed)."""
    edges = (np.cumsum(p) / math.fsum(p))[:-1]
    uniform = rng.random(n)
    if len(p) > 16:
        return np.searchsorted(edges, uniform, side="right").astype(np.int16)
    codes = np.zeros(n, dtype=np.int8)
    for edge in edges:  # a few vectorised compares beat a binary search per row
        codes += uniform >= edge
    return codes


def _zipf_capped_p(a: float, cap: int) -> list[float]:
    """P(min(Zipf(a), cap) = k) for k = 1..cap: the last rank takes the whole tail."""
    head = [k ** -a for k in range(1, cap)]
    # Σ_{k≥cap} k^-a by Euler–Maclaurin (error far below float precision for cap in the hundreds)
    tail = (cap ** (1 - a) / (a - 1) + cap ** -a / 2 + a * cap ** (-a - 1) / 12
            - a * (a + 1) * (a + 2) * cap ** (-a - 3) / 720)
    total = math.fsum(head) + tail
    return [h / total for h in head] + [tail / total]


def _sorted_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` sorted U(lo, hi) draws without a sort: normalised sums of exponential spacings."""
    spacings = rng.standard_exponential(n + 1)
    cum = np.cumsum(spacings)
    return lo + (hi - lo) * cum[:n] / cum[n]


def _at(mask: np.ndarray, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """A dense float array: ``values`` (one per masked row) where ``mask``, ``fill`` elsewhere."""
    out = np.full(mask.size, fill)
    out[mask] = values
    return out


def draw_traffic(rng: np.random.Generator, n_requests: int) -> Traffic:
    """Draw the demo's requests: a steady 60-minute load plus a client retry storm after the election."""
    n_base = n_requests
    n_storm = int(n_requests * 0.06)
    n = n_base + n_storm
    base_t = _sorted_uniform(rng, 0, WINDOW_S, n_base)
    storm_t = _sorted_uniform(rng, ELECTION_MIN * 60 + 5, STORM_END_MIN * 60, n_storm)
    # merge the two sorted runs: where each storm request lands among all requests
    storm_at = np.searchsorted(base_t, storm_t, side="right") + np.arange(n_storm)
    is_storm = np.zeros(n, dtype=bool)
    is_storm[storm_at] = True
    t_s = np.empty(n)
    t_s[storm_at] = storm_t
    t_s[~is_storm] = base_t
    client_retry = np.zeros(n, dtype=np.int8)
    client_retry[storm_at] = rng.integers(1, 3, n_storm, dtype=np.int8)

    route = _pick(rng, ROUTE_P, n)
    region = _pick(rng, REGION_P, n)
    client = _pick(rng, [c[2] for c in CLIENTS], n)
    tenant = (_pick(rng, _zipf_capped_p(TENANT_ZIPF_A, N_TENANTS), n) + 1).astype(np.int16)
    user = rng.integers(0, N_USERS, n, dtype=np.int32)
    gateway_host = rng.integers(0, N_GATEWAYS, n, dtype=np.int8)
    flag_new_checkout = rng.random(n, dtype=np.float32) < 0.5
    flag_dark_mode = (t_s >= FLAG_CHANGE_MIN * 60) & (rng.random(n, dtype=np.float32) < 0.3)

    minute = t_s / 60.0
    version = [c[0] for c in CLIENTS]
    sca = is_any(client, version, "5.2.0") & is_any(region, REGIONS, *SCA_REGIONS)
    cohort = is_any(client, version, SLOW_COHORT["client_version"]) & is_any(region, REGIONS, SLOW_COHORT["region"])
    # The payments v2.14.0 rollout reaches all hosts over two minutes.
    in_cohort = np.flatnonzero(cohort)
    k = in_cohort.size
    deployed = minute[in_cohort] >= DEPLOY_MIN + rng.uniform(0, 2, k)
    sca_slow = np.zeros(n, dtype=bool)
    sca_slow[in_cohort] = deployed & (rng.random(k) < 0.93)

    checkout = route == CHECKOUT
    in_pool = (minute >= POOL_START_MIN) & (minute < POOL_END_MIN)
    # Most checkouts get a connection after a short queue; the unlucky ones wait behind the held
    # connections until Hikari's 5 s connectionTimeout.
    queued = checkout & in_pool
    q_min = minute[queued]
    ramp = np.clip(np.minimum(q_min - POOL_START_MIN, POOL_END_MIN - q_min) / 2.0, 0, 1)
    unlucky = rng.random(q_min.size) < 0.14 * ramp
    wait = np.where(unlucky, rng.uniform(2500, 5600, q_min.size), rng.gamma(2.0, 120.0, q_min.size) * ramp)
    pool_wait_ms = _at(checkout & ~in_pool, rng.exponential(0.8, int(np.count_nonzero(checkout & ~in_pool))))
    pool_wait_ms[queued] = wait
    pool_timeout = np.zeros(n, dtype=bool)
    pool_timeout[queued] = wait > 5000
    np.minimum(pool_wait_ms, 5000.0, out=pool_wait_ms)

    in_election = (minute >= ELECTION_MIN) & (minute < ELECTION_MIN + 1.2)
    retrying = is_any(route, ROUTES, *INVENTORY_ROUTES) & in_election
    k = int(np.count_nonzero(retrying))
    attempts = np.ones(n, dtype=np.int8)
    attempts[retrying] = (_pick(rng, [0.2, 0.35, 0.45], k) + 1)
    inventory_failed = np.zeros(n, dtype=bool)
    inventory_failed[retrying] = (attempts[retrying] == 3) & (rng.random(k) < 0.5)

    chronic = (tenant == int(CHRONIC_TENANT[2:])) & (route == SEARCH)
    chronic_error = np.zeros(n, dtype=bool)
    chronic_error[chronic] = rng.random(int(np.count_nonzero(chronic))) < 0.45
    background_error = rng.random(n, dtype=np.float32) < 0.004
    decoy = is_any(client, [c[1] for c in CLIENTS], "android") & (route == SEARCH) & (minute >= DEPLOY_MIN)
    decoy_extra_ms = _at(decoy, rng.uniform(500, 900, int(np.count_nonzero(decoy))))
    return Traffic(
        n=n, t_s=t_s, route=route, region=region, client=client, tenant=tenant, user=user,
        gateway_host=gateway_host, flag_new_checkout=flag_new_checkout, flag_dark_mode=flag_dark_mode,
        client_retry=client_retry, sca=sca, sca_slow=sca_slow, pool_wait_ms=pool_wait_ms,
        pool_timeout=pool_timeout, inventory_attempts=attempts, inventory_failed=inventory_failed,
        chronic_error=chronic_error, background_error=background_error, decoy_extra_ms=decoy_extra_ms,
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


def random_ids(rng: np.random.Generator, n: int, n_bytes: int) -> np.ndarray:
    """``n`` random ids of ``n_bytes`` bytes, a numpy ``S<n_bytes>`` array (no zero bytes: numpy keeps every byte)."""
    raw = rng.integers(1, 256, size=n * n_bytes, dtype=np.uint8)
    return raw.view(f"S{n_bytes}")


def hex_series(ids: np.ndarray) -> pl.Series:
    """Lowercase hex strings of ``random_ids`` output."""
    return pl.Series(ids).bin.encode("hex")


def hex_ids(rng: np.random.Generator, n: int, n_bytes: int) -> pl.Series:
    """``n`` random lowercase hex ids of ``n_bytes`` bytes."""
    return hex_series(random_ids(rng, n, n_bytes))
