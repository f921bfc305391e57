"""analysis.breakers: open periods from three kinds of evidence, open_now, should_have_tripped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analysis.breakers import (
    BREAKER_CONFIG,
    config_from_events,
    open_now,
    open_periods,
    should_have_tripped,
    transitions,
)
from config import SloConfig
from model.schemas import BREAKERS, EVENTS
from model.validate import validate

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def breakers(states: list[str], blocked: list[int] | None = None, *, name: str = "pay", instance: str | None = "i1",
             step_s: int = 10, source: str = "prom") -> pl.DataFrame:
    n = len(states)
    frame = pl.DataFrame({
        "ts": [at(i * step_s) for i in range(n)], "source": [source] * n, "breaker": [name] * n,
        "instance": [instance] * n, "state": states, "failure_rate": [0.1] * n, "slow_call_rate": [None] * n,
        "calls": [i * 10 for i in range(n)],
        "not_permitted_calls": blocked if blocked is not None else [0] * n,
    }, schema=BREAKERS)
    return validate(frame, "breakers")


def transition_events(
    moves: list[tuple[float, str, str]], name: str = "pay", instance: str | None = "i1"
) -> pl.DataFrame:
    rows = [{"ts": at(s), "kind": "breaker_transition", "service": "checkout", "description": "",
             "attrs": json.dumps({"breaker": name, "instance": instance, "from_state": a, "to_state": b})}
            for s, a, b in moves]
    return pl.DataFrame(rows, schema=EVENTS)


def test_open_run_from_the_state_gauge() -> None:
    periods = open_periods(breakers(["closed", "open", "open", "closed", "closed"]))
    [row] = periods.rows(named=True)
    fields = (row["start"], row["end"], row["duration_s"], row["evidence"], row["ongoing"])
    assert fields == (at(10), at(30), 20.0, "state", False)


def test_blocked_calls_reveal_an_open_the_gauge_missed() -> None:
    periods = open_periods(breakers(["closed"] * 4, [0, 0, 7, 7]))
    [row] = periods.rows(named=True)
    fields = (row["start"], row["end"], row["evidence"], row["blocked_calls"])
    assert fields == (at(10), at(20), "not_permitted_calls", 7)


def test_transition_events_alone() -> None:
    events = transition_events([(5, "closed", "open"), (8, "open", "half_open"), (9, "half_open", "closed")])
    [row] = open_periods(breakers(["closed"] * 3), events).rows(named=True)
    assert (row["start"], row["end"], row["evidence"]) == (at(5), at(8), "transition")


def test_overlapping_evidence_merges() -> None:
    events = transition_events([(5, "closed", "open"), (25, "open", "half_open")])
    frame = breakers(["closed", "open", "open", "closed"], [0, 0, 40, 40])
    [row] = open_periods(frame, events).rows(named=True)
    assert (row["start"], row["end"], row["evidence"], row["blocked_calls"]) == (at(5), at(30), "state+transition", 40)


def test_still_open_is_ongoing_and_counter_resets_count_from_zero() -> None:
    [row] = open_periods(breakers(["closed", "open", "open", "open"], [0, 5, 8, 2])).rows(named=True)
    assert row["ongoing"] and row["end"] is None
    assert row["duration_s"] == 20.0 and row["blocked_calls"] == 5 + 3 + 2


def test_no_open_at_all() -> None:
    assert open_periods(breakers(["closed"] * 3)).height == 0


def test_actuator_state_transition_attrs_are_understood() -> None:
    rows = [{"ts": at(1), "kind": "breaker_transition", "service": "svc", "description": "",
             "attrs": json.dumps({"name": "pay", "stateTransition": "CLOSED_TO_OPEN"})}]
    parsed = transitions(pl.DataFrame(rows, schema=EVENTS)).row(0, named=True)
    assert (parsed["breaker"], parsed["from_state"], parsed["to_state"]) == ("pay", "closed", "open")


def test_open_now_reports_since_when() -> None:
    frame = pl.concat([breakers(["closed", "open", "open"], name="a"), breakers(["open", "closed", "closed"], name="b"),
                       breakers(["closed", "closed", "half_open"], name="c")])
    now = open_now(frame)
    assert now["breaker"].to_list() == ["a", "c"]
    assert now.filter(pl.col("breaker") == "a").row(0, named=True)["since"] == at(10)
    assert now.filter(pl.col("breaker") == "c")["state"].item() == "half_open"


def _calls(window_start_s: int, n: int, slow_ms: float, bad_share: float, breaker: str = "pay") -> pl.DataFrame:
    slow_n = int(n * bad_share)
    return pl.DataFrame({
        "trace_id": [f"{i:032x}" for i in range(n)], "service": ["checkout"] * n, "operation": ["POST /pay"] * n,
        "start": [at(window_start_s + i * 0.1) for i in range(n)],
        "duration_ms": [slow_ms] * slow_n + [50.0] * (n - slow_n), "status": ["ok"] * n, "http_status": [200] * n,
        "is_root": [False] * n, "attr.peer.service": [breaker] * n,
    }, schema_overrides={"http_status": pl.Int32})


def _config(**values: float) -> pl.DataFrame:
    return pl.DataFrame([{"breaker": "pay", **values}], schema=BREAKER_CONFIG)


def test_should_have_tripped_slow_success_under_a_lax_slow_call_threshold() -> None:
    # minute 0 degraded + closed; minute 1 healthy; minute 2 degraded but the breaker opened
    spans = pl.concat([_calls(0, 100, 3000.0, 0.5), _calls(60, 100, 3000.0, 0.0), _calls(120, 100, 3000.0, 0.5)])
    state = breakers(["closed"] * 12 + ["open"] * 6, step_s=10)
    config = _config(slow_call_duration_threshold_ms=5000.0, timeout_ms=10000.0)
    flagged = should_have_tripped(state, spans, SloConfig(default_ms=1000), config)
    [row] = flagged.rows(named=True)
    assert row["window_start"] == T0 and row["calls"] == 100
    assert row["p99_ms"] == pytest.approx(3000.0) and row["bad_rate"] == pytest.approx(0.5)
    assert row["reason"] == "slow_call_threshold_above_latency"
    assert row["reasons"] == "slow_call_threshold_above_latency; timeout_longer_than_slo"


def test_a_short_open_seen_only_in_blocked_calls_clears_the_whole_episode() -> None:
    spans = pl.concat([_calls(0, 100, 3000.0, 0.5), _calls(60, 100, 3000.0, 0.5)])
    state = breakers(["closed"] * 12, [0] * 8 + [5] * 4, step_s=10)  # blocked calls at 01:20, gauge never open
    assert should_have_tripped(state, spans, SloConfig(default_ms=1000)).height == 0
    assert should_have_tripped(breakers(["closed"] * 12, step_s=10), spans, SloConfig(default_ms=1000)).height == 2


def test_should_have_tripped_minimum_calls_and_unknown_config() -> None:
    spans = _calls(0, 40, 2500.0, 0.3)
    state = breakers(["closed"] * 6)
    flagged = should_have_tripped(state, spans, SloConfig(default_ms=1000), _config(minimum_number_of_calls=100))
    [row] = flagged.rows(named=True)
    assert row["reason"] == "minimum_calls_not_reached"
    [row] = should_have_tripped(state, spans, SloConfig(default_ms=1000)).rows(named=True)
    assert row["reason"] == "config_unknown"


def test_healthy_callers_or_tiny_volume_are_not_flagged() -> None:
    state = breakers(["closed"] * 6)
    assert should_have_tripped(state, _calls(0, 100, 3000.0, 0.0), SloConfig(default_ms=1000)).height == 0
    assert should_have_tripped(state, _calls(0, 10, 3000.0, 0.9), SloConfig(default_ms=1000)).height == 0


def test_config_from_events_keeps_the_latest() -> None:
    rows = [{"ts": at(s), "kind": "breaker_config", "service": "pay", "description": "",
             "attrs": json.dumps({"breaker": "pay", "minimum_number_of_calls": n, "failure_rate_threshold": 0.5})}
            for s, n in ((0, 10), (5, 20))]
    [row] = config_from_events(pl.DataFrame(rows, schema=EVENTS)).rows(named=True)
    assert row["minimum_number_of_calls"] == 20 and row["failure_rate_threshold"] == 0.5


def test_breaker_windows_keep_every_window_with_its_verdict() -> None:
    from analysis.breakers import breaker_windows

    spans = pl.concat([_calls(0, 100, 3000.0, 0.5), _calls(60, 100, 3000.0, 0.0), _calls(120, 100, 3000.0, 0.5)])
    state = breakers(["closed"] * 12 + ["open"] * 6, step_s=10)
    windows = breaker_windows(state, spans, SloConfig(default_ms=1000))
    assert windows["window_start"].to_list() == [T0, at(60), at(120)]
    assert windows["degraded"].to_list() == [True, False, True]
    assert windows["acted"].to_list() == [False, False, True]
    assert windows["should_have_tripped"].to_list() == [True, False, False]
