"""A real HTTP server on 127.0.0.1 that replays recorded payloads at the backends' real paths.

It checks the query parameters it receives (answering 400 with the reason when one is wrong, the
way a real backend rejects a bad unit) and can be switched to fail: answer 500, stall, or send a
malformed body. Reusable by any connector test::

    with ReplayServer() as server:
        server.route("/api/traces", payload, checks=[epoch_param("start", "us"), epoch_param("end", "us")])
        connector = build(SourceConfig("j", "jaeger", {"url": server.url}))
        ...
        assert server.last("/api/traces").params["service"] == ["api"]

Paths are exact, or regular expressions when they start with ``^``. Every request is recorded in
``server.requests`` (path, params, headers) whether it was answered or rejected.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


Check = Callable[[Seen], "str | None"]  # returns why the request is wrong, or None
Responder = Callable[[Seen], "bytes | tuple[int, bytes]"]


@dataclass
class Route:
    pattern: re.Pattern[str]
    body: bytes | Responder
    status: int = 200
    content_type: str = "application/json"
    checks: tuple[Check, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)


def _as_bytes(body: bytes | str | dict[str, Any] | list[Any]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


class ReplayServer:
    """See the module docstring. ``mode`` is ``normal``, ``fail``, ``stall`` or ``malformed``."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.requests: list[Seen] = []
        self.mode = "normal"
        self.fail_status = 500
        self.fail_body = b"internal error"
        self.stall_s = 5.0
        self.malformed_body = b'{"data": [{"traceID": "abc", "spans": [{'
        self._release = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- configuration -----------------------------------------------------------------------

    def route(self, path: str, body: bytes | str | dict[str, Any] | list[Any] | Responder, *, status: int = 200,
              checks: Iterable[Check] = (), content_type: str = "application/json",
              headers: Mapping[str, str] | None = None) -> ReplayServer:
        """Serve ``body`` at ``path`` (exact, or a regex when it starts with ``^``); later routes win."""
        pattern = re.compile(path if path.startswith("^") else "^" + re.escape(path) + "$")
        payload = body if callable(body) else _as_bytes(body)
        self.routes.insert(0, Route(pattern, payload, status, content_type, tuple(checks), dict(headers or {})))
        return self

    def fail_with(self, status: int = 500, body: bytes = b"internal error") -> None:
        self.mode, self.fail_status, self.fail_body = "fail", status, body

    def stall(self, seconds: float = 5.0) -> None:
        """Accept the request, then send nothing for ``seconds`` (released early by ``stop``)."""
        self.mode, self.stall_s = "stall", seconds

    def malformed(self, body: bytes | None = None) -> None:
        """Answer 200 with a truncated JSON body on every path."""
        self.mode = "malformed"
        if body is not None:
            self.malformed_body = body

    def healthy(self) -> None:
        self.mode = "normal"

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("ReplayServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReplayServer:
        self._release.clear()
        handler = type("Handler", (_Handler,), {"replay": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # type: ignore[attr-defined]  # a stalled handler must not block stop()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection --------------------------------------------------------------------------

    def seen(self, path_prefix: str = "") -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def last(self, path_prefix: str = "") -> Seen:
        found = self.seen(path_prefix)
        if not found:
            raise AssertionError(f"no request to {path_prefix!r}; saw {[r.path for r in self.seen()]}")
        return found[-1]

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)


class QuietHandler(BaseHTTPRequestHandler):
    """A test server's handler: no access log, and a client that gave up is not an error."""

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass


class _Handler(QuietHandler):
    replay: ReplayServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add ~40 ms per request
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        """A query in the body (ClickHouse's HTTP interface): read and dropped; faults and routes as for GET."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer("POST")

    def do_GET(self) -> None:
        self._answer("GET")

    def _answer(self, method: str) -> None:
        parts = urlsplit(self.path)
        seen = Seen(method, parts.path, parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()})
        server = self.replay
        server._record(seen)
        if server.mode == "stall":
            server._release.wait(server.stall_s)
            return self._send(503, b"stalled", "text/plain")
        if server.mode == "fail":
            return self._send(server.fail_status, server.fail_body, "text/plain")
        route = next((r for r in server.routes if r.pattern.match(seen.path)), None)
        if route is None:
            return self._send(404, b"404 page not found\n", "text/plain")
        problems = [p for p in (check(seen) for check in route.checks) if p]
        if problems:
            return self._send(400, ("bad request: " + "; ".join(problems)).encode(), "text/plain")
        if server.mode == "malformed":
            return self._send(200, server.malformed_body, "application/json")
        status, body = route.status, route.body
        if callable(body):
            answer = body(seen)
            status, body = answer if isinstance(answer, tuple) else (status, answer)
        self._send(status, body, route.content_type, route.headers)


# --- parameter checks (each returns why the request is wrong, or None) --------------------------

# Plausible epoch ranges per unit (years ~2001..5138): a value in the wrong unit falls outside.
_EPOCH_RANGES = {"s": (1e9, 1e11), "ms": (1e12, 1e14), "us": (1e15, 1e17), "ns": (1e18, 1e20)}
_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def require(*names: str) -> Check:
    def check(seen: Seen) -> str | None:
        missing = [n for n in names if not seen.param(n)]
        return f"missing required parameter(s) {missing}" if missing else None
    return check


def forbid(*names: str) -> Check:
    def check(seen: Seen) -> str | None:
        present = [n for n in names if n in seen.params]
        return f"unsupported parameter(s) {present}" if present else None
    return check


def epoch_param(name: str, unit: str, *, optional: bool = False) -> Check:
    """An integer epoch timestamp in ``unit`` (s, ms, us, ns)."""
    low, high = _EPOCH_RANGES[unit]

    def check(seen: Seen) -> str | None:
        value = seen.param(name)
        if value is None:
            return None if optional else f"missing {name} (epoch {unit})"
        if not re.fullmatch(r"\d+", value):
            return f"{name}={value!r} is not an integer epoch in {unit}"
        return None if low <= int(value) < high else f"{name}={value} is not an epoch in {unit}"
    return check


def int_param(name: str, low: int, high: int, *, optional: bool = True) -> Check:
    def check(seen: Seen) -> str | None:
        value = seen.param(name)
        if value is None:
            return None if optional else f"missing {name}"
        if not re.fullmatch(r"-?\d+", value) or not low <= int(value) <= high:
            return f"{name}={value!r} is not an integer in {low}..{high}"
        return None
    return check


def go_duration_param(name: str) -> Check:
    def check(seen: Seen) -> str | None:
        value = seen.param(name)
        if value is None or _GO_DURATION.match(value):
            return None
        return f"{name}={value!r} is not a Go duration"
    return check


def rfc3339_param(name: str, *, optional: bool = False) -> Check:
    def check(seen: Seen) -> str | None:
        value = seen.param(name)
        if value is None:
            return None if optional else f"missing {name} (RFC 3339)"
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"{name}={value!r} is not RFC 3339"
        return None if parsed.tzinfo is not None else f"{name}={value!r} has no time zone"
    return check


def json_map_param(name: str) -> Check:
    def check(seen: Seen) -> str | None:
        value = seen.param(name)
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            return f"{name} is not JSON"
        ok = isinstance(parsed, dict) and all(isinstance(v, str) for v in parsed.values())
        return None if ok else f"{name} must be a JSON map of strings"
    return check


def header(name: str, value: str) -> Check:
    def check(seen: Seen) -> str | None:
        got = seen.headers.get(name.lower())
        return None if got == value else f"header {name} is {got!r}, expected {value!r}"
    return check
