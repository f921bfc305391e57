"""Fault injection: every HTTP connector type × every fault of tests/fault_server.py, through fetch_all.

For each cell: the deadline cuts the page run off (it ends long before the slowest faults' 30 s hangs); the
source's result is stale data (when a good answer came before) or an error of the expected class; the healthy
source in the same
``fetch_all`` is unaffected; the source's breaker opens, refuses without I/O, and closes again after
``open_s`` once the server behaves. The matrix is printed (``-s``) and written to
``test-artifacts/fault_matrix.txt``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config import SourceConfig
from connectors.base import Connector, Query, Result
from connectors.clickhouse import build as build_clickhouse
from connectors.errors import ConfigError, PayloadError, SourceTimeout, SourceUnavailable
from connectors.registry import CONNECTOR_TYPES
from connectors.runtime.fanout import StaleResult, bulkhead_for, fetch_all
from connectors.runtime.resilience import BreakerConfig
from connectors.runtime.source import breaker_for
from tests.clickhouse_front import PROCESS_PASSWORD, PROCESS_USER, process_front
from tests.fault_server import FAULTS, FaultServer, TinyHttpConnector, json_route

BUDGET_S = 1.5
CUT_OFF_S = 10 * BUDGET_S  # a run this long waited on a hang (stall, blackhole, trickle: >= 30 s) past its deadline
OPEN_S = 0.5
ARTIFACT = Path(__file__).resolve().parent.parent / "test-artifacts" / "fault_matrix.txt"

EXPECTED: dict[str, tuple[type[Exception], ...]] = {
    "stall": (SourceTimeout,),
    "blackhole": (SourceTimeout,),
    "trickle": (SourceTimeout,),
    "http500": (SourceUnavailable,),
    "http503_ra": (SourceUnavailable,),
    "http503_long": (SourceUnavailable,),
    "malformed": (PayloadError,),
    "truncated": (SourceUnavailable, PayloadError),
    "huge": (PayloadError, SourceTimeout),
    "reset": (SourceUnavailable,),
    "refused": (SourceUnavailable,),
}

# Minimal valid "nothing found" answers per API, so a good answer can precede the fault (→ stale data).
_EMPTY_PROM = {"status": "success", "data": {"resultType": "matrix", "result": []}}
GOOD_ROUTES = {
    "tiny": [json_route("/api/traces", {"data": []}), json_route("/api/services", {"data": []})],
    "jaeger": [
        json_route("/api/v3/traces", {"result": {"resourceSpans": []}}),
        json_route("/api/v3/services", {"services": []}),
        json_route("/api/traces", {"data": [], "total": 0, "limit": 0, "offset": 0, "errors": None}),
        json_route("/api/services", {"data": [], "total": 0, "limit": 0, "offset": 0, "errors": None}),
    ],
    "tempo": [json_route("/api/search", {"traces": [], "metrics": {}}), json_route("/api/traces", {"batches": []}),
              json_route("/api/v2/traces", {"trace": {"resourceSpans": []}}), ("/api/echo", "text/plain", b"echo"),
              ("/ready", "text/plain", b"ready")],
    "zipkin": [json_route("/api/v2/traces", []), json_route("/api/v2/services", []), json_route("/api/v2/spans", [])],
    "prometheus": [json_route("/api/v1/query_range", _EMPTY_PROM),
                   json_route("/api/v1/query", {"status": "success", "data": {"resultType": "vector", "result": []}}),
                   json_route("/api/v1/status/buildinfo", {"status": "success", "data": {"version": "2.53.0"}})],
    "actuator": [json_route("/actuator/circuitbreakerevents", {"circuitBreakerEvents": []}),
                 json_route("/actuator/circuitbreakers", {"circuitBreakers": {}}),
                 json_route("/actuator/health", {"status": "UP"})],
    "hystrix": [("/", "text/event-stream", b":ping\n\n")],
    "envoy": [json_route("/stats", {"stats": []}), json_route("/clusters", {"cluster_statuses": []}),
              ("/ready", "text/plain", b"LIVE")],
}
# A stream that only sends keep-alive bytes within the window is alive, not failed: an empty answer is right.
ALSO_OK = {("hystrix", "trickle")}
HTTP_TYPES = ("jaeger", "tempo", "zipkin", "prometheus", "actuator", "hystrix", "envoy", "clickhouse")
# Sources whose good answers come from a real backend behind the fault server (ClickHouse: the chdb front).
HAS_CHDB = importlib.util.find_spec("chdb") is not None
KIND_PREFERENCE = ("spans", "breakers", "pools", "events", "pool_holders")


def http_connector_types() -> list[str]:
    """Registered types whose module imports and talks HTTP (known HTTP types, or code using runtime.http)."""
    found = ["tiny"]
    for kind, spec in CONNECTOR_TYPES.items():
        module_name = spec.partition(":")[0]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if kind == "clickhouse" and not HAS_CHDB:
            continue  # its good answers need the real engine (chdb, requirements-dev.txt)
        if kind in HTTP_TYPES or "make_client" in inspect.getsource(module):
            found.append(kind)
    return found


def build(kind: str, name: str, url: str) -> Connector:
    if kind == "tiny":
        return TinyHttpConnector(SourceConfig(name, "tiny", {"url": url, "max_body_mb": 2}))
    if kind == "clickhouse":
        return build_clickhouse(SourceConfig(
            name, kind, {"url": url, "database": "faults"}, secrets={"username": PROCESS_USER,
                                                                    "password": PROCESS_PASSWORD}))
    module_name, _, factory = CONNECTOR_TYPES[kind].partition(":")
    factory_fn = getattr(importlib.import_module(module_name), factory)
    try:  # short breaker and body cap via options; fall back to the minimal options if the connector refuses extras
        connector: Connector = factory_fn(SourceConfig(name, kind, {"url": url, "max_body_mb": 2}))
    except ConfigError:
        connector = factory_fn(SourceConfig(name, kind, {"url": url}))
    return connector


def make_query(connector: Connector) -> Query:
    kind = next(k for k in KIND_PREFERENCE if k in connector.capabilities)
    end = datetime.now(UTC)
    params: dict[str, Any] = {"service": "checkout"} if kind == "spans" else {}
    return Query("A", kind, end - timedelta(minutes=15), end, params)


@dataclass
class Cell:
    kind: str
    fault: str
    first_ok: bool = False
    elapsed_s: float = 0.0
    shown: str = ""
    error_class: str = ""
    others_ok: bool = False
    breaker_opened: bool = False
    refused_without_io: bool = False
    recovered: bool = False
    problem: str = ""

    @property
    def passed(self) -> bool:
        return not self.problem


@functools.cache
def _upstream(kind: str) -> str | None:
    """The real backend behind the fault server for ``kind`` (None: the fault server's own good routes)."""
    if kind != "clickhouse":
        return None
    front = process_front()
    front.create_traces("faults", "otel_traces", "current")  # empty: the good answer is "nothing found"
    return front.url


def _live_error(result: Result) -> BaseException | None:
    return result.live_error if isinstance(result, StaleResult) else result.error


def run_cell(kind: str, fault: str, healthy: Connector, healthy_query: Query) -> Cell:
    cell = Cell(kind, fault)
    name = f"{kind}-{fault}"
    with FaultServer(GOOD_ROUTES.get(kind, []), upstream=_upstream(kind)) as server:
        connector = build(kind, name, server.url)
        breaker = breaker_for(name, BreakerConfig(failure_threshold=2, open_s=OPEN_S))
        query = make_query(connector)
        conns = {name: connector, healthy.name: healthy}
        plan = {name: [query], healthy.name: [healthy_query]}

        cell.first_ok = fetch_all(conns, plan, BUDGET_S)[name][0].ok
        server.mode = fault
        started = time.perf_counter()
        results = fetch_all(conns, plan, BUDGET_S)
        cell.elapsed_s = time.perf_counter() - started
        mine = results[name][0]
        cell.shown = "stale" if isinstance(mine, StaleResult) else ("error" if mine.error else "ok")
        error = _live_error(mine)
        cell.error_class = type(error).__name__ if error else "-"
        cell.others_ok = all(r.ok and not isinstance(r, StaleResult) for r in results[healthy.name])
        problems = []
        if cell.elapsed_s >= CUT_OFF_S:
            problems.append(f"took {cell.elapsed_s:.2f} s: the {BUDGET_S} s deadline did not cut the run off")
        if not cell.others_ok:
            problems.append(f"healthy source affected: {results[healthy.name]}")
        if mine.ok and (kind, fault) in ALSO_OK:
            cell.shown = "ok (n/a)"
            cell.problem = "; ".join(problems)
            return cell
        if not isinstance(error, EXPECTED[fault]):
            problems.append(f"expected {'/'.join(e.__name__ for e in EXPECTED[fault])}, got {error!r}")
        if cell.first_ok and not isinstance(mine, StaleResult):
            problems.append("a good answer came first but the result is not stale")

        for _ in range(3):  # feed the breaker until it opens (threshold 2)
            if breaker.state == "open":
                break
            fetch_all(conns, plan, BUDGET_S)
        cell.breaker_opened = breaker.state == "open"
        # hold it open while abandoned workers (cut off by the deadline) drain, so hit counts are stable
        breaker_for(name, BreakerConfig(failure_threshold=2, open_s=120))
        _wait_idle(name)
        hits = server.hits
        refused = fetch_all(conns, plan, BUDGET_S)[name][0]
        # No request reached the server, and the breaker itself says it refused (not a failed attempt).
        refusal = _live_error(refused)
        cell.refused_without_io = (
            server.hits == hits and getattr(refusal, "from_breaker", False) and "breaker open" in str(refusal)
        )
        if not (cell.breaker_opened and cell.refused_without_io):
            problems.append(f"breaker state {breaker.state}; refusal {_live_error(refused)!r}")

        server.mode = "good"
        breaker_for(name, BreakerConfig(failure_threshold=2, open_s=OPEN_S))
        time.sleep(OPEN_S + 0.05)  # due for a probe
        after = fetch_all(conns, plan, BUDGET_S)[name][0]
        fresh = after.ok and not isinstance(after, StaleResult)
        cell.recovered = breaker.state == "closed" and (fresh or not cell.first_ok)
        if not cell.recovered:
            problems.append(f"did not recover: breaker {breaker.state}, result {after!r}")
        cell.problem = "; ".join(problems)
    return cell


def _wait_idle(name: str, limit_s: float = 8.0) -> None:
    """Let abandoned workers (cut off by the deadline) finish, so server hit counts are stable."""
    bulkhead = bulkhead_for(name)
    stop = time.monotonic() + limit_s
    while bulkhead.in_flight and time.monotonic() < stop:
        time.sleep(0.02)


CELLS: list[Cell] = []


@pytest.fixture(scope="module")
def healthy_source():
    with FaultServer(GOOD_ROUTES["tiny"]) as server:
        connector = TinyHttpConnector(SourceConfig("healthy", "tiny", {"url": server.url}))
        yield connector, make_query(connector)
    _write_matrix(CELLS)


@pytest.mark.parametrize("kind", http_connector_types())
def test_every_fault_is_contained(kind: str, healthy_source: tuple[Connector, Query]) -> None:
    healthy, healthy_query = healthy_source
    _upstream(kind)  # once, before the cells run in parallel
    with ThreadPoolExecutor(max_workers=len(FAULTS)) as pool:
        cells = list(pool.map(lambda fault: run_cell(kind, fault, healthy, healthy_query), FAULTS))
    CELLS.extend(cells)
    failed = [f"{c.fault}: {c.problem}" for c in cells if not c.passed]
    assert not failed, f"{kind}:\n" + "\n".join(failed)


def _write_matrix(cells: list[Cell]) -> None:
    if not cells:
        return
    header = ("connector", "fault", "1st ok", "elapsed_s", "shown", "error", "others ok", "opened", "no-I/O",
              "recovered", "verdict")
    rows = [
        (c.kind, c.fault, _yn(c.first_ok), f"{c.elapsed_s:.2f}", c.shown, c.error_class, _yn(c.others_ok),
         _yn(c.breaker_opened), _yn(c.refused_without_io), _yn(c.recovered),
         "PASS" if c.passed else "FAIL: " + c.problem[:80])
        for c in cells
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    title = f"fault matrix: budget {BUDGET_S} s, cut off {CUT_OFF_S} s, breaker threshold 2, open_s {OPEN_S}"
    text = title + "\n" + "\n".join(lines) + "\n"
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(text, encoding="utf-8")
    print("\n" + text)


def _yn(flag: bool) -> str:
    return "yes" if flag else "no"
