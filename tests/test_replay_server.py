"""The replay server itself: routes, parameter checks (400 with the reason), failure modes, request log."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.replay_server import (
    ReplayServer,
    epoch_param,
    forbid,
    go_duration_param,
    header,
    int_param,
    json_map_param,
    require,
    rfc3339_param,
)


@pytest.fixture()
def server():  # type: ignore[no-untyped-def]
    with ReplayServer() as replay:
        yield replay


def get(server: ReplayServer, path: str, timeout: float = 5.0, **kwargs: object) -> httpx.Response:
    return httpx.get(server.url + path, timeout=timeout, **kwargs)  # type: ignore[arg-type]


def test_routes_exact_regex_latest_wins_and_404(server: ReplayServer) -> None:
    server.route("^/api/traces/.*$", {"which": "regex"})
    server.route("/api/traces/abc", {"which": "exact"})
    assert get(server, "/api/traces/abc").json() == {"which": "exact"}
    assert get(server, "/api/traces/zzz").json() == {"which": "regex"}
    missing = get(server, "/nope")
    assert missing.status_code == 404 and missing.text == "404 page not found\n"
    assert [s.path for s in server.seen()] == ["/api/traces/abc", "/api/traces/zzz", "/nope"]


def test_parameter_checks_reject_wrong_units_with_the_reason(server: ReplayServer) -> None:
    server.route("/api/traces", [], checks=[
        require("service"), epoch_param("start", "us"), int_param("limit", 1, 100), go_duration_param("minDuration"),
        json_map_param("tags"), rfc3339_param("t", optional=True), forbid("raw"), header("X-Scope-OrgID", "a")])
    ok = {"service": "api", "start": "1700000000000000", "limit": "5", "minDuration": "1.5ms", "tags": '{"a":"b"}',
          "t": "2024-01-01T00:00:00.5Z"}
    assert get(server, "/api/traces", params=ok, headers={"X-Scope-OrgID": "a"}).status_code == 200
    bad = [({"start": "1700000000"}, "not an epoch in us"), ({"start": "17e14"}, "not an integer"),
           ({"limit": "0"}, "limit"), ({"minDuration": "250"}, "Go duration"), ({"tags": "[1]"}, "JSON map"),
           ({"t": "yesterday"}, "RFC 3339"), ({"raw": "true"}, "unsupported"), ({"service": ""}, "missing")]
    for change, reason in bad:
        response = get(server, "/api/traces", params={**ok, **change}, headers={"X-Scope-OrgID": "a"})
        assert response.status_code == 400 and reason in response.text, (change, response.text)
    assert get(server, "/api/traces", params=ok).status_code == 400  # the tenant header is checked too
    assert server.last("/api/traces").param("service") == "api"


def test_failure_modes(server: ReplayServer) -> None:
    server.route("/x", {"ok": True}, headers={"X-Extra": "1"})
    assert get(server, "/x").headers["X-Extra"] == "1"
    server.fail_with(503, b"down")
    assert get(server, "/x").status_code == 503
    server.malformed()
    body = get(server, "/x").content
    assert body.startswith(b"{") and not body.rstrip().endswith(b"}")
    server.stall(30)
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        get(server, "/x", timeout=0.3)
    assert time.perf_counter() - started < 30  # the 0.3 s read timeout fired long before the 30 s stall ended
    server.healthy()
    assert get(server, "/x").json() == {"ok": True}


def test_responder_and_restart() -> None:
    replay = ReplayServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = replay.url
    replay.route("^/echo/.*$", lambda seen: (201, seen.path.encode()))
    with replay:
        response = get(replay, "/echo/abc")
        assert (response.status_code, response.text) == (201, "/echo/abc")
    replay.stall(10)
    # a restarted server stalls again (stop() released the first one's waiters)
    with replay, pytest.raises(httpx.ReadTimeout):
        get(replay, "/echo/x", timeout=0.3)
