"""connectors.runtime.http: the error map (complete over httpx's exception classes), status table, retries, deadline, breaker."""

from __future__ import annotations

import inspect
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from config import SourceConfig
from connectors.errors import (
    ConfigError,
    ConnectorError,
    PayloadError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from connectors.runtime.http import get_bytes, get_json, make_client, mapped_errors, stream_bytes
from connectors.runtime.resilience import Deadline, use_deadline
from connectors.runtime.source import breaker_for

# httpx classes that signal a programming error on our side (misuse of a stream, a cookie clash):
# they are deliberately NOT mapped, so run_query reports them as ConnectorBug instead of blaming the source.
OUR_BUGS = {"StreamError", "StreamConsumed", "StreamClosed", "ResponseNotRead", "RequestNotRead", "CookieConflict"}


def _expected(cls: type[Exception]) -> type[ConnectorError]:
    if issubclass(cls, httpx.TimeoutException):
        return SourceTimeout
    if issubclass(cls, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return ConfigError
    if issubclass(cls, httpx.DecodingError):
        return PayloadError
    if issubclass(cls, httpx.TooManyRedirects):
        return SourceRejected
    return SourceUnavailable


def _httpx_exceptions() -> list[type[Exception]]:
    return sorted(
        (obj for obj in vars(httpx).values() if inspect.isclass(obj) and issubclass(obj, Exception)),
        key=lambda c: c.__name__,
    )


def _instance(cls: type[Exception], request: httpx.Request) -> Exception:
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("boom", request=request, response=httpx.Response(503, request=request))
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=request)
    if inspect.signature(cls.__init__).parameters.keys() == {"self"}:
        return cls()
    return cls("boom")


def test_the_exception_walk_finds_every_transport_error() -> None:
    names = {c.__name__ for c in _httpx_exceptions()}
    transport = {c.__name__ for c in _httpx_exceptions() if issubclass(c, httpx.TransportError)}
    assert {"ConnectError", "ReadTimeout", "PoolTimeout", "RemoteProtocolError", "ProxyError", "UnsupportedProtocol"} <= transport
    assert OUR_BUGS <= names, "httpx renamed a class we list as a programming error"


@pytest.mark.parametrize("cls", [c for c in _httpx_exceptions() if c.__name__ not in OUR_BUGS], ids=lambda c: c.__name__)
def test_every_httpx_exception_is_mapped(cls: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise _instance(cls, request)

    client = httpx.Client(base_url="http://source.test", transport=httpx.MockTransport(handler))
    with pytest.raises(ConnectorError) as caught:
        get_json(client, "/api/x", "src", retry=False)
    assert type(caught.value) is _expected(cls), f"{cls.__name__} → {type(caught.value).__name__}"
    assert caught.value.source == "src"
    assert isinstance(caught.value.__cause__, cls)


@pytest.mark.parametrize("name", sorted(OUR_BUGS))
def test_programming_errors_stay_unmapped(name: str) -> None:
    cls = getattr(httpx, name)
    with pytest.raises(cls):
        with mapped_errors("src"):
            raise _instance(cls, httpx.Request("GET", "http://x"))


STATUS_TABLE = [
    ("ok", 200, b'{"data": []}', None),
    ("empty list", 200, b"[]", None),
    ("not found", 404, b"no such trace", SourceRejected),
    ("unauthorized", 401, b"", SourceRejected),
    ("server error", 500, b"boom", SourceUnavailable),
    ("rate limited", 429, b"slow down", SourceUnavailable),
    ("gateway timeout", 504, b"", SourceTimeout),
    ("invalid JSON", 200, b"{nope", PayloadError),
    ("html page", 200, b"<html>login</html>", PayloadError),
    ("special characters", 200, '{"s": "ünï\\u00e9 ✓"}'.encode(), None),
]


@pytest.mark.parametrize(("label", "status", "body", "expected"), STATUS_TABLE, ids=[row[0] for row in STATUS_TABLE])
def test_status_table(label: str, status: int, body: bytes, expected: type[ConnectorError] | None) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body)

    client = httpx.Client(base_url="http://source.test", transport=httpx.MockTransport(handler))
    if expected is None:
        assert get_json(client, "/api/traces", "src", {"service": "a b"}, retry=False) is not None
    else:
        with pytest.raises(expected):
            get_json(client, "/api/traces", "src", {"service": "a b"}, retry=False)
    assert str(seen[0].url) == "http://source.test/api/traces?service=a+b"


class Script:
    """A MockTransport handler that plays a list of responses/exceptions and records request times."""

    def __init__(self, *steps: httpx.Response | type[Exception]) -> None:
        self.steps = list(steps)
        self.times: list[float] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.monotonic())
        self.requests.append(request)
        step = self.steps[min(len(self.times) - 1, len(self.steps) - 1)]
        if isinstance(step, type):
            raise step("scripted", request=request)
        return step


