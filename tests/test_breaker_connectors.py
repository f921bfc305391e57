"""Actuator, Hystrix/Turbine and Envoy admin connectors: values, units and stream bounds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.errors import PayloadError
from connectors.metrics.actuator import HIKARI_METRICS, ActuatorConnector, parse_rate, parse_zoned
from connectors.metrics.envoy import EnvoyConnector
from connectors.metrics.hystrix import HystrixConnector, breakers_from_hystrix, events_from_hystrix
from model.validate import validate
from tests import breaker_payloads as P
from tests.replay_server import ReplayServer

WIDE = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))


def test_rates_and_zoned_times() -> None:
    assert parse_rate("50.0%") == 0.5 and parse_rate("-1.0%") is None and parse_rate(None) is None
    berlin = parse_zoned("2024-01-15T10:30:45.123+01:00[Europe/Berlin]")
    assert berlin == datetime(2024, 1, 15, 9, 30, 45, 123000, tzinfo=UTC)
    assert parse_zoned("2024-01-15T10:30:45Z") == datetime(2024, 1, 15, 10, 30, 45, tzinfo=UTC)
    with pytest.raises(PayloadError):
        parse_rate("fifty")


@pytest.fixture()
def actuator_server() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        server.route("/manage/circuitbreakers", P.actuator_breakers("OPEN"))
        server.route("/manage/circuitbreakerevents", P.actuator_events())
        connections = P.actuator_metric("hikaricp.connections", "VALUE", 10, ("db1", "db2"))
        server.route("/manage/metrics/hikaricp.connections", connections)
        for col, (name, stat) in HIKARI_METRICS.items():
            if col == "timeouts":
                continue  # an app without that meter: 404, the column is left null
            value = {"active": 10, "idle": 0, "pending": 4, "max": 10, "acquire_p99_ms": 2.5}[col]
            server.route(f"/manage/metrics/{name}", P.actuator_metric(name, stat, value))
        yield server


def test_actuator_breakers_snapshot_plus_transitions(actuator_server: ReplayServer) -> None:
    options = {"url": actuator_server.url, "base_path": "manage", "instance": "app-1"}
    conn = ActuatorConnector(SourceConfig("a", "actuator", options))
    [breakers, events] = conn.query([Query("A", "breakers", *WIDE), Query("B", "events", *WIDE)])
    frame = validate(breakers.frame, "breakers")
    assert frame["state"].to_list() == ["open", "half_open", "open"]  # two transitions then the snapshot
    assert frame["ts"][0] == datetime(2025, 6, 2, 10, 0, 2, 500000, tzinfo=UTC)  # +02:00[Europe/Berlin] → UTC
    snapshot = frame.row(2, named=True)
    assert (snapshot["failure_rate"], snapshot["slow_call_rate"]) == (0.625, None)
    assert (snapshot["not_permitted_calls"], snapshot["instance"]) == (42, "app-1")
    moves = events.frame.filter(pl.col("kind") == "breaker_transition")
    assert [json.loads(a)["to_state"] for a in moves["attrs"]] == ["open", "half_open"]
    config = json.loads(events.frame.filter(pl.col("kind") == "breaker_config")["attrs"].item())
    assert config["failure_rate_threshold"] == 0.5 and config["slow_call_rate_threshold"] == 1.0
    assert events.notices and "ring buffer" in events.notices[0]


def test_actuator_events_outside_the_window_are_dropped(actuator_server: ReplayServer) -> None:
    conn = ActuatorConnector(SourceConfig("a", "actuator", {"url": actuator_server.url, "base_path": "/manage"}))
    window = (datetime(2025, 6, 2, 10, 1, tzinfo=UTC), datetime(2025, 6, 2, 10, 2, tzinfo=UTC))
    [events] = conn.query([Query("A", "events", *window)])
    moves = events.frame.filter(pl.col("kind") == "breaker_transition")
    assert moves["description"].to_list() == ["breaker payments open -> half_open"]


def test_actuator_pools_per_pool_with_tag_filter(actuator_server: ReplayServer) -> None:
    conn = ActuatorConnector(SourceConfig("a", "actuator", {"url": actuator_server.url, "base_path": "/manage"}))
    [pools] = conn.query([Query("A", "pools", *WIDE)])
    frame = validate(pools.frame, "pools")
    assert frame["pool"].to_list() == ["db1", "db2"]
    row = frame.row(0, named=True)
    fields = (row["active"], row["pending"], row["max"], row["timeouts"], row["acquire_p99_ms"])
    assert fields == (10, 4, 10, None, 2500.0)
    tags = {s.param("tag") for s in actuator_server.seen("/manage/metrics/hikaricp.connections.active")}
    assert tags == {"pool:db1", "pool:db2"}


def test_turbine_sums_are_divided_and_open_objects_understood() -> None:
    frame = validate(breakers_from_hystrix(P.hystrix_stream(n=3, open_at=1, hosts=4), "t"), "breakers")
    assert frame["state"].to_list() == ["closed", "open", "open"]
    assert frame["failure_rate"].to_list() == [0.6, 0.6, 0.6]  # 240 % summed over 4 hosts
    assert frame["calls"].to_list() == [10, 15, 20] and frame["not_permitted_calls"].to_list() == [0, 3, 6]
    moves = events_from_hystrix(P.hystrix_stream(n=3, open_at=1), "t").filter(pl.col("kind") == "breaker_transition")
    assert json.loads(moves["attrs"].item())["to_state"] == "open"


class _Endless(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    payload = P.hystrix_stream(n=1)
    stop = threading.Event()
    requests = 0

    def log_message(self, *args: object) -> None:
        return

    def do_GET(self) -> None:
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            self.wfile.write(self.payload)
            while not self.stop.is_set():
                self.wfile.write(b":ping\n\n" * 64)
                self.wfile.flush()
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            return


@pytest.fixture()
def endless() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _Endless.stop.set()
    httpd.shutdown()
    httpd.server_close()
    _Endless.stop.clear()
    _Endless.requests = 0


def test_endless_stream_is_read_for_a_bounded_time(endless: str) -> None:
    options = {"url": endless, "window_s": 0.5, "max_bytes": 10_000_000}
    conn = HystrixConnector(SourceConfig("h", "hystrix", options, timeout_s=30))
    started = time.perf_counter()
    [breakers, pools] = conn.query([Query("A", "breakers", *WIDE), Query("B", "pools", *WIDE)])
    elapsed = time.perf_counter() - started
    # The stream never ends and the deadline is 60x the window: returning before it means the window ended
    # the read (a lower bound on time cannot flake, a loaded machine only makes it longer).
    assert 0.4 < elapsed < 30
    assert _Endless.requests == 1  # one read serves both queries
    assert breakers.frame.height == 1 and pools.frame.height == 1


def test_endless_stream_is_read_up_to_a_byte_bound(endless: str) -> None:
    options = {"url": endless, "window_s": 300, "max_bytes": 20_000}
    conn = HystrixConnector(SourceConfig("h", "hystrix", options, timeout_s=30))
    started = time.perf_counter()
    text, executed = conn.read_window()
    # 20 kB arrive in about half a second; returning before the 30 s deadline means the byte bound ended the read.
    assert len(text) <= 20_000 and time.perf_counter() - started < 30 and "20000 B" in executed


def test_envoy_admin_values() -> None:
    with ReplayServer() as server:
        server.route("/clusters", P.envoy_clusters())
        server.route("/stats", P.envoy_stats())
        conn = EnvoyConnector(SourceConfig("e", "envoy", {"url": server.url, "instance": "sidecar-1"}))
        [breakers, pools, events] = conn.query([Query(k, k, *WIDE) for k in ("breakers", "pools", "events")])
        assert server.last("/stats").param("format") == "json" and server.last("/clusters").param("format") == "json"
    cluster = "outbound|9080||reviews.default.svc.cluster.local"
    rows = {(r["breaker"], r["instance"]): r for r in breakers.frame.rows(named=True)}
    assert rows[(cluster, "sidecar-1")]["state"] == "open" and rows[(cluster, "sidecar-1")]["not_permitted_calls"] == 19
    ejected = rows[(cluster, "10.0.0.2:9080")]
    assert ejected["state"] == "open" and ejected["failure_rate"] == 0.5
    assert rows[(cluster, "10.0.0.1:9080")]["state"] == "closed"
    pool = pools.frame.row(0, named=True)
    assert (pool["active"], pool["pending"], pool["max"], pool["timeouts"]) == (4, 9, 4, 17)
    assert events.frame["kind"].to_list() == ["outlier_ejection"]
