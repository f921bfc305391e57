"""The connector contract (tests/contract.py) over every trace connector, against a real local HTTP server."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import SourceConfig
from connectors import clickhouse
from connectors.base import Connector, Query
from connectors.traces import files as trace_files
from connectors.traces import jaeger, tempo, zipkin
from tests.clickhouse_front import PROCESS_PASSWORD, PROCESS_USER, Front, process_front
from tests.contract import ContractCase, contract_params, http_case
from tests.replay_server import (
    ReplayServer,
    epoch_param,
    go_duration_param,
    int_param,
    json_map_param,
    require,
    rfc3339_param,
)
from tests.trace_wire import (
    BASE_US,
    jaeger_envelope,
    otlp_doc,
    sample_spans,
    tempo_search,
    tempo_shape,
    zipkin_traces,
)

SPANS = sample_spans(n_traces=4, spans_per_trace=3)
START = datetime.fromtimestamp(BASE_US / 1e6, tz=UTC) - timedelta(hours=1)
END = START + timedelta(hours=2)


def spans_query() -> Query:
    return Query("A", "spans", START, END, {"service": "gateway", "limit": 10, "min_duration_ms": 1})


def jaeger_v1_routes(server: ReplayServer, *, empty: bool = False) -> None:
    services = {"data": ["gateway", "payments"], "total": 2, "limit": 0, "offset": 0, "errors": None}
    server.route("/api/services", services)
    server.route("/api/traces", jaeger_envelope([] if empty else SPANS), checks=[
        require("service"), epoch_param("start", "us"), epoch_param("end", "us"), int_param("limit", 1, 1000),
        go_duration_param("minDuration"), go_duration_param("maxDuration"), json_map_param("tags")])


def jaeger_v3_routes(server: ReplayServer, *, empty: bool = False) -> None:
    server.route("/api/v3/services", {"services": ["gateway", "payments"]})
    checks = [require("query.service_name"), rfc3339_param("query.start_time_min"),
              rfc3339_param("query.start_time_max"), int_param("query.num_traces", 1, 1000),
              go_duration_param("query.duration_min"), json_map_param("query.attributes")]
    if empty:
        server.route("/api/v3/traces", {"error": {"httpCode": 404, "message": "No traces found"}}, status=404,
                     checks=checks)
    else:
        server.route("/api/v3/traces", {"result": otlp_doc(SPANS)}, checks=checks)


def tempo_routes(server: ReplayServer, *, empty: bool = False) -> None:
    server.route("/api/status/buildinfo", {"version": "2.6.1", "revision": "abc", "branch": "HEAD"})
    server.route("/api/search", {"traces": []} if empty else tempo_search(SPANS), checks=[
        require("q"), epoch_param("start", "s"), epoch_param("end", "s"), int_param("limit", 1, 1000)])

    def by_id(seen):  # type: ignore[no-untyped-def]
        trace_id = seen.path.rsplit("/", 1)[-1].rjust(32, "0")
        spans = [s for s in SPANS if s.trace_id == trace_id]
        if not spans:
            return 404, b"trace not found"
        return json.dumps(tempo_shape(otlp_doc(spans), v2=True)).encode()
    server.route("^/api/v2/traces/[0-9a-f]+$", by_id)


def zipkin_routes(server: ReplayServer, *, empty: bool = False) -> None:
    server.route("/api/v2/services", ["gateway", "payments"])
    server.route("/api/v2/traces", [] if empty else zipkin_traces(SPANS), checks=[
        epoch_param("endTs", "ms"), int_param("lookback", 1, 10**11, optional=False), int_param("limit", 1, 1000),
        int_param("minDuration", 0, 10**12)])


@contextmanager
def files_connector(scenario: str) -> Iterator[Connector]:
    bodies = {"data": json.dumps(otlp_doc(SPANS)), "empty": '{"resourceSpans": []}',
              "malformed": '{"resourceSpans": [{"scopeSpans": [', "wrong_shape": '[{"unexpected": true}]'}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "export.json").write_text(bodies[scenario], encoding="utf-8")
        yield trace_files.build(SourceConfig(f"files-{scenario}", "trace_files", {"path": tmp}))


NO_CHDB = "chdb (requirements-dev.txt) is not installed"
_loaded: list[Front] = []


def _clickhouse_front() -> Front:
    """The process's front with ``contract.otel_traces`` holding SPANS and ``empty.otel_traces`` nothing."""
    front = process_front()
    if not _loaded:
        folder = Path(tempfile.mkdtemp(prefix="faultline-ch-contract-"))
        export = folder / "spans.json"
        export.write_text(json.dumps(otlp_doc(SPANS)), encoding="utf-8")
        front.create_traces("contract", "otel_traces", "current")
        front.load("contract", "otel_traces", trace_files.spans_from_file(export), "current", folder)
        front.create_traces("empty", "otel_traces", "current")
        _loaded.append(front)
    return front


