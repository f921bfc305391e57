"""Error mapping through the trace connectors (httpx.MockTransport: unit tests of the mapping only).

Every ``httpx.TransportError`` subclass raised under a trace connector must come out of ``query()``
as a ``ConnectorError`` in ``Result.error`` (timeouts as ``SourceTimeout``), never as a raise or a
``ConnectorBug``; HTTP statuses map onto the tree the same way for every trace backend.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.errors import (
    ConnectorBug,
    ConnectorError,
    PayloadError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from connectors.traces.jaeger import JaegerConnector
from connectors.traces.search_http import TraceHttpConnector
from connectors.traces.tempo import TempoConnector
from connectors.traces.zipkin import ZipkinConnector

START = datetime(2024, 1, 1, tzinfo=UTC)
QUERY = Query("A", "spans", START, START + timedelta(minutes=5), {"service": "api"})


def transport_errors() -> list[type[httpx.TransportError]]:
    found, todo = [], [httpx.TransportError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: c.__name__)


FACTORIES: dict[str, Callable[[httpx.Client], TraceHttpConnector]] = {
    "jaeger-v1": lambda c: JaegerConnector(SourceConfig("j1", "jaeger", {"url": "http://jaeger", "api": "v1"}), c),
    "jaeger-v3": lambda c: JaegerConnector(SourceConfig("j3", "jaeger", {"url": "http://jaeger", "api": "v3"}), c),
    "tempo": lambda c: TempoConnector(SourceConfig("t", "tempo", {"url": "http://tempo"}), c),
    "zipkin": lambda c: ZipkinConnector(SourceConfig("z", "zipkin", {"url": "http://zipkin"}), c),
}


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://backend")


def test_the_walk_finds_the_known_transport_errors() -> None:
    names = {c.__name__ for c in transport_errors()}
    assert {"ConnectError", "ReadTimeout", "PoolTimeout", "RemoteProtocolError", "ProxyError"} <= names


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("error", transport_errors(), ids=lambda c: c.__name__)
def test_every_transport_error_is_mapped(name: str, error: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request) if _takes_request(error) else error("simulated")
    connector = FACTORIES[name](client(handler))
    (result,) = connector.query([QUERY])
    assert isinstance(result.error, ConnectorError) and not isinstance(result.error, ConnectorBug), result.error
    if issubclass(error, httpx.TimeoutException):
        assert isinstance(result.error, SourceTimeout)
    assert result.frame is None and result.error.source == connector.name
    assert connector.check_health().status == "down"


def _takes_request(error: type[Exception]) -> bool:
    try:
        error("x", request=httpx.Request("GET", "http://x"))  # type: ignore[call-arg]
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize(("status", "body", "expected"), [
    (401, b"unauthorized", SourceRejected), (403, b"forbidden", SourceRejected), (400, b"bad query", SourceRejected),
    (429, b"slow down", SourceUnavailable), (500, b"boom", SourceUnavailable), (504, b"gateway", SourceTimeout),
    (200, b"<html>login</html>", PayloadError), (200, b'{"unexpected": ', PayloadError),
])
def test_status_and_body_mapping(name: str, status: int, body: bytes, expected: type[ConnectorError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Retry-After": "0"})
    (result,) = FACTORIES[name](client(handler)).query([QUERY])
    assert isinstance(result.error, expected), (name, status, result.error)
    assert "Traceback" not in result.error.describe()
    if expected is PayloadError:
        assert "points at" in result.error.describe()  # what to check, for the on-call engineer


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_the_exact_urls_sent(name: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(404, content=b"not found")
    (result,) = FACTORIES[name](client(handler)).query([Query("B", "spans", START, START, {"trace_id": "ABC"})])
    assert result.ok and result.frame.height == 0  # 404 on a trace lookup is "no such trace"
    expected = {"jaeger-v1": ["/api/traces/0000000000000abc"], "jaeger-v3": ["/api/v3/traces/0000000000000abc"],
                "tempo": ["/api/v2/traces/00000000000000000000000000000abc",
                          "/api/traces/00000000000000000000000000000abc"],
                "zipkin": ["/api/v2/trace/0000000000000abc"]}[name]
    assert [r.url.path for r in sent] == expected


@pytest.mark.parametrize("type_name", ["jaeger", "tempo", "zipkin", "trace_files"])
def test_registry_builds_every_trace_connector(type_name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from connectors.registry import build_connector

    options = {"path": str(tmp_path)} if type_name == "trace_files" else {"url": "http://127.0.0.1:9"}
    connector = build_connector(SourceConfig(f"{type_name}-reg", type_name, options))
    local = {"local"} if type_name == "trace_files" else set()  # connectors.base.LOCAL: reads the user's files
    assert connector.capabilities == frozenset({"spans", "trace_by_id", "search"} | local)
    assert connector.name == f"{type_name}-reg"
