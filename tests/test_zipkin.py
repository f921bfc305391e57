"""Zipkin connector against a real local HTTP server replaying recorded Zipkin v2 traces."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.errors import ConfigError, SourceRejected
from connectors.traces.query import epoch_us
from connectors.traces.zipkin import ZipkinConnector, annotation_query
from tests.replay_server import ReplayServer, epoch_param, int_param
from tests.shared import shared_path

START = datetime(2019, 10, 24, 5, 0, tzinfo=timezone.utc)
END = START + timedelta(minutes=30)
SEARCH_CHECKS = [epoch_param("endTs", "ms"), int_param("lookback", 1, 10**11, optional=False),
                 int_param("limit", 1, 1000), int_param("minDuration", 0, 10**12), int_param("maxDuration", 0, 10**12)]


def trace(name: str) -> list[dict[str, object]]:
    return json.loads(shared_path("fixtures", "zipkin", name).read_bytes())


def connector(server: ReplayServer) -> ZipkinConnector:
    return ZipkinConnector(SourceConfig("zipkin-test", "zipkin", {"url": server.url}, timeout_s=15))


def spans(params: dict[str, object], ref: str = "A") -> Query:
    return Query(ref, "spans", START, END, params)


def test_search_sends_ms_window_and_us_durations() -> None:
    with ReplayServer() as server:
        server.route("/api/v2/traces", [trace("yelp.json"), trace("skew.json")], checks=SEARCH_CHECKS)
        (result,) = connector(server).query([spans({
            "service": "mobile_api", "operation": "get", "min_duration_ms": 2.5, "max_duration_ms": 100, "limit": 7,
            "tags": {"http.uri.client": "/visits", "error": "true"}})])
        assert result.ok, result.error
        assert result.frame.height == 20 and result.frame["trace_id"].n_unique() == 2
        assert result.frame["is_root"].sum() == 2
        sent = server.last("/api/v2/traces")
        assert sent.param("endTs") == str(epoch_us(END) // 1000) and sent.param("lookback") == "1800000"  # ms
        assert (sent.param("minDuration"), sent.param("maxDuration")) == ("2500", "100000")  # µs
        assert (sent.param("serviceName"), sent.param("spanName"), sent.param("limit")) == ("mobile_api", "get", "7")
        assert sent.param("annotationQuery") == "http.uri.client=/visits and error"
        assert any("shared their client's span id" in n for n in result.notices)
        assert not any("query limit" in n for n in result.notices)  # 2 traces < limit 7


def test_trace_by_id_short_form_and_not_found() -> None:
    with ReplayServer() as server:
        server.route("/api/v2/trace/978883983d506fa5", trace("envoy.json"))
        found, missing = connector(server).query([spans({"trace_id": "978883983d506fa5"}),
                                                  spans({"trace_id": "12" * 16}, "B")])
        assert found.ok and found.frame.to_dicts()[0]["http_status"] == 200
        assert found.frame["trace_id"].item() == "0" * 16 + "978883983d506fa5"
        assert missing.ok and missing.frame.height == 0  # Zipkin answers 404 (here: no route)
        assert [s.path for s in server.seen("/api/v2/trace/")] == ["/api/v2/trace/978883983d506fa5",
                                                                   "/api/v2/trace/" + "12" * 16]


def test_empty_search_and_rejected_params() -> None:
    with ReplayServer() as server:
        server.route("/api/v2/traces", [], checks=SEARCH_CHECKS)
        ok, bad, bad_id = connector(server).query([
            spans({}), spans({"tags": {"q": "a and b"}}, "B"), spans({"trace_id": "not-hex"}, "C")])
        assert ok.ok and ok.frame.height == 0 and "serviceName" not in server.last("/api/v2/traces").params
        assert isinstance(bad.error, ConfigError) and "annotationQuery" in bad.error.message
        assert isinstance(bad_id.error, ConfigError) and "not a hex trace id" in bad_id.error.message


def test_a_400_from_zipkin_is_rejected_not_empty() -> None:
    with ReplayServer() as server:
        server.route("/api/v2/traces", b"endTs should be positive", status=400, content_type="text/plain")
        (result,) = connector(server).query([spans({})])
        assert isinstance(result.error, SourceRejected) and "400" in result.error.message


def test_services_and_health() -> None:
    with ReplayServer() as server:
        server.route("/api/v2/services", ["frontend", "backend"])
        zipkin = connector(server)
        assert zipkin.services() == ["frontend", "backend"]
        health = zipkin.check_health()
        assert health.status == "ok" and health.message == "Zipkin v2 API: 2 services"


@pytest.mark.parametrize(("tags", "expected"), [
    ((("error", "true"),), "error"), ((("http.path", "/a"), ("region", "eu")), "http.path=/a and region=eu"),
])
def test_annotation_query(tags: tuple[tuple[str, str], ...], expected: str) -> None:
    assert annotation_query(tags) == expected