def _client(script: Script, **options: object) -> httpx.Client:
    source = SourceConfig("src", "jaeger", {"url": "http://source.test", **options}, timeout_s=5.0)
    return make_client(source, transport=httpx.MockTransport(script))


RETRY_TABLE = [
    ("503 then ok", [httpx.Response(503), httpx.Response(200, json=[])], 2, None),
    ("502 then ok", [httpx.Response(502), httpx.Response(200, json=[])], 2, None),
    ("429 then ok", [httpx.Response(429), httpx.Response(200, json=[])], 2, None),
    ("504 twice", [httpx.Response(504)], 2, SourceTimeout),
    ("503 twice: at most one retry", [httpx.Response(503)], 2, SourceUnavailable),
    ("refused then ok", [httpx.ConnectError, httpx.Response(200, json=[])], 2, None),
    ("dropped then ok", [httpx.RemoteProtocolError, httpx.Response(200, json=[])], 2, None),
    ("500 is not retried", [httpx.Response(500), httpx.Response(200, json=[])], 1, SourceUnavailable),
    ("404 is not retried", [httpx.Response(404), httpx.Response(200, json=[])], 1, SourceRejected),
    ("read timeout is not retried", [httpx.ReadTimeout, httpx.Response(200, json=[])], 1, SourceTimeout),
    ("bad JSON is not retried", [httpx.Response(200, content=b"{"), httpx.Response(200, json=[])], 1, PayloadError),
]


@pytest.mark.parametrize(("label", "steps", "calls", "expected"), RETRY_TABLE, ids=[row[0] for row in RETRY_TABLE])
def test_retry_rules(label: str, steps: list, calls: int, expected: type[ConnectorError] | None) -> None:
    script = Script(*steps)
    client = _client(script)
    with use_deadline(3.0):
        if expected is None:
            assert get_json(client, "/api/traces", "src") == []
        else:
            with pytest.raises(expected):
                get_json(client, "/api/traces", "src")
    assert len(script.times) == calls
    if calls == 2:
        pause = script.times[1] - script.times[0]
        assert 0.05 <= pause <= 0.5, f"jittered pause of {pause:.3f} s"


def test_retry_jitter_varies() -> None:
    pauses = set()
    for _ in range(4):
        script = Script(httpx.Response(503), httpx.Response(200, json=[]))
        get_json(_client(script), "/x", "src")
        pauses.add(round(script.times[1] - script.times[0], 3))
    assert len(pauses) > 1


def test_retry_can_be_disabled_per_call_and_per_source() -> None:
    for client, kwargs in ((_client(s := Script(httpx.Response(503))), {"retry": False}), (_client(t := Script(httpx.Response(503)), retry=False), {})):
        with pytest.raises(SourceUnavailable):
            get_json(client, "/x", "src", **kwargs)
    assert len(s.times) == 1 and len(t.times) == 1


