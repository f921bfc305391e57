"""The cohort finder on the built-in demo incident, checked against its ``ground_truth()``."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from analysis.cohort import detect_incident_start, discover_attributes, find_cohorts, rank_values
from analysis.outcome import roots, with_outcome
from config import SloConfig, SloRule

demo = pytest.importorskip("connectors.demo")


@pytest.fixture(scope="module")
def requests() -> pl.DataFrame:
    spans = demo.demo_frames(seed=7, requests=60_000)["spans"]
    slo = SloConfig(default_ms=2000.0, rules=(SloRule(ms=3000.0, service="gateway", operation="POST /checkout"),))
    return roots(with_outcome(spans, slo))


def test_demo_slow_cohort_found_and_start_detected(requests: pl.DataFrame) -> None:
    truth = demo.ground_truth()
    start, how = detect_incident_start(requests, "is_slow")
    assert abs(start - truth["incident_start"]) <= timedelta(minutes=3), how
    for outcome in ("bad", "slow"):
        cohorts = find_cohorts(requests, outcome=outcome)  # type: ignore[arg-type]
        assert cohorts, outcome
        assert dict(cohorts[0].pairs) == truth["slow_cohort"]
        assert cohorts[0].coverage > 0.5 and cohorts[0].precision > 0.8


def test_demo_ids_chronic_tenant_and_decoy_are_not_reported(requests: pl.DataFrame) -> None:
    truth = demo.ground_truth()
    attrs = discover_attributes(requests)
    assert "attr.tenant" in attrs  # a tenant is a fine cohort attribute ...
    assert not {"attr.user_id", "attr.correlation_id", "attr.idempotency_key", "attr.client.address"} & set(attrs)
    reported = [dict(c.pairs) for c in find_cohorts(requests, outcome="bad")]
    assert all(c.get("tenant") != truth["chronic_tenant"] for c in reported)  # ... but not the chronic one
    decoy = truth["decoy_cohort"]
    assert all(not (set(decoy.items()) <= set(c.items())) for c in reported)
    standing = rank_values(requests, outcome="bad").filter(pl.col("stands_out"))
    assert ("tenant", truth["chronic_tenant"]) not in standing.select("attribute", "value").rows()


def test_demo_errors_only_points_at_the_retry_storm(requests: pl.DataFrame) -> None:
    # the errors come from the retry storm after inventory's leader election, not from the slow cohort
    truth = demo.ground_truth()
    start, _ = detect_incident_start(requests, "is_error")
    assert truth["retry_storm"][0] - timedelta(minutes=2) <= start <= truth["retry_storm"][1]
    found = find_cohorts(requests, outcome="error")
    assert found, "the storm's failed requests concentrate on retries and the routes that call inventory"
    keys = {k for c in found for k, _ in c.pairs}
    assert keys <= {"retry_attempt", "http.route", "operation", "http.method"}
    assert sum(c.coverage for c in found) > 0.3
