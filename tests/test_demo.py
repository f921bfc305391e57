"""The demo incident is deterministic and its ground truth is where it says it is."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from analysis.outcome import roots, with_outcome
from config import SloConfig, SloRule, SourceConfig
from connectors.base import Query
from connectors.demo import DemoConfig, DemoConnector, build, demo_frames, ground_truth
from connectors.errors import ConfigError
from tests.conftest import DEMO_SMALL

SLO = SloConfig(default_ms=2000, rules=(SloRule(ms=3000, service="gateway", operation="POST /checkout"),))


def test_same_seed_same_frames(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    demo_frames.cache_clear()
    again = demo_frames(**DEMO_SMALL)
    for kind, frame in demo_frames_small.items():
        assert frame.equals(again[kind]), kind


def test_other_seed_other_frames(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    other = demo_frames(seed=12, requests=20_000, full_trace_limit=20_000)
    assert not other["spans"].head(100).equals(demo_frames_small["spans"].head(100))


def test_realistic_shape(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    spans = demo_frames_small["spans"]
    requests = spans.filter(pl.col("is_root"))
    assert spans.get_column("service").n_unique() >= 8
    assert requests.get_column("attr.region").n_unique() >= 5
    assert requests.get_column("attr.client_version").n_unique() >= 8
    assert requests.get_column("attr.tenant").n_unique() >= 100
    assert requests.get_column("attr.user_id").n_unique() >= 10_000
    tenant_counts = requests.get_column("attr.tenant").value_counts(sort=True).get_column("count")
    top_tenant_share = tenant_counts[0] / requests.height
    assert top_tenant_share > 0.1  # skewed: one tenant has a large share
    start, end = ground_truth()["window"]
    assert requests.get_column("start").min() >= start and requests.get_column("start").max() < end
    assert (end - start) == timedelta(minutes=60)
    # every child span points at a span of its own trace
    children = spans.filter(~pl.col("is_root"))
    parents = spans.select("trace_id", pl.col("span_id").alias("parent_span_id"))
    assert children.join(parents, on=["trace_id", "parent_span_id"], how="anti").height == 0


def test_slow_cohort_is_200_ok_and_over_slo(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    truth = ground_truth()
    requests = roots(with_outcome(demo_frames_small["spans"], SLO))
    cohort = pl.all_horizontal(pl.col(f"attr.{k}") == v for k, v in truth["slow_cohort"].items())
    after = requests.filter(pl.col("start") >= truth["incident_start"] + timedelta(minutes=3))
    inside = after.filter(cohort & ~pl.col("is_error"))
    assert inside.height > 50
    assert (inside.get_column("http_status") == 200).all()
    assert inside.get_column("is_slow").mean() > 0.85
    lo, hi = truth["slow_cohort_duration_ms"]
    assert lo <= inside.get_column("duration_ms").median() <= hi
    outside = after.filter(~cohort & (pl.col("attr.region") == "eu-west-1"))
    assert outside.get_column("is_slow").mean() < 0.1  # same region, other clients: fine
    before = requests.filter(pl.col("start") < truth["incident_start"], cohort)
    assert before.get_column("is_slow").mean() < 0.02


def test_chronic_tenant_was_bad_before(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    truth = ground_truth()
    requests = roots(with_outcome(demo_frames_small["spans"], SLO))
    before = requests.filter(pl.col("start") < truth["incident_start"])
    tenant = before.filter(pl.col("attr.tenant") == truth["chronic_tenant"])
    assert tenant.get_column("is_bad").mean() > 3 * before.get_column("is_bad").mean()


def test_pool_saturates_and_storm_follows_election(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    truth = ground_truth()
    pools = demo_frames_small["pools"].filter(pl.col("pool") == "payments-db")
    sat = truth["pool_saturation"]
    during = pools.filter(pl.col("ts").is_between(sat["from"] + timedelta(minutes=1), sat["to"] - timedelta(minutes=1)))
    assert (during.get_column("active") == during.get_column("max")).all()
    assert during.get_column("pending").min() > 0
    holders = demo_frames_small["pool_holders"]
    assert truth["slow_query_pid"] in holders.get_column("pid").to_list()
    requests = demo_frames_small["spans"].filter(pl.col("is_root"))
    per_min = requests.group_by(pl.col("start").dt.truncate("1m")).len()
    storm_from, storm_to = truth["retry_storm"]
    storm = per_min.filter(pl.col("start").is_between(storm_from, storm_to)).get_column("len").max()
    calm = per_min.filter(pl.col("start") < truth["incident_start"]).get_column("len").median()
    assert storm > 1.5 * calm
    breakers = demo_frames_small["breakers"].filter(pl.col("breaker") == truth["never_tripping_breaker"])
    assert (breakers.get_column("state") == "closed").all()


def test_connector_filters_by_window_and_params() -> None:
    connector = DemoConnector("demo", DemoConfig(**DEMO_SMALL))
    start = ground_truth()["incident_start"]
    q_window = Query("a", "spans", start, start + timedelta(minutes=5))
    q_payments = Query("b", "spans", start, start + timedelta(minutes=5), {"service": "fraud", "min_duration_ms": 9000})
    q_bad = Query("c", "metrics", start, start + timedelta(minutes=5))
    window, payments, bad = connector.query([q_window, q_payments, q_bad])
    assert window.ok and window.frame is not None
    assert window.frame.get_column("start").min() >= start
    assert payments.ok and payments.frame is not None and payments.frame.height > 0
    slow_fraud = payments.frame.filter(pl.col("service") == "fraud", pl.col("duration_ms") >= 9000)
    assert slow_fraud.get_column("trace_id").n_unique() == payments.frame.get_column("trace_id").n_unique()
    assert isinstance(bad.error, ConfigError) and bad.frame is None


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="requests"):
        build(SourceConfig(name="d", type="demo", options={"requests": 5}))
    with pytest.raises(ConfigError, match="unknown option"):
        build(SourceConfig(name="d", type="demo", options={"sed": 1}))
