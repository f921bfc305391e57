"""connectors.runtime.fanout: deadline-bounded fan-out, bulkheads, stale fallback, breaker short-circuit, logging."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from config import SourceConfig
from connectors.base import Health, Query, Result, run_query
from connectors.errors import ConfigError, ConnectorBug, SourceTimeout, SourceUnavailable
from connectors.runtime.fanout import (
    STALE_PREFIX,
    LastGood,
    StaleResult,
    bulkhead_for,
    fetch_all,
    notices_of,
    stale_since,
)
from connectors.runtime.log import page_run
from connectors.runtime.resilience import BreakerConfig, current_deadline
from connectors.runtime.source import breaker_for
from model.schemas import empty_frame

RELEASE = threading.Event()


class FakeConnector:
    """In-memory source: waits ``delay_s`` (or until RELEASE), then answers or raises ``error``."""

    capabilities = frozenset({"spans"})

    def __init__(self, name: str, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.name, self.delay_s, self.error = name, delay_s, error
        self.calls = 0
        self.seen_deadlines: list[float] = []

    def check_health(self) -> Health:
        return Health("ok")

    def query(self, queries: Sequence[Query]) -> list[Result]:
        return [run_query(self.name, q, self._fetch) for q in queries]

    def _fetch(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        self.calls += 1
        deadline = current_deadline()
        self.seen_deadlines.append(deadline.budget_s if deadline else -1.0)
        if self.delay_s:
            RELEASE.wait(self.delay_s)
        if self.error is not None:
            raise self.error
        frame = empty_frame("spans")
        return frame, f"{self.name}:{query.ref_id}", ("a notice",)


@pytest.fixture(autouse=True)
def _release_stragglers():
    RELEASE.clear()
    yield
    RELEASE.set()


def q(ref_id: str = "A", minutes: int = 15, **params: object) -> Query:
    end = datetime(2026, 11, 27, 12, tzinfo=timezone.utc) + timedelta(minutes=minutes)
    return Query(ref_id, "spans", end - timedelta(minutes=minutes), end, params)


def test_a_slow_source_cannot_hold_the_page_or_the_others() -> None:
    fast, slow = FakeConnector("fast"), FakeConnector("slow", delay_s=11)
    started = time.perf_counter()
    results = fetch_all({"fast": fast, "slow": slow}, {"fast": [q("A"), q("B")], "slow": [q("C")]}, deadline_s=0.5)
    elapsed = time.perf_counter() - started
    assert 0.45 <= elapsed < 11  # waited for the 0.5 s deadline, returned long before the slow source's 11 s
    assert [r.ref_id for r in results["fast"]] == ["A", "B"] and all(r.ok for r in results["fast"])
    (late,) = results["slow"]
    assert isinstance(late.error, SourceTimeout) and "0.5 s deadline" in late.error.message
    assert late.duration_ms >= 450


def test_the_deadline_reaches_the_worker() -> None:
    source = FakeConnector("s")
    fetch_all({"s": source}, {"s": [q()]}, deadline_s=2.0)
    assert source.seen_deadlines == [2.0]  # the page's deadline budget, not a default one


def test_a_full_bulkhead_refuses_at_once() -> None:
    stuck = FakeConnector("stuck", delay_s=11)
    config = {"stuck": SourceConfig("stuck", "demo", {"bulkhead": {"max_concurrent": 1, "max_queued": 0}})}
    first = fetch_all({"stuck": stuck}, {"stuck": [q("A")]}, 0.2, sources=config)
    assert isinstance(first["stuck"][0].error, SourceTimeout)
    started = time.perf_counter()
    other = FakeConnector("other")
    second = fetch_all({"stuck": stuck, "other": other}, {"stuck": [q("B")], "other": [q("C")]}, 5.0, sources=config)
    assert time.perf_counter() - started < 5.0  # refused at once: not queued until the 5 s deadline
    error = second["stuck"][0].error
    assert isinstance(error, SourceUnavailable) and "bulkhead full (1 running, 0 queued)" in error.message
    assert second["other"][0].ok
    assert stuck.calls == 1
    RELEASE.set()
    _wait(lambda: bulkhead_for("stuck").in_flight == 0)
    assert fetch_all({"stuck": stuck}, {"stuck": [q("D")]}, 1.0, sources=config)["stuck"][0].ok


def test_queued_queries_wait_for_a_worker() -> None:
    source = FakeConnector("s", delay_s=0.1)
    config = {"s": SourceConfig("s", "demo", {"bulkhead": {"max_concurrent": 1, "max_queued": 5}})}
    results = fetch_all({"s": source}, {"s": [q(str(i)) for i in range(4)]}, 2.0, sources=config)
    assert all(r.ok for r in results["s"]) and source.calls == 4


def test_stale_fallback_serves_the_last_good_frame() -> None:
    cache = LastGood()
    source = FakeConnector("s")
    good = fetch_all({"s": source}, {"s": [q("A", minutes=15, service="api")]}, 1.0, cache=cache)["s"][0]
    assert good.ok and stale_since(good) is None
    source.error = SourceUnavailable("HTTP 503", source="s")
    # a later rerun with a moved time window and a different ref_id still finds it: the key has no time
    later = fetch_all({"s": source}, {"s": [q("Z", minutes=30, service="api")]}, 1.0, cache=cache)["s"][0]
    assert isinstance(later, StaleResult)
    assert later.ref_id == "Z" and later.error is None and later.frame is good.frame
    assert isinstance(later.live_error, SourceUnavailable)
    assert later.stale_since is not None and stale_since(later) == later.stale_since
    assert later.notices[0] == "a notice"
    assert later.notices[-1].startswith(STALE_PREFIX) and "HTTP 503" in later.notices[-1]
    assert later.executed_query == good.executed_query
    other_params = fetch_all({"s": source}, {"s": [q("Y", service="db")]}, 1.0, cache=cache)["s"][0]
    assert not isinstance(other_params, StaleResult) and isinstance(other_params.error, SourceUnavailable)
    assert notices_of(other_params) == ["s: SourceUnavailable: HTTP 503"]


def test_last_good_is_bounded_and_param_order_free() -> None:
    cache = LastGood(max_entries=2)
    r = Result("A", "spans", empty_frame("spans"))
    for i in range(3):
        cache.put("s", q(str(i), n=i), r)
    assert cache.get("s", q("x", n=0)) is None and cache.get("s", q("x", n=2)) is not None
    cache.put("s", q("A", a=1, b=[1, 2]), r)
    assert cache.get("s", Query("B", "spans", q().start, q().end, {"b": [1, 2], "a": 1})) is not None


def test_breaker_opens_for_non_http_sources_and_short_circuits() -> None:
    source = FakeConnector("files", error=SourceUnavailable("disk gone", source="files"))
    breaker_for("files", BreakerConfig(failure_threshold=2, open_s=60))
    for _ in range(2):
        fetch_all({"files": source}, {"files": [q()]}, 1.0)
    assert breaker_for("files").state == "open"
    result = fetch_all({"files": source}, {"files": [q()]}, 1.0)["files"][0]
    assert source.calls == 2
    assert isinstance(result.error, SourceUnavailable) and "breaker open; next probe at" in result.error.message


def test_a_timed_out_call_counts_once_against_the_breaker() -> None:
    slow = FakeConnector("slow", delay_s=11)
    breaker_for("slow", BreakerConfig(failure_threshold=2, open_s=60))
    fetch_all({"slow": slow}, {"slow": [q()]}, 0.2)
    RELEASE.set()  # the straggler finishes later and must not count a second time
    _wait(lambda: bulkhead_for("slow").in_flight == 0)
    assert breaker_for("slow").snapshot().consecutive_failures == 1


def test_contract_violations_become_connector_bugs() -> None:
    class Raises(FakeConnector):
        def query(self, queries: Sequence[Query]) -> list[Result]:
            raise RuntimeError("boom")

    class Empty(FakeConnector):
        def query(self, queries: Sequence[Query]) -> list[Result]:
            return []

    results = fetch_all({"r": Raises("r"), "e": Empty("e")}, {"r": [q()], "e": [q()], "missing": [q()]}, 1.0)
    assert isinstance(results["r"][0].error, ConnectorBug) and "RuntimeError: boom" in results["r"][0].error.message
    assert isinstance(results["e"][0].error, ConnectorBug)
    assert isinstance(results["missing"][0].error, ConfigError)


def test_calls_are_logged_with_the_page_correlation_id(capsys: pytest.CaptureFixture[str], info_logs: None) -> None:
    capsys.readouterr()
    with page_run("page-123"):
        fetch_all({"ok": FakeConnector("ok"), "bad": FakeConnector("bad", error=SourceTimeout("slow"))},
                  {"ok": [q("A")], "bad": [q("B")]}, 1.0)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    calls = {line["source"]: line for line in lines if line["event"] == "source_call"}
    assert {c["correlation_id"] for c in calls.values()} == {"page-123"}
    assert calls["ok"]["outcome"] == "ok" and calls["ok"]["ref_id"] == "A" and calls["ok"]["kind"] == "spans"
    assert calls["bad"]["outcome"] == "error" and calls["bad"]["error"] == "bad: SourceTimeout: slow"
    assert calls["ok"]["call_id"] != calls["bad"]["call_id"]
    assert all(isinstance(c["duration_ms"], float) for c in calls.values())


def _wait(predicate, limit_s: float = 3.0) -> None:
    stop = time.monotonic() + limit_s
    while not predicate() and time.monotonic() < stop:
        time.sleep(0.01)
    assert predicate()


def test_garbage_behind_a_good_http_answer_counts_against_the_breaker() -> None:
    from connectors.errors import PayloadError
    from connectors.runtime.http import get_bytes, make_client
    from tests.fault_server import FaultServer

    class Garbage(FakeConnector):
        def __init__(self, name: str, url: str) -> None:
            super().__init__(name)
            self.client = make_client(SourceConfig(name, "tiny", {"url": url, "breaker": {"failure_threshold": 2, "open_s": 60}}))

        def _fetch(self, query: Query):
            get_bytes(self.client, "/x", self.name)  # the HTTP call succeeds...
            raise PayloadError("not a trace", source=self.name)  # ...the converter rejects the body

    with FaultServer() as server:
        source = Garbage("g", server.url)
        for _ in range(2):
            assert isinstance(fetch_all({"g": source}, {"g": [q()]}, 1.0)["g"][0].error, PayloadError)
        assert breaker_for("g").state == "open"
        assert breaker_for("g").snapshot().last_error == "g: PayloadError: not a trace"


def test_a_half_open_probe_lets_the_same_query_make_several_calls() -> None:
    from connectors.runtime.http import get_json, make_client
    from tests.fault_server import FaultServer, json_route

    class TwoCalls(FakeConnector):
        def __init__(self, name: str, url: str) -> None:
            super().__init__(name)
            self.client = make_client(SourceConfig(name, "tiny", {"url": url, "breaker": {"failure_threshold": 1, "open_s": 0.2}}))

        def _fetch(self, query: Query):
            get_json(self.client, "/a", self.name)
            get_json(self.client, "/b", self.name)  # must not be refused as "probe in flight"
            return empty_frame("spans"), "two calls", ()

    with FaultServer([json_route("/", {})]) as server:
        source = TwoCalls("two", server.url)
        server.mode = "http500"
        assert fetch_all({"two": source}, {"two": [q()]}, 1.0)["two"][0].error is not None
        assert breaker_for("two").state == "open"
        server.mode = "good"
        time.sleep(0.25)
        assert fetch_all({"two": source}, {"two": [q()]}, 1.0)["two"][0].ok
        assert breaker_for("two").state == "closed"
