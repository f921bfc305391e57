"""connectors.runtime.health: every source checked in its bulkhead, bounded by a deadline, breaker-aware."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from config import SourceConfig
from connectors.base import Health, Query, Result
from connectors.errors import SourceTimeout
from connectors.runtime.health import check_all
from connectors.runtime.resilience import BreakerConfig
from connectors.runtime.source import breaker_for
from tests.fault_server import FaultServer, TinyHttpConnector, json_route

HANG = threading.Event()


@pytest.fixture(autouse=True)
def _release():
    HANG.clear()
    yield
    HANG.set()


class Probe:
    capabilities = frozenset({"spans"})

    def __init__(self, name: str, health: Health | None = None, hang: bool = False, boom: bool = False) -> None:
        self.name, self.health, self.hang, self.boom = name, health or Health("ok", "fine"), hang, boom
        self.calls = 0

    def check_health(self) -> Health:
        self.calls += 1
        if self.boom:
            raise RuntimeError("contract broken")
        if self.hang:
            HANG.wait(30)
        return self.health

    def query(self, queries: Sequence[Query]) -> list[Result]:
        return []


def test_a_hanging_source_cannot_hang_the_health_page() -> None:
    connectors = {"ok": Probe("ok"), "hung": Probe("hung", hang=True), "sad": Probe("sad", Health("degraded", "lagging", 5.0)),
                  "boom": Probe("boom", boom=True)}
    started = time.perf_counter()
    rows = check_all(connectors, 0.4, sources={"ok": SourceConfig("ok", "jaeger")})
    assert time.perf_counter() - started < 30  # returned before the 30 s hang ended: the 0.4 s deadline cut it off
    by_name = {r.name: r for r in rows}
    assert [r.name for r in rows] == ["ok", "hung", "sad", "boom"]
    assert by_name["ok"].status == "ok" and by_name["ok"].type == "jaeger" and by_name["ok"].last_success is not None
    assert by_name["ok"].latency_ms is not None and by_name["ok"].breaker_state == "closed"
    assert by_name["hung"].status == "down" and "within 0.4 s" in by_name["hung"].message
    assert by_name["hung"].last_success is None and by_name["hung"].type == "Probe"
    assert (by_name["sad"].status, by_name["sad"].message, by_name["sad"].latency_ms) == ("degraded", "lagging", 5.0)
    assert by_name["boom"].status == "down" and "RuntimeError" in by_name["boom"].message


def test_an_open_breaker_is_reported_without_io() -> None:
    probe = Probe("p")
    breaker = breaker_for("p", BreakerConfig(failure_threshold=1, open_s=60))
    breaker.record_failure(SourceTimeout("no answer", source="p"))
    (row,) = check_all({"p": probe}, 1.0)
    assert probe.calls == 0
    assert row.status == "down" and "breaker open; next probe at" in row.message
    assert row.breaker_state == "open" and row.last_error == "p: SourceTimeout: no answer"


def test_real_http_source_up_then_down() -> None:
    with FaultServer([json_route("/api/services", {"data": []})]) as server:
        connector = TinyHttpConnector(SourceConfig("tiny", "tiny", {"url": server.url}))
        (up,) = check_all({"tiny": connector}, 1.0)
        assert up.status == "ok" and up.last_success is not None
        server.mode = "blackhole"
        started = time.perf_counter()
        (down,) = check_all({"tiny": connector}, 0.5)
        assert time.perf_counter() - started < 30  # before the 30 s blackhole ended: the 0.5 s deadline cut it off
        assert down.status == "down" and down.last_success == up.last_success