@contextmanager
def clickhouse_connector(scenario: str) -> Iterator[Connector]:
    """The real engine for data and empty; a replay server on ClickHouse's POST interface for the faults."""
    secrets = {"username": PROCESS_USER, "password": PROCESS_PASSWORD}
    name = f"clickhouse-{scenario}-{next(_ch_names)}"
    if scenario in ("data", "empty"):
        database = "contract" if scenario == "data" else "empty"
        options = {"url": _clickhouse_front().url, "database": database}
        yield clickhouse.build(SourceConfig(name, "clickhouse", options, timeout_s=30.0, secrets=secrets))
        return
    with ReplayServer() as server:
        server.route("/", b"")
        source = SourceConfig(name, "clickhouse", {"url": server.url, "database": "contract"},
                              timeout_s=0.5 if scenario == "timeout" else 15.0, secrets=secrets)
        {"http_500": lambda: server.fail_with(500), "timeout": lambda: server.stall(50.0),
         "malformed": server.malformed,
         "wrong_shape": lambda: server.malformed(b'[{"unexpected": true}]')}[scenario]()
        yield clickhouse.build(source)


_ch_names = itertools.count()
NO_HTTP = {"http_500": "trace files involve no HTTP", "timeout": "trace files involve no HTTP"}
CASES: list[ContractCase] = [
    http_case("jaeger-v1", "spans", build=jaeger.build, type_name="jaeger", query=spans_query,
              data=jaeger_v1_routes, empty=lambda s: jaeger_v1_routes(s, empty=True), warm=lambda c: c.api()),
    http_case("jaeger-v3", "spans", build=jaeger.build, type_name="jaeger", query=spans_query,
              data=jaeger_v3_routes, empty=lambda s: jaeger_v3_routes(s, empty=True), warm=lambda c: c.api()),
    http_case("tempo", "spans", build=tempo.build, type_name="tempo", query=spans_query,
              data=tempo_routes, empty=lambda s: tempo_routes(s, empty=True)),
    http_case("zipkin", "spans", build=zipkin.build, type_name="zipkin", query=spans_query,
              data=zipkin_routes, empty=lambda s: zipkin_routes(s, empty=True)),
    ContractCase("trace-files", "spans", files_connector, spans_query, skip=NO_HTTP),
    ContractCase("clickhouse", "spans", clickhouse_connector, spans_query, timeout_hang_s=50.0,
                 skip={} if importlib.util.find_spec("chdb") else {"data": NO_CHDB, "empty": NO_CHDB}),
]


@pytest.mark.parametrize(("case", "check"), contract_params(CASES))
def test_contract(case: ContractCase, check) -> None:  # type: ignore[no-untyped-def]
    check(case)


def test_every_case_returns_the_same_spans_whatever_the_wire_format() -> None:
    """The four backends serve the same 4 traces; every connector must yield the same facts."""
    facts = {}
    for case in CASES:
        with case.open("data") as connector:
            (result,) = connector.query([spans_query()])
        assert result.ok, result.error
        frame = result.frame.sort("trace_id", "span_id")
        facts[case.id] = (frame.height, int(frame["is_root"].sum()), sorted(frame["service"].unique().to_list()),
                          frame.filter(pl_root())["duration_ms"].to_list(),
                          frame.filter(pl_root())["status"].to_list())
    expected = (12, 4, ["gateway", "payments"], [250.0, 251.0, 252.0, 253.0], ["unset", "unset", "error", "unset"])
    for case_id, got in facts.items():
        assert got[:4] == expected[:4], case_id
        assert got[4][2] == "error", case_id  # the third trace failed in every format


def pl_root():  # type: ignore[no-untyped-def]
    import polars as pl

    return pl.col("is_root")


def test_check_names_are_stable() -> None:
    ids = [p.id for p in contract_params(CASES)]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-z0-9-]+-[a-z_0-9]+", i) for i in ids)
