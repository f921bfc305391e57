"""The breaker/pool/timeline analyses find what the demo incident injected (connectors.demo.ground_truth)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from analysis.breakers import config_from_events, open_periods, should_have_tripped
from analysis.pools import exhaustion_chain
from analysis.timeline import retry_storms, timeline
from config import SloConfig


@pytest.fixture(scope="module")
def demo() -> tuple[dict[str, pl.DataFrame], dict]:
    from connectors.demo import demo_frames, ground_truth
    return demo_frames(requests=30000), ground_truth()


def test_never_tripping_breaker_is_flagged_with_its_reason(demo) -> None:  # noqa: ANN001
    frames, truth = demo
    configs = config_from_events(frames["events"])
    flagged = should_have_tripped(frames["breakers"], frames["spans"], SloConfig(), configs)
    assert set(flagged["breaker"].to_list()) == {truth["never_tripping_breaker"]}
    assert set(flagged["reason"].to_list()) == {"slow_call_threshold_above_latency"}
    assert flagged["window_start"].min() <= truth["incident_start"] + timedelta(minutes=2)


def test_pool_exhaustion_chain_reaches_the_slow_query_and_the_checkout_users(demo) -> None:  # noqa: ANN001
    frames, truth = demo
    chain = exhaustion_chain(frames["pools"], frames["pool_holders"], frames["spans"])
    target = chain.periods.filter(pl.col("pool") == truth["pool_saturation"]["pool"])
    assert target.height >= 1
    assert abs((target["start"].min() - truth["pool_saturation"]["from"]).total_seconds()) <= 60
    assert chain.holders.filter(pl.col("pool") == truth["pool_saturation"]["pool"])["pid"][0] == truth["slow_query_pid"]
    assert chain.stuck_spans.height > 0 and chain.stuck_spans["acquire"].all()
    route = chain.cohort.filter(pl.col("attribute") == "http.route").row(0, named=True)
    assert route["value"] == "POST /checkout" and route["share"] == pytest.approx(1.0)
    assert chain.affected_users > 0 and chain.affected_requests >= chain.affected_users


def test_retry_storm_follows_the_leader_election(demo) -> None:  # noqa: ANN001
    frames, truth = demo
    storms = retry_storms(frames["spans"], frames["events"])
    assert storms["trigger_kind"].to_list() == ["leader_election"]
    start, end = truth["retry_storm"]
    assert start <= storms["ts"].item() <= end


def test_breaker_open_periods_come_from_the_transitions(demo) -> None:  # noqa: ANN001
    frames, _ = demo
    periods = open_periods(frames["breakers"], frames["events"]).filter(pl.col("breaker") == "gateway->inventory")
    assert periods.height == 6 and periods["evidence"].str.contains("transition").all()


def test_timeline_puts_everything_on_one_axis(demo) -> None:  # noqa: ANN001
    frames, _ = demo
    merged = timeline(frames["events"], breakers=frames["breakers"], pools=frames["pools"], spans=frames["spans"])
    kinds = set(merged["kind"].to_list())
    assert {"leader_election", "deploy", "breaker_transition", "pool_saturation", "retry_storm"} <= kinds
    assert merged["ts"].is_sorted()
