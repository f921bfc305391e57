"""Tempo connector against a real local HTTP server. No Tempo payload may be redistributed (AGPL), so the
bodies are real OTLP fixtures reshaped the way Tempo serves them (base64 ids, enum names, batches/trace)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.errors import ConfigError
from connectors.traces.query import SpanSearch
from connectors.traces.tempo import TempoConnector, traceql
from tests.replay_server import ReplayServer, Seen, epoch_param, header, int_param, require
from tests.shared import shared_path
from tests.trace_wire import tempo_shape

START = datetime(2024, 3, 22, 20, 0, 0, 500_000, tzinfo=timezone.utc)
END = START + timedelta(hours=1)
SEARCH_CHECKS = [require("q"), epoch_param("start", "s"), epoch_param("end", "s"), int_param("limit", 1, 1000)]
MULTI_TRACE = "c620759e5d60fafb8ee0922b30e06bc6"
EXAMPLE_TRACE = "0" * 30 + "11"


def otlp_fixture(name: str) -> dict[str, Any]:
    text = shared_path("fixtures", "otlp", name).read_text(encoding="utf-8")
    docs = [json.loads(line) for line in text.splitlines() if line.strip()] if name.endswith(".txt") else [json.loads(text)]
    return {"resourceSpans": [rs for d in docs for rs in d["resourceSpans"]]}


def traces_by_id() -> dict[str, dict[str, Any]]:
    return {MULTI_TRACE: otlp_fixture("otlp2jaeger-multi-in.json.txt"), EXAMPLE_TRACE: otlp_fixture("example_trace.json")}


def search_body(ids: list[str]) -> dict[str, Any]:
    return {"traces": [{"traceID": i.lstrip("0"), "rootServiceName": "example-trace", "startTimeUnixNano": "1"}
                       for i in ids], "metrics": {"inspectedTraces": len(ids)}}


def by_id(v2: bool, docs: dict[str, dict[str, Any]]):  # type: ignore[no-untyped-def]
    def answer(seen: Seen) -> tuple[int, bytes]:
        trace_id = seen.path.rsplit("/", 1)[-1]
        if trace_id not in docs:
            return 404, b"trace not found"
        return 200, json.dumps(tempo_shape(docs[trace_id], v2=v2)).encode()
    return answer


def connector(server: ReplayServer, **options: object) -> TempoConnector:
    return TempoConnector(SourceConfig("tempo-test", "tempo", {"url": server.url, **options}, timeout_s=15))


def spans(params: dict[str, object], ref: str = "A") -> Query:
    return Query(ref, "spans", START, END, params)


def test_search_then_fetch_v2_with_seconds_and_tenant() -> None:
    docs = traces_by_id()
    with ReplayServer() as server:
        server.route("/api/search", search_body(list(docs)), checks=[*SEARCH_CHECKS, header("X-Scope-OrgID", "team-a")])
        server.route("^/api/v2/traces/[0-9a-f]{32}$", by_id(True, docs), checks=[header("X-Scope-OrgID", "team-a")])
        tempo = connector(server, tenant="team-a")
        (result,) = tempo.query([spans({"service": "example-trace", "min_duration_ms": 100, "limit": 5})])
        assert result.ok, result.error
        frame = result.frame
        assert frame.height == 9 and sorted(frame["trace_id"].unique()) == sorted(docs)
        main = frame.filter(frame["span_id"] == "eff3153be6b1fb93").to_dicts()[0]  # base64 decoded
        assert main["is_root"] and main["kind"] == "internal" and main["duration_ms"] == pytest.approx(176.321958)
        sent = server.last("/api/search")
        assert sent.param("start") == "1711137600" and sent.param("end") == "1711141201"  # floor / ceil seconds
        assert sent.param("q") == '{ resource.service.name = "example-trace" && duration >= 100ms }'
        assert sent.param("limit") == "5" and sent.param("spss") == "3"
        assert {s.path for s in server.seen("/api/v2/traces/")} == {f"/api/v2/traces/{i}" for i in docs}
        assert "2 traces fetched by id" in result.executed_query


def test_v1_batches_fallback_is_cached() -> None:
    docs = traces_by_id()
    with ReplayServer() as server:
        server.route("^/api/traces/[0-9a-f]{32}$", by_id(False, docs))
        tempo = connector(server)
        first, second = tempo.query([spans({"trace_id": MULTI_TRACE}), spans({"trace_id": EXAMPLE_TRACE}, "B")])
        assert first.ok and first.frame.height == 4 and second.ok and second.frame.height == 5
        assert len(server.seen("/api/v2/traces/")) == 1  # tried once (404 page not found), then v1 remembered
        assert second.frame.filter(second.frame["span_id"] == "0000000000000006")["kind"].item() == "server"


def test_not_found_is_empty_and_partial_trace_is_a_notice() -> None:
    partial = tempo_shape(otlp_fixture("trace.json"), v2=True) | {"status": "PARTIAL", "message": "too large"}
    with ReplayServer() as server:
        server.route("^/api/v2/traces/.*$", b"trace not found", status=404, content_type="text/plain")
        server.route("/api/v2/traces/5b8efff798038103d269b633813fc60c", partial)
        tempo = connector(server)
        found, missing = tempo.query([spans({"trace_id": "5B8EFFF798038103D269B633813FC60C"}),
                                      spans({"trace_id": "ab" * 16}, "B")])
        assert found.ok and found.frame["span_id"].item() == "eee19b7ec3c1b174"
        assert any("PARTIAL" in n and "too large" in n for n in found.notices)
        assert missing.ok and missing.frame.height == 0


def test_fetches_are_bounded_and_partial_failures_become_notices() -> None:
    docs = traces_by_id()
    ids = [MULTI_TRACE, EXAMPLE_TRACE, "ab" * 16, "cd" * 16]

    def flaky(seen: Seen) -> tuple[int, bytes]:
        if seen.path.endswith(EXAMPLE_TRACE):
            return 500, b"ingester unavailable"
        return by_id(True, docs)(seen)
    with ReplayServer() as server:
        server.route("/api/search", search_body(ids), checks=SEARCH_CHECKS)
        server.route("^/api/v2/traces/.*$", flaky)
        (result,) = connector(server, max_traces=2).query([spans({})])
        assert result.ok and result.frame["trace_id"].unique().to_list() == [MULTI_TRACE]
        assert len(server.seen("/api/v2/traces/")) == 2
        assert any("fetched 2 of 4 matching traces" in n for n in result.notices)
        assert any("1 of 2 traces could not be fetched" in n for n in result.notices)
        assert server.last("/api/search").param("q") == "{}"


def test_every_fetch_failing_is_the_error() -> None:
    with ReplayServer() as server:
        server.route("/api/search", search_body(["ab" * 16]), checks=SEARCH_CHECKS)
        server.route("^/api/v2/traces/.*$", b"boom", status=503, content_type="text/plain")
        (result,) = connector(server).query([spans({})])
        assert result.error is not None and "503" in result.error.message


def test_traceql_building_and_escaping() -> None:
    search = SpanSearch.from_params({"service": 'we"ird\\svc', "operation": "GET /x", "max_duration_ms": 1.5,
                                     "tags": {"http.status_code": "500", "region": "eu-west", "retry_attempt": 2,
                                              "error": "true"}})
    assert traceql(search) == (
        '{ resource.service.name = "we\\"ird\\\\svc" && name = "GET /x" && duration <= 1500us && '
        'span.http.status_code = 500 && .region = "eu-west" && '
        '(.retry_attempt = "2" || .retry_attempt = 2) && status = error }')
    assert traceql(SpanSearch()) == "{}"
    with pytest.raises(ConfigError, match="cannot be searched"):
        traceql(SpanSearch.from_params({"tags": {"a b} || {": "x"}}))


def test_health_uses_buildinfo() -> None:
    with ReplayServer() as server:
        server.route("/api/status/buildinfo", {"version": "2.6.1"})
        assert connector(server).check_health().message == "Tempo 2.6.1"
    with ReplayServer() as server:
        server.route("/api/echo", "echo", content_type="text/plain")
        assert connector(server).check_health().status == "ok"
    with ReplayServer() as server:
        assert connector(server).check_health().status == "down"
