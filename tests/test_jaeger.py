"""Jaeger connector against a real local HTTP server replaying recorded Jaeger payloads at the real paths."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.errors import SourceRejected
from connectors.traces.jaeger import JaegerConnector
from connectors.traces.query import epoch_us
from tests.replay_server import (
    ReplayServer,
    epoch_param,
    go_duration_param,
    int_param,
    json_map_param,
    require,
    rfc3339_param,
)
from tests.shared import shared_path

START = datetime(2024, 1, 31, 5, 0, tzinfo=timezone.utc)
END = START + timedelta(hours=1)
V1_SEARCH = [require("service"), epoch_param("start", "us"), epoch_param("end", "us"), int_param("limit", 1, 1000),
             go_duration_param("minDuration"), go_duration_param("maxDuration"), json_map_param("tags")]
V3_SEARCH = [require("query.service_name"), rfc3339_param("query.start_time_min"),
             rfc3339_param("query.start_time_max"), int_param("query.num_traces", 1, 1000),
             go_duration_param("query.duration_min"), json_map_param("query.attributes")]


def fixture(*parts: str) -> bytes:
    return shared_path("fixtures", "jaeger", *parts).read_bytes()


def connector(server: ReplayServer, **options: object) -> JaegerConnector:
    return JaegerConnector(SourceConfig("jaeger-test", "jaeger", {"url": server.url, **options}, timeout_s=15))


def spans(params: dict[str, object], ref: str = "A") -> Query:
    return Query(ref, "spans", START, END, params)


def envelope(trace: dict[str, object] | list[object]) -> dict[str, object]:
    return {"data": trace if isinstance(trace, list) else [trace], "total": 1, "limit": 0, "offset": 0, "errors": None}


def test_v3_is_detected_once_and_searched_with_rfc3339_params() -> None:
    with ReplayServer() as server:
        server.route("/api/v3/services", fixture("api_v3", "GetServices.json"))
        server.route("/api/v3/traces", fixture("api_v3", "FindTraces.json"), checks=V3_SEARCH)
        server.route("^/api/v3/traces/[0-9a-f]+$", fixture("api_v3", "GetTrace.json"))
        jaeger = connector(server)
        results = jaeger.query([spans({"service": "foo", "min_duration_ms": 250, "tags": {"http.method": "GET"}}),
                                spans({"trace_id": "1"}, "B")])
        assert [r.error for r in results] == [None, None]
        for result in results:
            span = result.frame.to_dicts()[0]
            assert span["trace_id"] == "0" * 31 + "1" and span["status"] == "error" and span["kind"] == "server"
        sent = server.last("/api/v3/traces")
        assert server.seen("/api/v3/traces/")[-1].path == "/api/v3/traces/0000000000000001"  # 64-bit id, short form
        search = [s for s in server.seen("/api/v3/traces") if s.path == "/api/v3/traces"][0]
        assert search.param("query.service_name") == "foo" and search.param("query.num_traces") == "20"
        assert search.param("query.start_time_min") == "2024-01-31T05:00:00.000000Z"
        assert search.param("query.duration_min") == "250ms"
        assert json.loads(search.param("query.attributes") or "{}") == {"http.method": "GET"}
        assert sent.path.startswith("/api/v3/traces")
        (full,) = jaeger.query([spans({"service": "foo", "limit": 1})])
        assert any("showing 1 traces, the query limit" in n for n in full.notices)
        assert not any("query limit" in n for n in results[0].notices)
        assert len(server.seen("/api/v3/services")) == 1  # detection cached
        assert not server.seen("/api/services")
        assert jaeger.check_health().message == "Jaeger api_v3: 1 services"


def test_v3_not_found_is_an_empty_frame() -> None:
    not_found = {"error": {"httpCode": 404, "message": "No traces found"}}
    with ReplayServer() as server:
        server.route("/api/v3/services", fixture("api_v3", "GetServices.json"))
        server.route("/api/v3/traces", not_found, status=404, checks=V3_SEARCH)
        server.route("^/api/v3/traces/.*$", not_found, status=404)
        results = connector(server).query([spans({"service": "foo"}), spans({"trace_id": "abc"}, "B")])
        assert all(r.ok and r.frame.height == 0 and r.frame.width == 11 for r in results)


def test_v3_streamed_result_lines_are_merged() -> None:
    one = json.loads(fixture("api_v3", "FindTraces.json"))
    other = json.loads(json.dumps(one).replace("0000000000000002", "0000000000000003"))
    with ReplayServer() as server:
        server.route("/api/v3/services", {"services": ["foo"]})
        server.route("/api/v3/traces", json.dumps(one) + "\n" + json.dumps(other) + "\n", checks=V3_SEARCH)
        (result,) = connector(server).query([spans({"service": "foo"})])
        assert sorted(result.frame["span_id"]) == ["0000000000000002", "0000000000000003"]


def test_v1_fallback_with_microsecond_params_and_real_envelope() -> None:
    with ReplayServer() as server:
        server.route("/api/services", envelope(["telemetrygen"]))
        server.route("/api/traces", fixture("jaeger-ui", "otlp2jaeger-out.json"), checks=V1_SEARCH)
        jaeger = connector(server)
        (result,) = jaeger.query([spans({"service": "telemetrygen", "operation": "okey-dokey-0", "limit": 5,
                                         "min_duration_ms": 0.5, "max_duration_ms": 2000, "tags": {"error": "true"}})])
        assert result.ok, result.error
        assert result.frame.height == 1 and result.frame["duration_ms"].item() == 0.123
        sent = server.last("/api/traces")
        assert sent.param("start") == str(epoch_us(START)) and sent.param("end") == str(epoch_us(END))  # µs
        assert (sent.param("minDuration"), sent.param("maxDuration")) == ("500us", "2000ms")
        assert sent.param("limit") == "5" and sent.param("operation") == "okey-dokey-0"
        assert json.loads(sent.param("tags") or "") == {"error": "true"}
        assert [s.path for s in server.seen("/api/v3")] == ["/api/v3/services"]  # asked once, 404, v1 cached
        assert jaeger.api() == "v1" and len(server.seen("/api/v3")) == 1


def test_v1_trace_by_id_with_64_bit_id_and_not_found() -> None:
    trace = json.loads(fixture("jaeger", "ui_01.json"))
    missing = {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": 404, "msg": "trace not found"}]}
    with ReplayServer() as server:
        server.route("/api/services", envelope(["service-x"]))
        server.route("^/api/traces/.+$", missing, status=404, content_type="text/plain")
        server.route("/api/traces/0000000000000001", envelope(trace))  # later routes win
        found, gone = connector(server).query([spans({"trace_id": "0000000000000001"}),
                                               spans({"trace_id": "ff" * 16}, "B")])
        assert found.ok and found.frame.height == 5 and found.frame["trace_id"].unique().item() == "0" * 31 + "1"
        assert any("some trace warning" in n for n in found.notices)
        assert gone.ok and gone.frame.height == 0
        assert server.seen("/api/traces/")[0].path == "/api/traces/0000000000000001"  # 64-bit ids sent short


def test_v1_search_without_service_fans_out() -> None:
    single = json.loads(fixture("jaeger", "trace_success.json"))
    with ReplayServer() as server:
        server.route("/api/services", envelope(["a", "b", "c"]))
        server.route("/api/traces", envelope([{"traceID": "x", "spans": single}]), checks=V1_SEARCH)
        (result,) = connector(server, max_services=2).query([spans({})])
        assert result.ok and sorted(s.param("service") for s in server.seen("/api/traces")) == ["a", "b"]
        assert result.frame.height == 2  # the same trace from both services is kept once
        assert any("searched 2 services" in n for n in result.notices)


def test_forced_api_skips_detection_and_failed_detection_is_not_cached() -> None:
    with ReplayServer() as server:
        server.route("/api/traces", envelope([]), checks=V1_SEARCH)
        (result,) = connector(server, api="v1").query([spans({"service": "x"})])
        assert result.ok and not server.seen("/api/v3") and not server.seen("/api/services")
    with ReplayServer() as server:
        jaeger = connector(server)
        (failed,) = jaeger.query([spans({"service": "x"})])
        assert isinstance(failed.error, SourceRejected) and "neither api_v3" in failed.error.message
        assert jaeger.check_health().status == "down"
        server.route("/api/v3/services", {"services": ["x"]})
        server.route("/api/v3/traces", fixture("api_v3", "FindTraces.json"), checks=V3_SEARCH)
        (result,) = jaeger.query([spans({"service": "x"})])
        assert result.ok and result.frame.height == 1


def test_dependencies_in_ms_from_the_recorded_links() -> None:
    links = json.loads(fixture("jaeger-ui", "small.json"))
    with ReplayServer() as server:
        server.route("/api/services", envelope([]))
        server.route("/api/dependencies", envelope(links),
                     checks=[epoch_param("endTs", "ms"), int_param("lookback", 1, 10**11, optional=False)])
        frame = connector(server, api="v1").dependencies(START, END)
        sent = server.last("/api/dependencies")
        assert sent.param("endTs") == str(epoch_us(END) // 1000) and sent.param("lookback") == "3600000"
        assert frame.height == 7 and frame["call_count"].sum() == 290_225
        assert frame.filter(pl.col("parent") == "Service2")["child"].item() == "Service4"


def test_services_and_operations_both_apis() -> None:
    with ReplayServer() as server:
        server.route("/api/v3/services", fixture("api_v3", "GetServices.json"))
        server.route("/api/v3/operations", fixture("api_v3", "GetOperations.json"), checks=[require("service")])
        jaeger = connector(server)
        assert jaeger.services() == ["foo"] and jaeger.operations("foo") == ["get_users"]
    with ReplayServer() as server:
        server.route("/api/services", envelope(["a b"]))
        server.route("/api/services/a%20b/operations", envelope(["op1", "op2"]))
        jaeger = connector(server, api="v1")
        assert jaeger.services() == ["a b"] and jaeger.operations("a b") == ["op1", "op2"]


@pytest.mark.parametrize("options", [{"api": "v9"}, {"max_services": 0}, {"url": ""}])
def test_bad_options_are_config_errors(options: dict[str, object]) -> None:
    from connectors.errors import ConfigError

    with pytest.raises(ConfigError):
        JaegerConnector(SourceConfig("j", "jaeger", {"url": "http://127.0.0.1:9", **options}))
