"""Prometheus converters, the YAML mapping (loading, validation, team overrides) and the events engine."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.errors import ConfigError, PayloadError
from connectors.metrics.prometheus import (
    PrometheusConnector,
    breakers_from_prometheus,
    events_from_prometheus,
    pools_from_prometheus,
    selector,
)
from connectors.metrics.prometheus_mapping import load_mappings, parse_mapping
from connectors.metrics.samples import samples_from_api, samples_from_exposition
from model.validate import validate
from tests import breaker_payloads as P
from tests.replay_server import ReplayServer, Seen

MAPPING = load_mappings()


def offset(s: float) -> datetime:
    return P.T0 + timedelta(seconds=s)


def test_breakers_from_matrix() -> None:
    frame = validate(breakers_from_prometheus(P.prom_matrix(P.r4j_series()), MAPPING, "p"), "breakers")
    assert frame["state"].to_list() == ["closed", "open", "open", "closed"]
    assert frame["failure_rate"].to_list() == [None, 0.555, 0.555, 0.555]  # -1 = not enough calls
    assert frame["slow_call_rate"].to_list() == [None] * 4  # NaN
    assert frame["calls"].to_list() == [0, 10, 20, 30] and frame["not_permitted_calls"].to_list() == [0, 4, 9, 9]
    assert frame["instance"].unique().to_list() == ["app-1:8080"] and frame["ts"][1] == offset(15)


def test_pools_from_matrix() -> None:
    frame = validate(pools_from_prometheus(P.prom_matrix(P.hikari_series()), MAPPING, "p"), "pools")
    assert frame["active"].to_list() == [2, 10, 10] and frame["pending"].to_list() == [0, 3, 7]
    assert frame["timeouts"].to_list() == [0, 0, 2] and frame["acquire_p99_ms"].to_list() == [1.0, 1500.0, 3000.0]


def test_vector_and_special_values() -> None:
    payload = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "x", "a": "1"}, "value": [1700000000.5, "+Inf"]},
        {"metric": {"__name__": "x", "a": "2"}, "value": [1700000000.5, "-Inf"]}]}}
    samples, _ = samples_from_api(payload)
    assert samples["__value"].to_list() == [math.inf, -math.inf]
    assert samples["__ts"][0] == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)


@pytest.mark.parametrize("payload", [
    b"{not json", b"[]", {"status": "error", "errorType": "bad_data", "error": "parse error"},
    {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1]]}]}},
    {"status": "success", "data": {"resultType": "weird", "result": []}},
])
def test_bad_payloads_are_payload_errors(payload) -> None:  # noqa: ANN001
    with pytest.raises(PayloadError):
        samples_from_api(payload)


def test_pgbouncer_exporter_pools_broadcast_pool_size() -> None:
    text = "\n".join([
        'pgbouncer_pools_server_active_connections{database="app",user="api"} 20',
        'pgbouncer_pools_server_active_connections{database="app",user="batch"} 2',
        'pgbouncer_pools_server_idle_connections{database="app",user="api"} 0',
        'pgbouncer_pools_client_waiting_connections{database="app",user="api"} 12',
        'pgbouncer_pools_client_maxwait_seconds{database="app",user="api"} 4.5',
        'pgbouncer_databases_pool_size{name="app",database="app_prod",host="db",port="5432",force_user="",'
        'pool_mode="transaction"} 20',
    ])
    frame = validate(pools_from_prometheus_text(text), "pools").sort("pool")
    assert frame["pool"].to_list() == ["app/api", "app/batch"]
    assert frame["max"].to_list() == [20, 20] and frame["pending"].to_list() == [12, None]
    assert frame["acquire_p99_ms"].to_list() == [4500.0, None]


def pools_from_prometheus_text(text: str) -> pl.DataFrame:
    from connectors.metrics.prometheus_frames import pools_from_samples
    return pools_from_samples(samples_from_exposition(text, P.T0), MAPPING, "p")


def test_envoy_series_with_istio_label_name() -> None:
    from connectors.metrics.prometheus_frames import breakers_from_samples
    text = "\n".join([
        'envoy_cluster_circuit_breakers_default_rq_pending_open{cluster_name="outbound|9080||reviews"} 1',
        'envoy_cluster_upstream_rq_pending_overflow{cluster_name="outbound|9080||reviews"} 40',
        'envoy_cluster_upstream_cx_overflow{cluster_name="outbound|9080||reviews"} 2',
        'envoy_cluster_circuit_breakers_default_rq_open{envoy_cluster_name="ratings"} 0',
    ])
    frame = validate(breakers_from_samples(samples_from_exposition(text, P.T0), MAPPING), "breakers").sort("breaker")
    assert frame.select("breaker", "state", "not_permitted_calls").rows() == [
        ("outbound|9080||reviews", "open", 42), ("ratings", "closed", None)
    ]


def test_events_from_series() -> None:
    frame = validate(events_from_prometheus(P.prom_matrix(P.event_series()), MAPPING, "p"), "events")
    assert frame.select("ts", "kind", "service").rows() == [
        (offset(30), "deploy", "checkout"), (offset(30), "leader_election", "etcd")
    ]
    deploy = frame.filter(pl.col("kind") == "deploy").row(0, named=True)
    assert deploy["description"] == "rollout of checkout (generation 4.0)"
    attrs = json.loads(deploy["attrs"])
    assert (attrs["value"], attrs["previous"], attrs["labels"]["deployment"]) == (4.0, 3.0, "checkout")


def test_team_mapping_file_adds_a_family_without_code(tmp_path: Path) -> None:
    extra = tmp_path / "team.yaml"
    extra.write_text(
        "families:\n"
        "  - name: custom_pool\n    kind: pools\n    name_labels: [pool_name]\n"
        "    fields: {active: myapp_pool_busy, max: myapp_pool_size,\n"
        "             pending: {metric: myapp_pool_queue, aggregate: max}}\n"
        "events:\n"
        "  - {name: flags, kind: flag_change, metric: myapp_flag_version, trigger: change, service_labels: [app]}\n",
        encoding="utf-8")
    mapping = load_mappings([extra])
    assert "myapp_pool_busy" in mapping.metrics("pools")
    assert "resilience4j_circuitbreaker_state" in mapping.metrics("breakers")
    text = (
        'myapp_pool_busy{pool_name="w"} 3\nmyapp_pool_size{pool_name="w"} 4\n'
        'myapp_pool_queue{pool_name="w",shard="a"} 1\nmyapp_pool_queue{pool_name="w",shard="b"} 5\n'
    )
    from connectors.metrics.prometheus_frames import pools_from_samples
    frame = pools_from_samples(samples_from_exposition(text, P.T0), mapping)
    assert frame.select("pool", "active", "max", "pending").rows() == [("w", 3, 4, 5)]


@pytest.mark.parametrize(("doc", "message"), [
    ({"families": [{"name": "x", "kind": "pools", "name_labels": ["a"], "fields": {"actve": "m"}}]},
     "unknown pools column(s) ['actve']"),
    ({"families": [{"name": "x", "kind": "queues", "name_labels": ["a"], "fields": {}}]}, "'kind' must be one of"),
    ({"families": [{"name": "x", "kind": "pools", "name_labels": ["a"],
                    "fields": {"active": {"metric": "m", "agg": "sum"}}}]},
     "unknown key(s) ['agg']"),
    ({"families": [{"name": "x", "kind": "pools", "name_labels": ["a"],
                    "fields": {"active": {"metric": "m", "scale": "big"}}}]},
     "scale must be a number"),
    ({"families": [{"name": "x", "kind": "pools", "fields": {"active": "m"}}]}, "name_labels must be a name or a list"),
    ({"events": [{"name": "e", "kind": "deploy", "trigger": "sometimes", "metric": "m"}]}, "'trigger' must be one of"),
    ({"events": [{"name": "e", "kind": "deploy", "trigger": "change", "metric": "m", "query": "up"}]},
     "exactly one of 'metric' or 'query'"),
    ({"version": 2}, "unsupported mapping version"),
    (["not", "a", "mapping"], "must be a YAML mapping"),
])
def test_mapping_mistakes_are_config_errors(doc, message) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError) as info:
        parse_mapping(doc, origin="team.yaml")
    assert message in str(info.value) and "team.yaml" in str(info.value)


def test_missing_or_broken_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_mappings([tmp_path / "nope.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("families: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mappings([bad])


def test_builtin_mapping_is_valid_and_covers_every_backend() -> None:
    names = {f.name for f in MAPPING.families}
    assert {"resilience4j", "envoy", "hikaricp_micrometer", "hikaricp_prometheus", "go_sql_stats",
            "go_sql_client_golang", "pgbouncer_exporter"} <= names
    assert {"deploy", "leader_election"} <= {r.kind for r in MAPPING.events}


def test_selector_adds_matchers() -> None:
    assert selector(["b", "a", "a"], 'job="x",') == '{__name__=~"a|b",job="x"}'


def test_connector_sends_seconds_and_a_bounded_step_and_reports_warnings() -> None:
    with ReplayServer() as server:
        server.route("/api/v1/query_range", P.prom_matrix(P.hikari_series(), warnings=["result truncated"]))
        server.route("^/api/v1/query$", P.prom_matrix([]))
        conn = PrometheusConnector(SourceConfig("p", "prometheus", {"url": server.url, "matchers": 'namespace="prod"'}))
        day = Query("A", "pools", P.START, P.START + timedelta(days=1))
        [result] = conn.query([day])
        seen = server.last("/api/v1/query_range")
        assert seen.param("start") == f"{P.START.timestamp():.3f}"
        assert seen.param("step") == "87"  # 86400 s / 1000 points
        assert 'namespace="prod"' in seen.param("query") and "hikaricp_connections_active" in seen.param("query")
        assert result.notices == ("Prometheus warning: result truncated",) and result.frame.height == 3
        [instant] = conn.query([Query("B", "pools", P.START, P.END, {"instant": True})])
        assert server.last("/api/v1/query").param("time") == f"{P.END.timestamp():.3f}" and instant.ok


def test_custom_query_event_rule(tmp_path: Path) -> None:
    extra = tmp_path / "e.yaml"
    extra.write_text("events:\n"
                     "  - {name: failover, kind: failover, query: 'changes(pg_replication_is_replica[1m]) > 0',"
                     " trigger: nonzero, service_labels: [instance], description: 'failover on {service}'}\n",
                     encoding="utf-8")
    body = P.prom_matrix([({"instance": "db-1"}, [0.0, 1.0, 1.0, 0.0, 2.0])])
    with ReplayServer() as server:
        def answer(seen: Seen) -> tuple[int, bytes]:
            return 200, json.dumps(body if "changes(" in seen.param("query") else P.prom_matrix([])).encode()

        server.route("/api/v1/query_range", answer)
        conn = PrometheusConnector(SourceConfig("p", "prometheus", {"url": server.url, "mappings": [str(extra)]}))
        [result] = conn.query([Query("A", "events", P.START, P.END)])
    failovers = result.frame.filter(pl.col("kind") == "failover")
    assert failovers["ts"].to_list() == [offset(15), offset(60)] and failovers["description"][0] == "failover on db-1"
    assert result.executed_query.count("GET /api/v1/query_range") == 2


@pytest.mark.parametrize(
    "metric", ["pgbouncer_stats_totals_queries_pooled_total", "pgbouncer_stats_queries_pooled_total"]
)
def test_pgbouncer_restart_from_old_and_new_exporter_names(metric: str) -> None:
    body = P.prom_matrix([({"__name__": metric, "database": "app", "instance": "pgb:9127"}, [100.0, 180.0, 3.0, 40.0])])
    frame = validate(events_from_prometheus(body, MAPPING, "p"), "events")
    assert frame.select("ts", "kind", "service").rows() == [(offset(30), "restart", "app")]
    assert frame["description"].item() == "pgbouncer restarted (counters of app reset on pgb:9127)"


def test_go_sql_client_golang_naming() -> None:
    text = "\n".join([
        'go_sql_in_use_connections{db_name="orders"} 25', 'go_sql_idle_connections{db_name="orders"} 0',
        'go_sql_max_open_connections{db_name="orders"} 25', 'go_sql_wait_count_total{db_name="orders"} 1234',
        'go_sql_wait_duration_seconds_total{db_name="orders"} 56.5',
    ])
    [row] = validate(pools_from_prometheus_text(text), "pools").rows(named=True)
    assert (row["pool"], row["active"], row["idle"], row["max"], row["timeouts"]) == ("orders", 25, 0, 25, 1234)
