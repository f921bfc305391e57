"""The demo incident's breakers, pools, pool holders and change events, scraped every 15 s."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import polars as pl

from connectors.demo.traffic import (
    CHECKOUT, DEPLOY_MIN, ELECTION_MIN, FLAG_CHANGE_MIN, INVENTORY_ROUTES, POOL_END_MIN, POOL_START_MIN, ROUTES,
    STORM_END_MIN, WINDOW_S, WINDOW_START, Traffic, at_minute, is_any,
)
from model.schemas import BREAKERS, EVENTS, POOL_HOLDERS, POOLS

SCRAPE_S = 15
SOURCE = "demo"
SLOW_QUERY = ("SELECT l.account_id, sum(l.amount) FROM ledger l JOIN orders o ON o.id = l.order_id "
              "WHERE o.created_at > now() - interval '90 days' AND o.customer_email = 'ops@example.com' "
              "GROUP BY 1 FOR UPDATE")
SLOW_QUERY_PID = 48213


def _grid() -> np.ndarray:
    return np.arange(0, WINDOW_S, SCRAPE_S, dtype=np.float64)


def _ts(seconds: np.ndarray) -> pl.Series:
    base_us = int(WINDOW_START.timestamp() * 1e6)
    return pl.Series("ts", (seconds * 1e6).astype(np.int64) + base_us).cast(pl.Datetime("us", "UTC"))


def _per_scrape(tr: Traffic, mask: np.ndarray) -> np.ndarray:
    """How many masked requests fall in each scrape interval."""
    return np.bincount((tr.t_s[mask] // SCRAPE_S).astype(np.int64), minlength=WINDOW_S // SCRAPE_S)


def build_breakers(rng: np.random.Generator, tr: Traffic) -> pl.DataFrame:
    grid = _grid()
    minute = grid / 60
    frames = []
    instances = [f"payments-{i}" for i in range(4)]
    # payments->fraud: slow-call threshold 15 s > the real ~10.5 s, so it never opens.
    fraud_calls = _per_scrape(tr, tr.sca | (tr.route == CHECKOUT))
    for inst in instances:
        share = rng.uniform(0.22, 0.28)
        frames.append(pl.DataFrame({
            "ts": _ts(grid), "source": SOURCE, "breaker": "payments->fraud", "instance": inst, "state": "closed",
            "failure_rate": rng.uniform(0.0, 0.01, grid.size), "slow_call_rate": np.zeros(grid.size),
            "calls": np.cumsum(np.round(fraud_calls * share)).astype(np.int64),
            "not_permitted_calls": np.zeros(grid.size, dtype=np.int64),
        }))
    # gateway->inventory: opens for 30 s after the election, half-opens, closes; the 15 s scrape catches part.
    inv_calls = _per_scrape(tr, is_any(tr.route, ROUTES, *INVENTORY_ROUTES))
    open_from, open_to = ELECTION_MIN * 60 + 20, ELECTION_MIN * 60 + 52
    for i in range(6):
        inst = f"gateway-{i}"
        skew = rng.uniform(-4, 4)
        state = np.where((grid >= open_from + skew) & (grid < open_to + skew), "open",
                         np.where((grid >= open_to + skew) & (grid < open_to + skew + SCRAPE_S), "half_open", "closed"))
        blocked = np.where(state == "open", rng.integers(40, 90, grid.size), 0)
        fail = np.where((minute >= ELECTION_MIN) & (minute < ELECTION_MIN + 1.2), rng.uniform(0.55, 0.8, grid.size),
                        rng.uniform(0.0, 0.01, grid.size))
        frames.append(pl.DataFrame({
            "ts": _ts(grid), "source": SOURCE, "breaker": "gateway->inventory", "instance": inst, "state": state,
            "failure_rate": fail, "slow_call_rate": rng.uniform(0, 0.01, grid.size),
            "calls": np.cumsum(np.round(inv_calls / 6)).astype(np.int64),
            "not_permitted_calls": np.cumsum(blocked).astype(np.int64),
        }))
    # checkout->payments: a 6 s open between scrapes during pool exhaustion; only the blocked-call counter shows it.
    pay_calls = _per_scrape(tr, tr.route == CHECKOUT)
    blip = (grid >= (POOL_START_MIN + 6) * 60) & (grid < (POOL_START_MIN + 6) * 60 + SCRAPE_S)
    for inst in [f"checkout-{i}" for i in range(4)]:
        frames.append(pl.DataFrame({
            "ts": _ts(grid), "source": SOURCE, "breaker": "checkout->payments", "instance": inst, "state": "closed",
            "failure_rate": np.where((minute >= POOL_START_MIN) & (minute < POOL_END_MIN),
                                     rng.uniform(0.08, 0.2, grid.size), rng.uniform(0, 0.01, grid.size)),
            "slow_call_rate": np.where((minute >= POOL_START_MIN) & (minute < POOL_END_MIN),
                                       rng.uniform(0.2, 0.45, grid.size), rng.uniform(0, 0.01, grid.size)),
            "calls": np.cumsum(np.round(pay_calls / 4)).astype(np.int64),
            "not_permitted_calls": np.cumsum(np.where(blip, 37, 0)).astype(np.int64),
        }))
    return pl.concat(frames).with_columns(pl.col("calls", "not_permitted_calls").cast(pl.Int64)).select(
        [pl.col(c).cast(t) for c, t in BREAKERS.items()]).sort("ts", "breaker", "instance")


def build_pools(rng: np.random.Generator, tr: Traffic) -> pl.DataFrame:
    grid = _grid()
    minute = grid / 60
    frames = []
    saturated = (minute >= POOL_START_MIN + 0.5) & (minute < POOL_END_MIN - 0.5)
    ramp = np.clip(np.minimum(minute - POOL_START_MIN, POOL_END_MIN - minute) / 2.0, 0, 1)
    timeouts = _per_scrape(tr, tr.pool_timeout)
    for i in range(4):
        inst = f"payments-{i}"
        active = np.where(saturated, 10, np.clip(np.round(rng.normal(2.2, 0.8, grid.size) + 8 * ramp), 0, 10))
        pending = np.where(saturated, rng.integers(6, 28, grid.size), 0)
        frames.append(pl.DataFrame({
            "ts": _ts(grid), "source": SOURCE, "pool": "payments-db", "instance": inst, "active": active,
            "idle": 10 - active, "pending": pending, "max": 10,
            "timeouts": np.cumsum(np.round(timeouts / 4)).astype(np.int64),
            "acquire_p99_ms": np.where(saturated, rng.uniform(4200, 5000, grid.size), rng.uniform(0.5, 3, grid.size)),
        }))
    for pool, hosts, mx, base in (("inventory-db", 4, 20, 5.0), ("account-db", 2, 10, 2.0), ("pgbouncer:ledger", 1, 20, 6.0)):
        for i in range(hosts):
            active = np.clip(np.round(rng.normal(base, 1.2, grid.size)), 0, mx - 3)
            if pool == "pgbouncer:ledger":  # the server side of the same exhaustion: every server connection busy
                active = np.where(saturated, mx, active)
            frames.append(pl.DataFrame({
                "ts": _ts(grid), "source": SOURCE, "pool": pool, "instance": f"{pool.split('-')[0]}-{i}", "active": active,
                "idle": mx - active, "pending": np.where(active >= mx, rng.integers(0, 4, grid.size), 0), "max": mx,
                "timeouts": np.zeros(grid.size, dtype=np.int64), "acquire_p99_ms": rng.uniform(0.5, 4, grid.size),
            }))
    return pl.concat(frames, how="vertical_relaxed").select(
        [pl.col(c).cast(t) for c, t in POOLS.items()]).sort("ts", "pool", "instance")


def build_pool_holders(rng: np.random.Generator) -> pl.DataFrame:
    """pg_stat_activity as scraped each minute: the slow report query and the sessions stuck behind it."""
    rows = []
    query_start = at_minute(POOL_START_MIN)
    for minute in range(int(POOL_START_MIN), int(POOL_END_MIN) + 1):
        ts = at_minute(minute + 0.5)
        rows.append((ts, SLOW_QUERY_PID, "active", SLOW_QUERY, query_start, query_start, "IO", "reporting-job",
                     "10.4.7.21"))
        for k in range(9):
            pid = 48300 + k
            started = at_minute(max(POOL_START_MIN, minute - rng.uniform(0, 0.3)))
            rows.append((ts, pid, "active", "UPDATE ledger SET balance = balance - $1 WHERE id = $2", started,
                         started - timedelta(milliseconds=40), "Lock", f"payments-{k % 4}", f"10.4.3.{10 + k % 4}"))
    rows.append((at_minute(20), 41002, "idle", "COMMIT", at_minute(19.9), None, "Client", "payments-1", "10.4.3.11"))
    return pl.DataFrame(
        rows, orient="row",
        schema=["ts", "pid", "state", "query", "query_start", "xact_start", "wait_event_type", "application_name",
                "client_addr"],
    ).with_columns(source=pl.lit(SOURCE)).select([pl.col(c).cast(t) for c, t in POOL_HOLDERS.items()]).sort("ts", "pid")


def build_events() -> pl.DataFrame:
    def ev(minute: float, kind: str, service: str, description: str, **attrs: object) -> tuple:
        return (at_minute(minute), kind, service, description, json.dumps(attrs, sort_keys=True))

    rows = [
        ev(0, "breaker_config", "payments", "payments->fraud breaker config", breaker="payments->fraud",
           slow_call_duration_threshold_ms=15000, slow_call_rate_threshold=0.5, failure_rate_threshold=0.5,
           minimum_number_of_calls=100, timeout_ms=20000),
        ev(0, "breaker_config", "gateway", "gateway->inventory breaker config", breaker="gateway->inventory",
           slow_call_duration_threshold_ms=2000, slow_call_rate_threshold=0.5, failure_rate_threshold=0.5,
           minimum_number_of_calls=20, timeout_ms=1000),
        ev(0, "breaker_config", "checkout", "checkout->payments breaker config", breaker="checkout->payments",
           slow_call_duration_threshold_ms=3000, slow_call_rate_threshold=0.5, failure_rate_threshold=0.5,
           minimum_number_of_calls=50, timeout_ms=6000),
        ev(FLAG_CHANGE_MIN, "flag_change", "web", "feature flag dark_mode rolled out to 30 %", flag="dark_mode",
           rollout=0.3),
        ev(DEPLOY_MIN, "deploy", "payments", "payments 2.13.4 → 2.14.0 (SCA check via fraud eu-west-1 model)",
           version="2.14.0", previous="2.13.4"),
        ev(POOL_START_MIN, "config_change", "reporting", "ad-hoc ledger report started by reporting-job",
           pid=SLOW_QUERY_PID),
        ev(ELECTION_MIN, "leader_election", "inventory", "inventory leader lost (lease expired); inventory-2 elected",
           old_leader="inventory-0", new_leader="inventory-2"),
    ]
    for i in range(6):
        rows.append(ev(ELECTION_MIN + (20 + i) / 60, "breaker_transition", "gateway",
                       f"gateway->inventory on gateway-{i}: CLOSED → OPEN", breaker="gateway->inventory",
                       instance=f"gateway-{i}", from_state="closed", to_state="open"))
        rows.append(ev(ELECTION_MIN + (52 + i) / 60, "breaker_transition", "gateway",
                       f"gateway->inventory on gateway-{i}: OPEN → HALF_OPEN", breaker="gateway->inventory",
                       instance=f"gateway-{i}", from_state="open", to_state="half_open"))
        rows.append(ev(ELECTION_MIN + (70 + i) / 60, "breaker_transition", "gateway",
                       f"gateway->inventory on gateway-{i}: HALF_OPEN → CLOSED", breaker="gateway->inventory",
                       instance=f"gateway-{i}", from_state="half_open", to_state="closed"))
    rows.append(ev(STORM_END_MIN + 3, "deploy", "search", "search 5.0.2 config reload (no version change)",
                   version="5.0.2"))
    return pl.DataFrame(rows, orient="row", schema=list(EVENTS.keys())).select(
        [pl.col(c).cast(t) for c, t in EVENTS.items()]).sort("ts")
