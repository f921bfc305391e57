"""Golden tests on every real breaker/pool fixture in ../shared/fixtures (read in place, never copied)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import polars as pl
import pytest

from connectors.metrics.envoy import breakers_from_envoy, events_from_envoy, hosts_from_clusters, pools_from_envoy
from connectors.metrics.hystrix import (
    breakers_from_hystrix,
    events_from_hystrix,
    events_from_stream,
    pools_from_hystrix,
)
from connectors.metrics.prometheus import breakers_from_prometheus, pools_from_prometheus
from connectors.metrics.prometheus_frames import breakers_from_samples, pools_from_samples
from connectors.metrics.prometheus_mapping import load_mappings
from connectors.metrics.samples import samples_from_api, samples_from_exposition
from model.validate import validate
from tests.shared import shared_path

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MAPPING = load_mappings()


def _text(*parts: str) -> str:
    return shared_path("fixtures", *parts).read_text(encoding="utf-8")


# --- Prometheus API responses -------------------------------------------------------------

def test_matrix_response_values_are_strings_and_seconds() -> None:
    samples, notices = samples_from_api(_text("prometheus", "service_datapoint_response.json"))
    assert notices == ()
    row = samples.row(0, named=True)
    assert row["service_name"] == "emailservice" and row["__value"] == 9223372036854.0
    assert row["__ts"] == datetime.fromtimestamp(1620351786, UTC)


def test_two_label_matrix_keeps_both_labels() -> None:
    samples, _ = samples_from_api(_text("prometheus", "service_span_name_datapoint_response.json"))
    assert samples.select("span_name", "service_name").row(0) == ("/OrderResult", "emailservice")


def test_empty_matrix_gives_empty_frames_with_schema() -> None:
    payload = _text("prometheus", "empty_response.json")
    assert validate(breakers_from_prometheus(payload, MAPPING), "breakers").height == 0
    assert validate(pools_from_prometheus(payload, MAPPING), "pools").height == 0


def test_warning_response_becomes_notices() -> None:
    samples, notices = samples_from_api(_text("prometheus", "warning_response.json"))
    assert samples.height == 0
    assert notices == ("Prometheus warning: warning0", "Prometheus warning: warning1")


# --- Exposition text through the same mapping ---------------------------------------------

def test_resilience4j_micrometer_scrape() -> None:
    samples = samples_from_exposition(_text("resilience4j", "metrics-micrometer.txt"), NOW)
    breakers = validate(breakers_from_samples(samples, MAPPING, "r4j"), "breakers")
    row = breakers.row(0, named=True)
    assert breakers.height == 1 and row["breaker"] == "backendA" and row["ts"] == NOW
    assert row["state"] == "closed"  # the stray `state` series without a state label is ignored
    assert row["failure_rate"] == pytest.approx(0.20)
    assert row["not_permitted_calls"] == 1  # legacy calls_total{kind="not_permitted"}
    assert row["calls"] == 0 and row["slow_call_rate"] is None
    pools = validate(pools_from_samples(samples, MAPPING, "r4j"), "pools")
    semaphore = pools.filter(pl.col("pool") == "bulkhead:backendA").row(0, named=True)
    assert (semaphore["active"], semaphore["idle"], semaphore["max"]) == (0, 10, 10)
    threads = pools.filter(pl.col("pool") == "bulkhead-threads:backendA").row(0, named=True)
    assert (threads["pending"], threads["max"]) == (10, 20)


def test_resilience4j_dashboard_series_are_all_mapped() -> None:
    """Every circuit-breaker series the upstream Grafana dashboard queries is one our mapping reads."""
    dashboard = json.loads(_text("resilience4j", "grafana_dashboard.json"))
    exprs = " ".join(t.get("expr", "") for p in dashboard.get("panels", []) for t in p.get("targets", []))
    used = set(re.findall(r"resilience4j_circuitbreaker_[a-z_]+", exprs))
    assert "resilience4j_circuitbreaker_state" in used
    mapped = set(MAPPING.metrics("breakers"))
    suffixes = ("_state", "_failure_rate", "_slow_call_rate", "_not_permitted_calls_total")
    wanted = {m for m in used if m.endswith(suffixes) or m == "resilience4j_circuitbreaker_calls_seconds_count"}
    assert wanted and wanted <= mapped


def test_hikaricp_micrometer_scrape() -> None:
    samples = samples_from_exposition(_text("hikaricp", "metrics-micrometer.txt"), NOW)
    [row] = validate(pools_from_samples(samples, MAPPING), "pools").rows(named=True)
    assert row["pool"] == "HikariPool-1"
    assert (row["active"], row["idle"], row["pending"], row["max"], row["timeouts"]) == (0, 8, 0, 8, 0)
    assert row["acquire_p99_ms"] == pytest.approx(2.38957)  # acquire_seconds_max in ms


def test_hikaricp_prometheus_tracker_scrape() -> None:
    samples = samples_from_exposition(_text("hikaricp", "metrics-prometheus.txt"), NOW)
    assert not samples.filter(pl.col("__name__").str.ends_with("_created")).height
    [row] = validate(pools_from_samples(samples, MAPPING), "pools").rows(named=True)
    assert (row["active"], row["idle"], row["pending"], row["max"], row["timeouts"]) == (0, 6, 0, 6, 0)
    assert row["acquire_p99_ms"] == pytest.approx(8.197098)  # quantile 0.99 of acquired_nanos, ns -> ms


def test_go_sql_grafana_scrape() -> None:
    samples = samples_from_exposition(_text("go_sql", "grafana_metrics.txt"), NOW)
    pools = validate(pools_from_samples(samples, MAPPING), "pools").sort("pool")
    assert pools["pool"].to_list() == ["grafana", "unified_storage"]
    assert pools["active"].to_list() == [0, 0] and pools["idle"].to_list() == [2, 2]
    assert pools["max"].to_list() == [None, None]  # max_open 0 = unlimited
    assert validate(breakers_from_samples(samples, MAPPING), "breakers").height == 0


# --- Hystrix stream ----------------------------------------------------------------------

def test_hystrix_stream_events_and_pings() -> None:
    raw = shared_path("fixtures", "hystrix", "hystrix.stream").read_bytes()
    objs, skipped = events_from_stream(raw)
    assert skipped == 0 and len(objs) == 392
    assert sum(o["type"] == "HystrixCommand" for o in objs) == 196


def test_hystrix_breakers() -> None:
    raw = shared_path("fixtures", "hystrix", "hystrix.stream").read_bytes()
    frame = validate(breakers_from_hystrix(raw, "h"), "breakers")
    assert sorted(frame["breaker"].unique().to_list()) == [
        "CreditCardCommand", "GetOrderCommand", "GetPaymentInformationCommand", "GetUserAccountCommand"]
    assert frame.height == 196 and set(frame["state"].to_list()) == {"closed"}
    assert frame["ts"].min() == datetime.fromtimestamp(1354860557.473, UTC)
    assert frame["failure_rate"].max() == pytest.approx(0.25)
    calls = frame.filter(pl.col("breaker") == "CreditCardCommand")["calls"]
    assert calls.is_sorted() and calls[0] == 1


def test_hystrix_thread_pools() -> None:
    raw = shared_path("fixtures", "hystrix", "hystrix.stream").read_bytes()
    frame = validate(pools_from_hystrix(raw, "h"), "pools")
    credit = frame.filter(pl.col("pool") == "hystrix:CreditCard")
    assert credit.height == 49 and set(credit["max"].to_list()) == {8}
    assert credit["active"].max() == 6 and credit["pending"].max() == 0


def test_hystrix_config_events() -> None:
    raw = shared_path("fixtures", "hystrix", "hystrix.stream").read_bytes()
    frame = validate(events_from_hystrix(raw, "h"), "events")
    configs = frame.filter(pl.col("kind") == "breaker_config")
    assert configs.height == 4
    credit = json.loads(configs.filter(pl.col("service") == "CreditCardCommand")["attrs"].item())
    assert credit["minimum_number_of_calls"] == 20 and credit["failure_rate_threshold"] == pytest.approx(0.5)
    assert credit["timeout_ms"] == 3000


def test_hystrix_truncated_tail_is_skipped() -> None:
    raw = shared_path("fixtures", "hystrix", "hystrix.stream").read_bytes()[:5000]
    objs, skipped = events_from_stream(raw)
    assert len(objs) >= 1 and skipped == 1


# --- Envoy admin -------------------------------------------------------------------------

def test_envoy_clusters_mixed_case() -> None:
    hosts = hosts_from_clusters(_text("envoy", "clusters.json"))
    assert hosts.height == 9 and hosts["cluster"].n_unique() == 7
    ejected = hosts.filter(pl.col("ejected"))
    ejected_host = ("outbound|9080||reviews.default.svc.cluster.local", "172.17.0.27:9080")
    assert ejected.select("cluster", "host").row(0) == ejected_host
    mixer = hosts.filter(pl.col("cluster") == "inbound_9092").row(0, named=True)
    assert (mixer["host"], mixer["cx_active"], mixer["rq_total"], mixer["rq_error"]) == (
        "/sock/mixer.socket", 8, 300076, 78
    )
    unhealthy = hosts.filter(pl.col("eds_health") == "UNHEALTHY")["cluster"].to_list()
    assert unhealthy == ["outbound|15014||istio-policy.istio-system.svc.cluster.local"]


def test_envoy_breakers_pools_events() -> None:
    payload = _text("envoy", "clusters.json")
    breakers = validate(breakers_from_envoy(payload, None, ts=NOW), "breakers")
    assert breakers.filter(pl.col("state") == "open")["instance"].to_list() == ["172.17.0.27:9080"]
    mixer = breakers.filter(pl.col("breaker") == "inbound_9092").row(0, named=True)
    assert mixer["failure_rate"] == pytest.approx(78 / 300076)
    pools = validate(pools_from_envoy(payload, None, ts=NOW), "pools")
    assert pools.filter(pl.col("pool") == "inbound_9092")["active"].item() == 8
    events = validate(events_from_envoy(payload, ts=NOW), "events")
    assert events["kind"].to_list() == ["outlier_ejection"] and "172.17.0.27:9080" in events["description"].item()
