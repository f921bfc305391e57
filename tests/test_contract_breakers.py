"""The connector contract (tests/contract.py) over the breaker/pool connectors, on a real local HTTP server."""

from __future__ import annotations

import re

import pytest

from connectors.base import Query
from connectors.metrics import actuator, envoy, hystrix, prometheus
from tests import breaker_payloads as P
from tests.contract import contract_params, http_case
from tests.replay_server import ReplayServer, Seen, require


def query(kind: str):  # noqa: ANN201
    return lambda: Query("A", kind, P.START, P.END, {})


def float_seconds(*names: str):  # noqa: ANN201
    """Prometheus takes unix seconds with a fraction (or RFC 3339); milliseconds would be a unit bug."""
    def check(seen: Seen) -> str | None:
        for name in names:
            value = seen.param(name) or ""
            if not re.fullmatch(r"\d{9,10}(\.\d+)?", value):
                return f"{name}={value!r} is not unix seconds"
        return None
    return check


PROM_CHECKS = [require("query", "start", "end", "step"), float_seconds("start", "end")]


def prom_routes(kind: str, empty: bool):  # noqa: ANN201
    series = {"breakers": P.r4j_series, "pools": P.hikari_series, "events": P.event_series}[kind]

    def routes(server: ReplayServer) -> None:
        server.route("/api/v1/status/buildinfo", {"status": "success", "data": {"version": "2.42.0"}})
        server.route("/api/v1/query_range", P.prom_matrix([] if empty else series()), checks=PROM_CHECKS)
    return routes


def actuator_routes(empty: bool):  # noqa: ANN201
    def routes(server: ReplayServer) -> None:
        server.route("/actuator/circuitbreakers", {"circuitBreakers": {}} if empty else P.actuator_breakers())
        server.route("/actuator/circuitbreakerevents", {"circuitBreakerEvents": []} if empty else P.actuator_events())
        if not empty:
            connections = P.actuator_metric("hikaricp.connections", "VALUE", 10)
            server.route("/actuator/metrics/hikaricp.connections", connections)
            for col, (name, stat) in actuator.HIKARI_METRICS.items():
                value = {"active": 10, "idle": 0, "pending": 4, "max": 10, "timeouts": 3, "acquire_p99_ms": 2.5}[col]
                server.route(f"/actuator/metrics/{name}", P.actuator_metric(name, stat, value), checks=[require("tag")])
    return routes


def envoy_routes(empty: bool):  # noqa: ANN201
    def routes(server: ReplayServer) -> None:
        server.route("/clusters", {"cluster_statuses": []} if empty else P.envoy_clusters(), checks=[require("format")])
        server.route("/stats", {"stats": []} if empty else P.envoy_stats(), checks=[require("format")])
    return routes


def hystrix_routes(empty: bool):  # noqa: ANN201
    def routes(server: ReplayServer) -> None:
        body = b":ping\n\nping: \n\n" if empty else P.hystrix_stream()
        server.route("/hystrix.stream", body, content_type="text/event-stream;charset=UTF-8")
    return routes


CASES = [
    *[http_case(f"prometheus-{kind}", kind, build=prometheus.build, type_name="prometheus",
                data=prom_routes(kind, False), empty=prom_routes(kind, True), query=query(kind))
      for kind in ("breakers", "pools", "events")],
    *[http_case(f"actuator-{kind}", kind, build=actuator.build, type_name="actuator", data=actuator_routes(False),
                empty=actuator_routes(True), query=query(kind)) for kind in ("breakers", "pools", "events")],
    *[http_case(f"envoy-{kind}", kind, build=envoy.build, type_name="envoy", data=envoy_routes(False),
                empty=envoy_routes(True), query=query(kind)) for kind in ("breakers", "pools", "events")],
    *[http_case(f"hystrix-{kind}", kind, build=hystrix.build, type_name="hystrix", data=hystrix_routes(False),
                empty=hystrix_routes(True), query=query(kind), options={"window_s": 1.0})
      for kind in ("breakers", "pools", "events")],
]


@pytest.mark.parametrize(("case", "check"), contract_params(CASES))
def test_contract(case, check) -> None:  # noqa: ANN001
    check(case)
