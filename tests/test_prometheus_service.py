"""The Prometheus connector against a real Prometheus holding a backfilled incident."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest

from analysis.breakers import open_periods
from config import SourceConfig
from connectors.base import Query
from connectors.metrics.prometheus import PrometheusConnector
from tests.prom_incident import INSTANCE, Truth, not_permitted_at, pool_at, state_at
from tests.services import TIMINGS, prometheus_incident  # noqa: F401  (session fixture)

pytestmark = pytest.mark.services


def _connector(url: str) -> PrometheusConnector:
    return PrometheusConnector(SourceConfig(name="prom", type="prometheus", options={"url": url}, timeout_s=10))


def _offsets(frame: pl.DataFrame, truth: Truth) -> list[float]:
    return [(t - truth.start).total_seconds() for t in frame["ts"].to_list()]


def _run(server, kind: str, **params):  # noqa: ANN001
    truth: Truth = server.truth
    query = Query("A", kind, truth.start, truth.end, params)
    [result] = _connector(server.url).query([query])
    assert result.error is None, result.error.describe()
    return result


def test_health(prometheus_incident) -> None:  # noqa: F811
    health = _connector(prometheus_incident.url).check_health()
    assert health.status == "ok"
    print(f"prometheus fixture start: {TIMINGS.get('prometheus_incident', 0):.2f}s")


def test_breakers_match_what_was_written(prometheus_incident) -> None:  # noqa: F811
    truth = prometheus_incident.truth
    result = _run(prometheus_incident, "breakers")
    frame = result.frame
    assert "query_range" in result.executed_query and "resilience4j_circuitbreaker_state" in result.executed_query
    assert frame.height == 80 and frame["breaker"].unique().to_list() == ["payments"]
    assert frame["instance"].unique().to_list() == [INSTANCE]
    offsets = _offsets(frame, truth)
    assert frame["state"].to_list() == [state_at(int(t), truth) for t in offsets]
    assert frame["not_permitted_calls"].to_list() == [not_permitted_at(int(t), truth) for t in offsets]
    assert frame["calls"].to_list() == [10 * int(t) for t in offsets]
    rates = frame.filter(pl.col("ts") == truth.start + timedelta(seconds=285))
    assert rates["failure_rate"].item() == pytest.approx(0.625)
    assert frame.filter(pl.col("ts") == truth.start)["failure_rate"].item() is None  # -1: not enough calls


def test_short_open_invisible_to_gauge_is_recovered(prometheus_incident) -> None:  # noqa: F811
    truth = prometheus_incident.truth
    frame = _run(prometheus_incident, "breakers").frame
    assert frame.filter(pl.col("state") == "open").height == (truth.open_s[1] - truth.open_s[0]) // 15
    periods = open_periods(frame, None)
    starts = [(p - truth.start).total_seconds() for p in periods["start"].to_list()]
    assert starts[0] == truth.open_s[0]
    inferred = periods.filter(pl.col("evidence") == "not_permitted_calls")
    assert inferred.height == 1
    assert truth.short_open_s - 15 <= (inferred["start"].item() - truth.start).total_seconds() <= truth.short_open_s
    assert inferred["blocked_calls"].item() == truth.short_open_blocked


def test_pools_match_what_was_written(prometheus_incident) -> None:  # noqa: F811
    truth = prometheus_incident.truth
    frame = _run(prometheus_incident, "pools").frame
    assert frame["pool"].unique().to_list() == [truth.pool]
    saturated = frame.filter(pl.col("active") >= pl.col("max"))
    offsets = sorted(int(t) for t in _offsets(saturated, truth))
    assert offsets[0] == truth.saturated_s[0] and offsets[-1] == truth.saturated_s[1] - 15
    row = frame.filter(pl.col("ts") == truth.start + timedelta(seconds=600)).row(0, named=True)
    expected = pool_at(600, truth)
    assert (row["active"], row["pending"], row["max"], row["timeouts"]) == (
        expected["active"], expected["pending"], expected["max"], expected["timeouts"])
    assert row["acquire_p99_ms"] == pytest.approx(2500.0)


def test_events_deploy_and_leader_change(prometheus_incident) -> None:  # noqa: F811
    truth = prometheus_incident.truth
    frame = _run(prometheus_incident, "events").frame
    deploys = frame.filter(pl.col("kind") == "deploy")
    assert deploys.height == 1 and deploys["service"].item() == "checkout"
    assert deploys["ts"].item() == truth.start + timedelta(seconds=truth.deploy_s)
    assert json.loads(deploys["attrs"].item())["value"] == 5
    elections = frame.filter(pl.col("kind") == "leader_election")
    assert elections.height == 2
    assert set(elections["ts"].to_list()) == {truth.start + timedelta(seconds=truth.election_s)}


def test_instant_query_returns_one_point_per_series(prometheus_incident) -> None:  # noqa: F811
    frame = _run(prometheus_incident, "pools", instant=True).frame
    assert frame.height == 1 and frame["active"].item() == 3


def test_bad_promql_is_a_rejection_not_a_crash(prometheus_incident) -> None:  # noqa: F811
    conn = PrometheusConnector(SourceConfig(name="prom", type="prometheus",
                                            options={"url": prometheus_incident.url, "matchers": 'job=~"('}))
    truth = prometheus_incident.truth
    [result] = conn.query([Query("A", "pools", truth.start, truth.end)])
    assert result.frame is None and type(result.error).__name__ == "SourceRejected"
