"""A small 127.0.0.1 HTTP front over chdb that speaks the ClickHouse HTTP interface the product uses.

chdb is ClickHouse in-process with no HTTP server and one engine per process, so this runs as its own
process (``python -m tests.clickhouse_front --user U --password P``; it prints ``PORT <n>`` when ready)
and the SQL runs on the real engine. What it speaks, like ``clickhouse-server``:

* the query in the POST body, or in the ``query`` URL parameter (then the body is data, for INSERT);
* ``param_<name>`` typed query parameters, ``database``, ``default_format``, and any other URL
  parameter as a setting for this query (``max_execution_time`` …);
* credentials in ``X-ClickHouse-User``/``X-ClickHouse-Key``, basic auth or ``user``/``password``;
* errors as the server's ``Code: N. DB::Exception: …`` text with ``X-ClickHouse-Exception-Code``,
  on HTTP 401/403/400/404 for the codes the server maps so, 500 otherwise.

The table DDL follows the OpenTelemetry Collector ClickHouse exporter's templates
(``exporter/clickhouseexporter/internal/sqltemplates``): the current layout, the older one (Coroot's:
``Duration Int64``, no scope columns) and the JSON-attributes one, plus the trace-id lookup table and
its materialized view. Tests import the DDL from here; chdb is imported only in the server process.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import polars as pl

from model.encoding import decoded

_MAP = "Map(LowCardinality(String), String)"

_COMMON_HEAD = """
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),"""


def traces_ddl(table: str, variant: str) -> list[str]:
    """CREATE statements for ``table`` in the exporter's ``current``, ``older`` or ``json`` layout (+ lookup)."""
    attr_type = "JSON" if variant == "json" else _MAP
    scope_columns = "\n    ScopeName String CODEC(ZSTD(1)),\n    ScopeVersion String CODEC(ZSTD(1)),"
    scope = "" if variant == "older" else scope_columns
    duration = "Int64" if variant == "older" else "UInt64"
    indexes = "" if variant == "json" else """
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,"""
    order = ("ORDER BY (ServiceName, SpanName, toUnixTimestamp(Timestamp), TraceId)" if variant == "older"
             else "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)")
    table_sql = f"""CREATE TABLE {table} ({_COMMON_HEAD}
    ResourceAttributes {attr_type} CODEC(ZSTD(1)),{scope}
    SpanAttributes {attr_type} CODEC(ZSTD(1)),
    Duration {duration} CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes {attr_type}) CODEC(ZSTD(1)),
    Links Nested (TraceId String, SpanId String, TraceState String, Attributes {attr_type}) CODEC(ZSTD(1)),{indexes}
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
{order}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""
    lookup = f"""CREATE TABLE {table}_trace_id_ts (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""
    view = f"""CREATE MATERIALIZED VIEW {table}_trace_id_ts_mv TO {table}_trace_id_ts
AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End
FROM {table} WHERE TraceId != '' GROUP BY TraceId"""
    return [table_sql, lookup, view]


RESOURCE_KEYS = ("host", "service_version")  # written as resource attributes (with service.name); the rest per span


def exporter_rows(spans: pl.DataFrame, variant: str) -> pl.DataFrame:
    """A SPANS frame as the exporter would write it (attribute maps as key/value lists), in polars expressions.

    ``current`` spells ``Server``/``Error`` and puts the HTTP status in ``http.response.status_code``; ``older``
    spells ``SPAN_KIND_SERVER``/``STATUS_CODE_ERROR`` and uses ``http.status_code``.
    """
    spans = decoded(spans)  # the exporter writes strings
    attrs = [c for c in spans.columns if c.startswith("attr.")]
    resource = [c for c in attrs if c[len("attr."):] in RESOURCE_KEYS]
    span_attrs = [c for c in attrs if c not in resource]
    http_key = "http.status_code" if variant == "older" else "http.response.status_code"

    def kv(columns: list[str], extra: list[tuple[str, pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
        pairs = [(c[len("attr."):], pl.col(c)) for c in columns] + extra
        keys = pl.concat_list([pl.when(v.is_not_null()).then(pl.lit(k)) for k, v in pairs]).list.drop_nulls()
        values = pl.concat_list([v.cast(pl.String) for _, v in pairs]).list.drop_nulls()
        return keys, values

    res_keys, res_values = kv(resource, [("service.name", pl.col("service"))])
    span_keys, span_values = kv(span_attrs, [(http_key, pl.col("http_status"))])
    if variant == "older":
        kind = pl.lit("SPAN_KIND_") + pl.col("kind").str.to_uppercase()
        status = pl.lit("STATUS_CODE_") + pl.col("status").str.to_uppercase()
    else:
        kind, status = pl.col("kind").str.to_titlecase(), pl.col("status").str.to_titlecase()
    return spans.select(
        pl.col("start").alias("Timestamp"), pl.col("trace_id").alias("TraceId"), pl.col("span_id").alias("SpanId"),
        pl.col("parent_span_id").fill_null("").alias("ParentSpanId"), pl.col("operation").alias("SpanName"),
        kind.alias("SpanKind"), pl.col("service").alias("ServiceName"),
        res_keys.alias("res_keys"), res_values.alias("res_values"), span_keys.alias("span_keys"),
        span_values.alias("span_values"),
        (pl.col("duration_ms") * 1e6).round().cast(pl.Int64).alias("Duration"),  # ms -> ns
        status.alias("StatusCode"),
    )


def as_stored(spans: pl.DataFrame) -> pl.DataFrame:
    """The spans as the table holds them: strings, durations rounded to whole nanoseconds."""
    return decoded(spans).with_columns((pl.col("duration_ms") * 1e6).round() / 1e6)


@dataclass
class Front:
    """A running front process: ``url``, the credentials it accepts, and ``sql()`` for fixtures."""

    proc: subprocess.Popen[str]
    url: str
    user: str
    password: str

    def sql(self, statement: str, timeout_s: float = 120.0) -> str:
        response = httpx.post(self.url, content=statement.encode("utf-8"), timeout=timeout_s,
                              headers={"X-ClickHouse-User": self.user, "X-ClickHouse-Key": self.password})
        if response.status_code != 200:
            raise RuntimeError(f"front: HTTP {response.status_code}: {response.text[:500]}")
        return response.text

    def create_traces(self, database: str, table: str, variant: str) -> None:
        self.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
        for statement in traces_ddl(f"{database}.{table}", variant):
            self.sql(statement)

    def load(self, database: str, table: str, spans: pl.DataFrame, variant: str, scratch: Path) -> None:
        """Insert ``spans`` through a Parquet file the engine reads (the lookup MV fills on the way)."""
        path = scratch / f"{database}.{table}.parquet"
        exporter_rows(spans, variant).write_parquet(path)
        if variant == "json":
            res = "CAST(toJSONString(mapFromArrays(res_keys, res_values)) AS JSON)"
            span = "CAST(toJSONString(mapFromArrays(span_keys, span_values)) AS JSON)"
        else:
            res, span = "mapFromArrays(res_keys, res_values)", "mapFromArrays(span_keys, span_values)"
        self.sql(f"""INSERT INTO {database}.{table} (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
            ServiceName, ResourceAttributes, SpanAttributes, Duration, StatusCode)
            SELECT Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, {res}, {span},
                   Duration, StatusCode FROM file('{path}', Parquet)""")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


PROCESS_USER, PROCESS_PASSWORD = "faultline", "se'cret"
_process_front: list[Front] = []
_process_lock = threading.Lock()


def process_front() -> Front:
    """One front for this test process, started on first use and stopped at exit (chdb: one engine a process,
    so every module that needs a scratch database shares it; credentials :data:`PROCESS_USER`/``PASSWORD``)."""
    with _process_lock:
        if not _process_front:
            front = start_front(Path(tempfile.mkdtemp(prefix="faultline-ch-")) / "data", PROCESS_USER,
                                PROCESS_PASSWORD)
            atexit.register(front.stop)
            _process_front.append(front)
        return _process_front[0]


def start_front(data_dir: Path, user: str, password: str) -> Front:
    """Start the front in its own process (its own chdb engine) and wait until it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.clickhouse_front", "--path", str(data_dir), "--user", user,
                             "--password", password], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "PORT <n>" once the engine is up
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"the ClickHouse front did not start: {line!r}")
    front = Front(proc, f"http://127.0.0.1:{int(line.split()[1])}", user, password)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            front.sql("SELECT 1")
            return front
        except (httpx.HTTPError, RuntimeError):
            time.sleep(0.2)
    front.stop()
    raise RuntimeError("the ClickHouse front does not answer")


# ClickHouse's HTTP status for an exception code (src/Server/HTTPHandler.cpp), the ones we meet
_STATUS_BY_CODE = {516: 401, 192: 401, 193: 401, 194: 401, 497: 403, 164: 403, 62: 400, 47: 400, 36: 400,
                   60: 404, 81: 404}
_NOT_SETTINGS = {"query", "database", "default_format", "user", "password", "query_id", "session_id",
                 "compress", "decompress", "enable_http_compression", "wait_end_of_query", "buffer_size"}
_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_SETTING_VALUE = re.compile(r"^[A-Za-z0-9_.\-]*$")
_CODE = re.compile(r"Code: (\d+)\.")


class _Engine:
    """The one chdb session of this process, used by one request at a time."""

    def __init__(self, path: str | None) -> None:
        from chdb import session  # only in the server process: one engine per process

        self.session = session.Session(path) if path else session.Session()
        self.lock = threading.Lock()

    def run(self, sql: str, fmt: str, params: dict[str, str], settings: dict[str, str], database: str) -> bytes:
        with self.lock:
            self.session.query(f"USE {database}", "TSV")
            for name, value in settings.items():
                self.session.query(f"SET {name} = {value if value.replace('.', '', 1).isdigit() else repr(value)}",
                                   "TSV")
            try:
                return bytes(self.session.query(sql, fmt, params=params or None).bytes())
            finally:
                for name in settings:
                    self.session.query(f"SET {name} = DEFAULT", "TSV")


def _handler(engine: _Engine, user: str, password: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
            pass

        def do_GET(self) -> None:
            self._answer(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(self.rfile.read(length) if length else b"")

        def _answer(self, body: bytes) -> None:
            url = urlsplit(self.path)
            if url.path in ("/ping", "/") and "query" not in parse_qs(url.query) and not body:
                return self._send(200, b"Ok.\n", "text/plain")
            args = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            who, key = self._credentials(args)
            if who != user or key != password:
                return self._error(516, f"{who}: Authentication failed: password is incorrect, "
                                   "or there is no user with such name. (AUTHENTICATION_FAILED)")
            if "query" in args:
                sql = args["query"] + ("\n" + body.decode("utf-8") if body else "")
            else:
                sql = body.decode("utf-8")
            params = {k[len("param_"):]: v for k, v in args.items() if k.startswith("param_")}
            settings = {k: v for k, v in args.items() if k not in _NOT_SETTINGS and not k.startswith("param_")}
            bad = [k for k, v in settings.items() if not _SETTING_NAME.match(k) or not _SETTING_VALUE.match(v)]
            if bad:
                return self._error(115, f"Unknown setting '{bad[0]}'. (UNKNOWN_SETTING)")
            database = args.get("database", "default")
            if not _SETTING_NAME.match(database.lower()):
                return self._error(81, f"Database {database} does not exist. (UNKNOWN_DATABASE)")
            try:
                out = engine.run(sql, args.get("default_format", "TabSeparated"), params, settings, database)
            except Exception as exc:  # noqa: BLE001 — chdb raises ChdbError/RuntimeError with the server's text
                text = str(exc)
                match = _CODE.search(text)
                return self._error(int(match.group(1)) if match else 1000, text, raw=True)
            self._send(200, out, "application/octet-stream")

        def _credentials(self, args: dict[str, str]) -> tuple[str, str]:
            if "X-ClickHouse-User" in self.headers:
                return self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                who, _, key = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
                return who, key
            return args.get("user", "default"), args.get("password", "")

        def _error(self, code: int, message: str, *, raw: bool = False) -> None:
            text = message if raw else f"Code: {code}. DB::Exception: {message}"
            self._send(_STATUS_BY_CODE.get(code, 500), (text.rstrip() + "\n").encode("utf-8"),
                       "text/plain; charset=UTF-8",
                       {"X-ClickHouse-Exception-Code": str(code)})

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default=None, help="chdb data directory (default: a temporary one)")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    args = parser.parse_args(argv)
    engine = _Engine(args.path)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(engine, args.user, args.password))
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        sys.stdout.flush()


if __name__ == "__main__":
    main()
