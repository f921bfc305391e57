"""connectors.runtime.source: one runtime (policy, breaker, bulkhead) per source, HTTP or not, built once."""

from __future__ import annotations

import ast
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.errors import SourceRejected, SourceTimeout, SourceUnavailable
from connectors.registry import build_connector
from connectors.runtime.fanout import bulkhead_for, fetch_all
from connectors.runtime.health import check_all
from connectors.runtime.http import check_status
from connectors.runtime.source import breaker_for, runtime_for, runtime_for_source

RUNTIME = Path(__file__).resolve().parent.parent / "connectors" / "runtime"
END = datetime(2026, 11, 27, 12, tzinfo=UTC)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens here once the socket is closed


def test_a_non_http_source_honours_options_breaker() -> None:
    dsn = f"host=127.0.0.1 port={closed_port()} dbname=pgbouncer user=stats"
    source = SourceConfig("pg", "pgbouncer", {"admin_dsn": dsn, "breaker": {"failure_threshold": 1, "open_s": 60}},
                          timeout_s=2.0)
    connector = build_connector(source)
    query = Query("A", "pools", END - timedelta(minutes=5), END)
    (first,) = fetch_all({"pg": connector}, {"pg": [query]}, 5.0)["pg"]
    assert isinstance(first.error, SourceUnavailable) and not first.error.from_breaker
    assert breaker_for("pg").state == "open"  # one failure: the option's threshold, not the default 3
    (second,) = fetch_all({"pg": connector}, {"pg": [query]}, 5.0)["pg"]
    assert isinstance(second.error, SourceUnavailable) and second.error.from_breaker
    assert "breaker open; next probe at" in second.error.message
    (row,) = check_all({"pg": connector}, 1.0)
    assert row.status == "down" and row.breaker_state == "open" and "breaker open" in row.message


def test_a_non_http_sources_bulkhead_is_built_once() -> None:
    source = SourceConfig("demo-b", "demo", {"seed": 3, "requests": 1000, "full_trace_limit": 1000,
                                             "bulkhead": {"max_concurrent": 2, "max_queued": 1}})
    connector = build_connector(source)
    built = bulkhead_for("demo-b")
    assert (built.max_concurrent, built.max_queued) == (2, 1)
    query = Query("A", "events", END - timedelta(days=3650), END)
    plan = {"demo-b": [query]}
    assert fetch_all({"demo-b": connector}, plan, 5.0, sources={"demo-b": source})["demo-b"][0].ok
    check_all({"demo-b": connector}, 2.0)  # no source configs passed: must not resize it to the defaults
    check_all({"demo-b": connector}, 2.0, sources={"demo-b": source})
    assert fetch_all({"demo-b": connector}, plan, 5.0)["demo-b"][0].ok
    assert fetch_all({"demo-b": connector}, plan, 5.0, sources={"demo-b": source})["demo-b"][0].ok
    assert bulkhead_for("demo-b") is built
    assert runtime_for("demo-b") is runtime_for_source(source)


def test_a_changed_policy_keeps_breaker_state_and_resizes_the_bulkhead_once() -> None:
    runtime = runtime_for_source(SourceConfig("s", "demo", {"breaker": {"failure_threshold": 1}}))
    runtime.breaker.record_failure(SourceTimeout("slow", source="s"))
    old = runtime.bulkhead
    again = runtime_for_source(SourceConfig("s", "demo", {"breaker": {"failure_threshold": 5},
                                                          "bulkhead": {"max_concurrent": 1}}))
    assert again is runtime and runtime.breaker.state == "open" and runtime.breaker.config.failure_threshold == 5
    assert runtime.bulkhead is not old and runtime.bulkhead.max_concurrent == 1
    resized = runtime.bulkhead
    runtime_for_source(
        SourceConfig("s", "demo", {"breaker": {"failure_threshold": 5}, "bulkhead": {"max_concurrent": 1}})
    )
    assert runtime.bulkhead is resized


@pytest.mark.parametrize(("status", "kind"), [(404, SourceRejected), (403, SourceRejected), (503, SourceUnavailable),
                                              (504, SourceTimeout)])
def test_mapped_http_errors_carry_their_status_code(status: int, kind: type[Exception]) -> None:
    response = httpx.Response(status, text="nope", request=httpx.Request("GET", "http://x/api/traces/1"))
    with pytest.raises(kind) as caught:
        check_status(response, "src")
    assert getattr(caught.value, "status_code", None) == status
    if isinstance(caught.value, SourceRejected):
        assert caught.value.not_found == (status == 404)


def _runtime_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in RUNTIME.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[path.stem] = {
            node.module.rsplit(".", 1)[-1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("connectors.runtime.")
        }
    return graph


def test_runtime_modules_import_no_cycle_and_no_private_names() -> None:
    graph = _runtime_imports()
    assert "resilience" not in graph["policy"] and "policy" in graph["resilience"]  # the old cycle, one way now
    state: dict[str, str] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join((*path, node))}"
        state[node] = "open"
        for nxt in graph.get(node, ()):
            visit(nxt, (*path, node))
        state[node] = "done"

    for module in graph:
        visit(module, ())
    for path in RUNTIME.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("connectors."):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {node.module}"


def test_an_open_breaker_stops_a_running_calls_further_requests() -> None:
    from collections.abc import Sequence

    import polars as pl

    from connectors.base import Health, Result, run_query
    from connectors.runtime.http import get_json, make_client
    from model.schemas import empty_frame

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        breaker_for("two").record_failure(SourceTimeout("another page's call failed", source="two"))  # opens it
        return httpx.Response(200, json={})

    class TwoCalls:
        name, capabilities = "two", frozenset({"spans"})

        def __init__(self) -> None:
            source = SourceConfig("two", "tiny", {"url": "http://two.test", "breaker": {"failure_threshold": 1}})
            self.client = make_client(source, transport=httpx.MockTransport(handler))

        def check_health(self) -> Health:
            return Health("ok")

        def query(self, queries: Sequence[Query]) -> list[Result]:
            return [run_query(self.name, q, self._fetch) for q in queries]

        def _fetch(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
            get_json(self.client, "/a", self.name)
            get_json(self.client, "/b", self.name)  # the breaker opened meanwhile: refused without I/O
            return empty_frame("spans"), "two calls", ()

    queries = {"two": [Query("A", "spans", END - timedelta(minutes=5), END)]}
    (result,) = fetch_all({"two": TwoCalls()}, queries, 5.0)["two"]
    assert isinstance(result.error, SourceUnavailable) and result.error.from_breaker
    assert seen == ["/a"]
