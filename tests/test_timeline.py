"""analysis.timeline: events merged with derived breaker, pool and retry-storm markers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analysis.timeline import retry_storms, timeline
from model.schemas import EVENTS
from tests.test_breakers import breakers
from tests.test_pools import INCIDENT, pools

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ELECTION_S = 300


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def election() -> pl.DataFrame:
    return pl.DataFrame([{"ts": at(ELECTION_S), "kind": "leader_election", "service": "etcd",
                          "description": "leader moved", "attrs": "{}"}], schema=EVENTS)


def traffic(after_requests: int, after_retries: int, *, with_retry_column: bool = True) -> pl.DataFrame:
    """10 requests per 10 s for 5 minutes, then ``after_requests`` per 10 s (``after_retries`` of them retries)
    for 30 s."""
    rows = []
    for bucket in range(0, ELECTION_S + 60, 10):
        storm = ELECTION_S <= bucket < ELECTION_S + 30
        n, retries = (after_requests, after_retries) if storm else (10, 0)
        rows += [(at(bucket + i * 10 / n), True, "1" if i < retries else "0") for i in range(n)]
    schema = {"start": pl.Datetime("us", "UTC"), "is_root": pl.Boolean, "attr.retry_attempt": pl.String}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame if with_retry_column else frame.drop("attr.retry_attempt")


def test_retry_storm_right_after_the_election() -> None:
    [row] = retry_storms(traffic(40, 30), election()).rows(named=True)
    assert (row["trigger_kind"], row["ts"], row["delay_s"]) == ("leader_election", at(ELECTION_S), 0.0)
    assert row["baseline_rps"] == pytest.approx(1.0) and row["peak_rps"] == pytest.approx(4.0)
    assert row["peak_retries"] == 30 and row["baseline_retries"] == 0.0


def test_rate_spike_without_retries_is_not_a_retry_storm() -> None:
    assert retry_storms(traffic(40, 0), election()).height == 0


def test_rate_only_when_spans_carry_no_retry_attribute() -> None:
    assert retry_storms(traffic(40, 0, with_retry_column=False), election()).height == 1


def test_no_spike_no_storm_and_no_trigger_no_storm() -> None:
    assert retry_storms(traffic(12, 5), election()).height == 0
    assert retry_storms(traffic(40, 30), election().clear()).height == 0


def test_breaker_recovery_is_a_trigger() -> None:
    attrs = json.dumps({"breaker": "pay", "from_state": "half_open", "to_state": "closed"})
    recovery = pl.DataFrame([{"ts": at(ELECTION_S), "kind": "breaker_transition", "service": "pay", "description": "",
                              "attrs": attrs}], schema=EVENTS)
    assert retry_storms(traffic(40, 30), recovery)["trigger_kind"].to_list() == ["breaker_recovery"]


def test_timeline_merges_events_and_derived_markers() -> None:
    spans = traffic(40, 30)
    merged = timeline(election(), breakers=breakers(["closed", "open", "closed"]), pools=pools(**INCIDENT), spans=spans)
    assert merged["ts"].is_sorted()
    kinds = dict(zip(merged["kind"].to_list(), merged["origin"].to_list(), strict=True))
    assert kinds == {"leader_election": "event", "breaker_transition": "derived", "pool_saturation": "derived",
                     "retry_storm": "derived"}
    assert merged.filter(pl.col("kind") == "breaker_transition").height == 2  # closed->open, open->closed
    onset = merged.filter(pl.col("kind") == "pool_saturation").row(0, named=True)
    assert onset["ts"] == datetime(2025, 3, 1, 12, 0, 10, tzinfo=UTC)
    assert json.loads(onset["attrs"])["peak_waiters"] == 6


def test_scraped_transitions_are_not_duplicated_when_events_exist() -> None:
    attrs = json.dumps({"breaker": "pay", "from_state": "closed", "to_state": "open"})
    events = pl.DataFrame([{"ts": at(10), "kind": "breaker_transition", "service": "pay", "description": "",
                            "attrs": attrs}], schema=EVENTS)
    merged = timeline(events, breakers=breakers(["closed", "open", "closed"]))
    assert merged.filter(pl.col("kind") == "breaker_transition")["origin"].to_list() == ["event"]