def test_retry_after_is_honoured_when_it_fits() -> None:
    script = Script(httpx.Response(503, headers={"Retry-After": "0.4"}), httpx.Response(200, json={"ok": 1}))
    with use_deadline(2.0):
        assert get_json(_client(script), "/x", "src") == {"ok": 1}
    assert script.times[1] - script.times[0] >= 0.4


def test_retry_after_http_date_is_understood() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=60)
    script = Script(httpx.Response(503, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    with use_deadline(1.5), pytest.raises(SourceUnavailable) as caught:
        get_json(_client(script), "/x", "src")
    left_s = (when - datetime.now(timezone.utc)).total_seconds()  # read after the call, so it is a lower bound
    assert len(script.times) == 1
    assert left_s - 1 <= caught.value.retry_after_s <= 60  # -1: the HTTP date drops the fraction of a second


def test_retry_after_beyond_the_deadline_fails_fast() -> None:
    script = Script(httpx.Response(503, headers={"Retry-After": "300"}))
    started = time.monotonic()
    with use_deadline(10.0), pytest.raises(SourceUnavailable) as caught:
        get_json(_client(script), "/x", "src")
    assert time.monotonic() - started < 10.0  # failed at once: slept out neither the Retry-After nor the deadline
    assert len(script.times) == 1
    assert caught.value.retry_after_s == 300


def test_no_retry_when_the_deadline_is_nearly_spent() -> None:
    script = Script(httpx.Response(503), httpx.Response(200, json=[]))
    with use_deadline(0.15), pytest.raises(SourceUnavailable):
        get_json(_client(script), "/x", "src")
    assert len(script.times) == 1


def test_timeouts_are_capped_by_the_remaining_deadline() -> None:
    script = Script(httpx.Response(200, json=[]))
    client = _client(script, timeouts={"connect_s": 2, "read_s": 4, "pool_s": 1})
    assert client.timeout.read == 4 and client.timeout.connect == 2 and client.timeout.pool == 1
    with use_deadline(0.8):
        get_json(client, "/x", "src")
    sent = script.requests[0].extensions["timeout"]
    assert 0.5 < sent["read"] <= 0.8 and 0.5 < sent["connect"] <= 0.8 and sent["pool"] <= 0.8
    get_json(client, "/x", "src")  # no deadline: the configured timeouts apply
    assert script.requests[1].extensions["timeout"]["read"] == 4


def test_an_exhausted_deadline_fails_without_io() -> None:
    script = Script(httpx.Response(200, json=[]))
    expired = Deadline(0.0)
    with use_deadline(expired), pytest.raises(SourceTimeout):
        get_json(_client(script), "/x", "src")
    assert script.times == []


def test_body_size_is_capped_declared_and_streamed() -> None:
    big = b"[" + b"1," * 400_000 + b"1]"
    declared = Script(httpx.Response(200, content=big))
    with pytest.raises(PayloadError, match="exceeds"):
        get_json(_client(declared, max_body_mb=0.5), "/x", "src")

    def chunks():
        for _ in range(100):
            yield b" " * 10_000

    streamed = Script(httpx.Response(200, content=chunks()))
    with pytest.raises(PayloadError, match="exceeds"):
        get_bytes(_client(streamed, max_body_mb=0.5), "/x", "src")


def test_get_bytes_returns_the_raw_body() -> None:
    script = Script(httpx.Response(200, content=b"# HELP up\nup 1\n"))
    assert get_bytes(_client(script), "/metrics", "src") == b"# HELP up\nup 1\n"


def test_breaker_opens_after_the_threshold_and_refuses_without_io() -> None:
    script = Script(httpx.Response(500))
    client = _client(script, breaker={"failure_threshold": 3, "open_s": 60})
    for _ in range(3):
        with pytest.raises(SourceUnavailable):
            get_json(client, "/x", "src")
    assert breaker_for("src").state == "open"
    with pytest.raises(SourceUnavailable, match=r"breaker open; next probe at \d\d:\d\d:\d\d UTC"):
        get_json(client, "/x", "src")
    assert len(script.times) == 3


def test_breaker_half_open_probe_closes_it() -> None:
    script = Script(httpx.Response(503), httpx.Response(503), httpx.Response(200, json=[]))
    client = _client(script, retry=False, breaker={"failure_threshold": 2, "open_s": 0.2})
    for _ in range(2):
        with pytest.raises(SourceUnavailable):
            get_json(client, "/x", "src")
    assert breaker_for("src").state == "open"
    time.sleep(0.25)
    assert breaker_for("src").state == "half_open"
    assert get_json(client, "/x", "src") == []
    assert breaker_for("src").state == "closed"


def test_rejections_do_not_open_the_breaker() -> None:
    script = Script(httpx.Response(404))
    client = _client(script, breaker={"failure_threshold": 2, "open_s": 60})
    for _ in range(4):
        with pytest.raises(SourceRejected):
            get_json(client, "/x", "src")
    assert breaker_for("src").state == "closed"


def test_a_client_not_made_by_make_client_has_no_breaker() -> None:
    script = Script(httpx.Response(500))
    client = httpx.Client(base_url="http://source.test", transport=httpx.MockTransport(script))
    for _ in range(5):
        with pytest.raises(SourceUnavailable):
            get_json(client, "/x", "plain", retry=False)
    assert len(script.times) == 5


def test_make_client_rejects_bad_resilience_options() -> None:
    for options in ({"breaker": {"failure_threshold": 0}}, {"timeouts": "fast"}, {"retry": "yes"}, {"bulkhead": {"max_concurrent": 1.5}}):
        with pytest.raises(ConfigError):
            make_client(SourceConfig("src", "jaeger", {"url": "http://x", **options}))


def test_secrets_never_reach_the_log(capsys: pytest.CaptureFixture[str], info_logs: None) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer s3cr3t-token"
        return httpx.Response(500, text="denied for Bearer s3cr3t-token")

    source = SourceConfig("src", "jaeger", {"url": "http://source.test"}, secrets={"token": "s3cr3t-token"})
    client = make_client(source, transport=httpx.MockTransport(handler))
    with pytest.raises(SourceUnavailable):
        get_json(client, "/x", "src", {"api_key": "k3y-value", "service": "a"}, retry=False)
    err = capsys.readouterr().err
    assert '"event": "http_request"' in err
    assert "s3cr3t" not in err and "k3y-value" not in err


def test_stream_bytes_reads_a_window_and_honours_the_deadline() -> None:
    from tests.fault_server import FaultServer

    with FaultServer([("/hystrix.stream", "text/event-stream", b"data: {}\n\n")]) as server:
        client = make_client(SourceConfig("sse", "hystrix", {"url": server.url}))
        assert stream_bytes(client, "/hystrix.stream", "sse", window_s=1.0, max_bytes=1000) == b"data: {}\n\n"
        server.mode = "trickle"  # a byte every 100 ms: the window ends, what arrived is returned
        started = time.monotonic()
        body = stream_bytes(client, "/hystrix.stream", "sse", window_s=0.5, max_bytes=1000)
        # the 0.5 s window ended the read, long before the 30 s trickle did
        assert 0.4 <= time.monotonic() - started < 30 and len(body) < 300 and body.strip() == b""
        server.mode = "blackhole"  # nothing at all before the deadline cuts the window short
        started = time.monotonic()
        with use_deadline(0.4), pytest.raises(SourceTimeout):
            stream_bytes(client, "/hystrix.stream", "sse", window_s=20.0, max_bytes=1000)
        assert time.monotonic() - started < 20.0  # the 0.4 s deadline, not the 20 s window, ended it
        server.mode = "http503_long"
        with pytest.raises(SourceUnavailable):
            stream_bytes(client, "/hystrix.stream", "sse", window_s=1.0, max_bytes=1000)
        assert breaker_for("sse").snapshot().consecutive_failures == 2
