"""A real HTTP server on 127.0.0.1 that misbehaves on demand, plus a tiny connector to prove the suite.

``FaultServer(routes)`` serves ``routes`` (path prefix -> (content type, body)) while ``mode`` is
``"good"``; every other mode applies to every path:

=============  ==============================================================================
stall          waits 30 s, then answers the good payload (a "200 OK in 30 s" partial failure)
blackhole      accepts, reads the request, never answers
trickle        200 with a 1 MB Content-Length, then one byte every 100 ms
http500        500 Internal Server Error
http503_ra     503 with ``Retry-After: 1`` (fits a 1.5 s budget: retried once)
http503_long   503 with ``Retry-After: 120`` (does not fit: not retried)
malformed      200 with a JSON body that is not JSON
truncated      200 whose Content-Length promises more than is sent before the close
huge           200 with a 200 MB body (declared), streamed until the client gives up
reset          reads the request, then resets the connection (RST)
refused        the listening socket is closed: connection refused (``mode = "good"`` re-opens it)
=============  ==============================================================================
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import polars as pl

from config import SourceConfig
from connectors.base import Health, Query, Result, run_query
from connectors.errors import ConnectorError, PayloadError
from connectors.runtime.http import get_json, make_client
from model.schemas import empty_frame
from tests.replay_server import QuietHandler

FAULTS = (
    "stall", "blackhole", "trickle", "http500", "http503_ra", "http503_long", "malformed", "truncated", "huge", "reset",
    "refused",
)
Route = tuple[str, str, bytes]  # (path prefix, content type, body)
STALL_S = 30.0  # >= 10x any deadline the tests use, so "returned before the stall ended" cannot flake


def json_route(prefix: str, payload: Any) -> Route:
    return (prefix, "application/json", json.dumps(payload).encode())


class _Handler(QuietHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 — a query in the body (ClickHouse's HTTP interface)
        self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def _good(self) -> None:
        """The good answer: the route's payload, or the upstream's answer to the same request."""
        upstream = self.server.owner.upstream
        if upstream is None:
            content_type, body = self.server.owner.route_for(self.path)
            return self._send(200, body, content_type)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        answer = httpx.request(self.command, upstream + self.path, content=getattr(self, "_body", b""),
                               headers=headers, timeout=60.0)
        self._send(answer.status_code, answer.content, answer.headers.get("content-type", "text/plain"))

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        srv = self.server
        with srv.lock:
            srv.hits += 1
            srv.paths.append(self.path)
        mode = srv.owner.mode
        if mode == "stall":
            if srv.owner.stop.wait(STALL_S):
                return
            mode = "good"
        if mode == "good":
            self._good()
        elif mode == "blackhole":
            srv.owner.stop.wait(30.0)
        elif mode == "trickle":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(1_000_000))
            self.end_headers()
            for _ in range(300):
                if srv.owner.stop.wait(0.1):
                    return
                self.wfile.write(b" ")
                self.wfile.flush()
        elif mode == "http500":
            self._send(500, b"internal error", "text/plain")
        elif mode == "http503_ra":
            self._send(503, b"busy", "text/plain", {"Retry-After": "1"})
        elif mode == "http503_long":
            self._send(503, b"down for maintenance", "text/plain", {"Retry-After": "120"})
        elif mode == "malformed":
            self._send(200, b'{"data": [1, 2,, "status": }', "application/json")
        elif mode == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.write(b'{"data": [{"traceID": "ab')
            self.wfile.flush()
            self.close_connection = True
        elif mode == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(200 * 1024 * 1024))
            self.end_headers()
            chunk = b'{"x": 1},' * 7000
            for _ in range(4000):
                if srv.owner.stop.is_set():
                    return
                self.wfile.write(chunk)
        elif mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # linger 0: the kernel sends RST, not FIN
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: FaultServer, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.owner = owner
        self.lock = threading.Lock()
        self.hits = 0
        self.paths: list[str] = []

    def handle_error(self, request: Any, client_address: Any) -> None:  # resets and broken pipes are expected
        pass


class FaultServer:
    """Start with ``with FaultServer(routes) as srv:``; set ``srv.mode`` to one of :data:`FAULTS` or ``"good"``."""

    def __init__(self, routes: Sequence[Route] = (), default: Route = ("", "application/json", b"{}"), *,
                 upstream: str | None = None) -> None:
        self.routes = sorted(routes, key=lambda r: -len(r[0]))
        self.upstream = upstream  # good mode forwards every request here instead (a real backend behind the faults)
        self.default = default
        self.stop = threading.Event()
        self._mode = "good"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._hits_before = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hits(self) -> int:
        return self._hits_before + (self._server.hits if self._server else 0)

    def route_for(self, path: str) -> tuple[str, bytes]:
        bare = path.split("?", 1)[0]
        for prefix, content_type, body in self.routes:
            if bare.startswith(prefix):
                return content_type, body
        return self.default[1], self.default[2]

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value == "refused" and self._server is not None:
            self._stop_server()
        elif value != "refused" and self._server is None:
            self._start_server(self.port)
        self._mode = value

    def _start_server(self, port: int) -> None:
        self.stop.clear()
        self._server = _Server(self, port)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _stop_server(self) -> None:
        assert self._server is not None
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._hits_before += self._server.hits
        self._server = None

    def __enter__(self) -> FaultServer:
        self._start_server(0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._stop_server()
        self.stop.set()


class TinyHttpConnector:
    """The smallest honest HTTP connector: GET /api/traces through connectors.runtime.http, empty spans frame."""

    capabilities = frozenset({"spans"})

    def __init__(self, source: SourceConfig) -> None:
        self.name = source.name
        self.client = make_client(source)

    def check_health(self) -> Health:
        started = time.perf_counter()
        try:
            get_json(self.client, "/api/services", self.name)
        except ConnectorError as exc:
            return Health("down", exc.describe())
        return Health("ok", "", (time.perf_counter() - started) * 1000.0)

    def query(self, queries: Sequence[Query]) -> list[Result]:
        return [run_query(self.name, q, self._fetch) for q in queries]

    def _fetch(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        payload = get_json(self.client, "/api/traces", self.name, {"service": query.params.get("service", "")})
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise PayloadError("expected {'data': [...]}", source=self.name)
        return empty_frame("spans"), f"GET /api/traces service={query.params.get('service', '')}", ()


def build_tiny(source: SourceConfig) -> TinyHttpConnector:
    return TinyHttpConnector(source)
