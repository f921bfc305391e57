"""The ClickHouse source's transport, error map and layout detection, against chdb behind the HTTP front."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import polars as pl
import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.clickhouse import ClickHouseConnector
from connectors.clickhouse.client import ClickHouseClient, execution_limit_s, param_text
from connectors.clickhouse.schema import detect
from connectors.errors import ConfigError, SourceRejected, SourceTimeout, SourceUnavailable
from connectors.registry import build_connector
from connectors.runtime import http
from connectors.runtime.resilience import use_deadline
from tests.clickhouse_front import Front, start_front, traces_ddl

USER, PASSWORD = "oncall", "p@ss:word"
HOSTILE = "it's a \\ back\tslash\nand '; DROP TABLE otel_traces; --"


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    if importlib.util.find_spec("chdb") is None:
        pytest.skip("chdb (requirements-dev.txt) is not installed")
    front = start_front(tmp_path_factory.mktemp("clickhouse") / "data", USER, PASSWORD)
    try:
        front.create_traces("otel", "otel_traces", "current")
        front.sql("CREATE TABLE otel.not_traces (Timestamp DateTime64(9), TraceId String, SpanId String, "
                  "ServiceName String, SpanAttributes String) ENGINE = MergeTree ORDER BY Timestamp")
        yield front
    finally:
        front.stop()


def _source(front: Front, *, password: str = PASSWORD, timeout_s: float = 5.0, **options: object) -> SourceConfig:
    return SourceConfig("ch", "clickhouse", {"url": front.url, "database": "otel", **options}, timeout_s=timeout_s,
                        secrets={"username": USER, "password": password})


def test_typed_parameters_carry_hostile_text_unchanged(front: Front) -> None:
    client = ClickHouseClient(_source(front))
    moment = datetime(2026, 3, 14, 2, 25, 0, 123456, tzinfo=UTC)
    rows = client.rows("SELECT {s:String} AS s, {xs:Array(String)} AS xs, {t:DateTime64(6, 'UTC')} AS t, "
                       "{n:UInt32} + 1 AS n",
                       {"s": HOSTILE, "xs": [HOSTILE, "plain"], "t": moment, "n": 41})
    assert rows == [[HOSTILE, [HOSTILE, "plain"], "2026-03-14 02:25:00.123456", 42]]


def test_results_come_back_as_parquet_frames(front: Front) -> None:
    frame = ClickHouseClient(_source(front)).frame(
        "SELECT number AS n, toString(number) AS s FROM numbers({k:UInt32})", {"k": 5})
    assert frame.schema == pl.Schema({"n": pl.UInt64, "s": pl.String}) and frame["n"].to_list() == [0, 1, 2, 3, 4]


def test_bad_sql_is_rejected_with_clickhouse_message(front: Front) -> None:
    with pytest.raises(SourceRejected) as caught:
        ClickHouseClient(_source(front)).rows("SELEC 1")
    assert "code 62" in caught.value.message and "Syntax error" in caught.value.message


def test_the_deadline_sets_max_execution_time(front: Front) -> None:
    with use_deadline(6.0):
        rows = ClickHouseClient(_source(front)).rows("SELECT getSetting('max_execution_time')")
    assert 4.0 <= float(rows[0][0]) < 6.0
    assert execution_limit_s(0.5) == 1.0  # never below the server's granularity
    rows = ClickHouseClient(_source(front, timeout_s=7.0)).rows("SELECT getSetting('max_execution_time')")
    assert float(rows[0][0]) == execution_limit_s(7.0)  # without a deadline, the source's read timeout bounds it


def test_a_slow_query_stops_at_max_execution_time(front: Front) -> None:
    # the limit set explicitly and a long read timeout, so the server's stop is what ends it even on a loaded box
    # (the deadline's own limit is checked above)
    with pytest.raises(SourceTimeout) as caught:
        ClickHouseClient(_source(front, timeout_s=60.0)).rows(
            "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3",
                                                              settings={"max_execution_time": 1})
    assert "code 159" in caught.value.message  # the server's TIMEOUT_EXCEEDED, not our read timeout


@pytest.mark.parametrize("password", ["wrong", ""])
def test_wrong_credentials_are_a_clear_auth_error(front: Front, password: str) -> None:
    connector = ClickHouseConnector(_source(front, password=password))
    now = datetime.now(UTC)
    result = connector.query([Query("q", "spans", now - timedelta(hours=1), now, {"budget_traces": 10},
                                    purpose="window")])[0]
    assert isinstance(result.error, SourceRejected)
    assert "authentication failed" in result.error.message and "[connections.ch]" in result.error.describe()
    assert connector.check_health().status == "down"


def test_a_table_missing_columns_names_them(front: Front) -> None:
    connector = ClickHouseConnector(_source(front, table="not_traces"))
    health = connector.check_health()
    assert health.status == "down"
    for column in ("ParentSpanId", "Duration", "StatusCode", "ResourceAttributes"):
        assert column in health.message
    assert "SpanAttributes is String" in health.message
    now = datetime.now(UTC)
    result = connector.query([Query("q", "spans", now - timedelta(hours=1), now)])[0]
    assert isinstance(result.error, ConfigError) and "Duration" in result.error.message


def test_a_missing_table_is_a_config_error(front: Front) -> None:
    health = ClickHouseConnector(_source(front, table="nope")).check_health()
    assert health.status == "down" and "does not exist" in health.message


def test_an_empty_window_is_an_empty_spans_frame(front: Front) -> None:
    connector = ClickHouseConnector(_source(front), strict=True)
    assert connector.check_health().status == "ok"
    start = datetime(2020, 1, 1, tzinfo=UTC)
    result = connector.query([Query("q", "spans", start, start + timedelta(hours=1), {"budget_traces": 10},
                                    purpose="window")])[0]
    assert result.error is None and result.frame is not None and result.frame.height == 0
    assert result.coverage is not None and result.coverage.traces_total == 0


def test_an_unreachable_server_is_unavailable() -> None:
    client = ClickHouseClient(SourceConfig("ch", "clickhouse", {"url": "http://127.0.0.1:9"}))
    with pytest.raises(SourceUnavailable):
        client.rows("SELECT 1")


@pytest.mark.parametrize("options", [{"table": "otel_traces; DROP"}, {"database": "a.b"}, {"url": ""}])
def test_bad_options_fail_at_build(options: dict[str, str]) -> None:
    source = SourceConfig("ch", "clickhouse", {"url": "http://127.0.0.1:8123", **options})
    with pytest.raises(ConfigError):
        build_connector(source)


@pytest.mark.parametrize("code, error", [(159, SourceTimeout), (516, SourceRejected), (497, SourceRejected),
                                         (60, ConfigError), (81, ConfigError), (241, SourceUnavailable),
                                         (62, SourceRejected)])
def test_clickhouse_codes_map_onto_the_error_tree(code: int, error: type[Exception]) -> None:
    mapped = ClickHouseClient(SourceConfig("ch", "clickhouse",
                                           {"url": "http://127.0.0.1:8123"})).error_for(code, "boom\nstack")
    assert type(mapped) is error and f"code {code}" in mapped.message and "stack" not in mapped.message


def _columns(variant: str) -> dict[str, str]:
    """name -> type of the front's DDL for a layout (parsed from the CREATE TABLE text)."""
    body = traces_ddl("t", variant)[0].split("(", 1)[1]
    columns = {}
    for line in body.splitlines():
        parts = line.strip().split(" ", 1)
        if len(parts) == 2 and parts[0][:1].isupper() and not parts[0].startswith("INDEX"):
            columns[parts[0]] = parts[1].split(" CODEC")[0].rstrip(",")
    return columns


@pytest.mark.parametrize("variant", ["current", "older", "json"])
def test_each_exporter_layout_is_detected(variant: str) -> None:
    assert detect(_columns(variant), "otel", "t").variant == variant


def test_mixed_attribute_types_are_refused() -> None:
    columns = _columns("current") | {"SpanAttributes": "JSON"}
    with pytest.raises(ConfigError, match="mixes Map and JSON"):
        detect(columns, "otel", "t")


def test_param_text_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        param_text(object())


def test_attributes_keep_the_names_the_data_uses(front: Front) -> None:
    front.sql("""INSERT INTO otel.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
        ServiceName,
        ResourceAttributes, SpanAttributes, Duration, StatusCode) VALUES
        ('2026-03-14 02:00:01', '0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', '', 'GET /', 'Server', 'web',
         {'service.name': 'web', 'cloud.region': 'eu-west-1'}, {'http.response.status_code': '200'}, 1000000, 'Unset'),
        ('2026-03-14 02:00:02', '1af7651916cd43dd8448eb211c80319c', 'c7ad6b7169203331', '', 'GET /', 'Server', 'web',
         {'service.name': 'web', 'cloud.region': 'eu-west-1'}, {'region': 'custom'}, 1000000, 'Unset')""")
    connector = ClickHouseConnector(_source(front), strict=True)
    start = datetime(2026, 3, 14, 2, tzinfo=UTC)
    result = connector.query([Query("q", "spans", start, start + timedelta(minutes=1), {"budget_traces": 10},
                                    purpose="window")])[0]
    assert result.frame is not None
    frame = result.frame.sort("start")
    assert frame["attr.region"].to_list() == [None, "custom"]  # no short alias invented: roles are model/semconv's job
    assert frame["attr.cloud.region"].to_list() == ["eu-west-1", "eu-west-1"]
    assert frame["http_status"].to_list() == [200, None] and "attr.service.name" not in frame.columns



def _mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> ClickHouseClient:
    source = SourceConfig("mock", "clickhouse", {"url": "http://clickhouse.test:8123"})
    return ClickHouseClient(source, http.make_client(source, transport=httpx.MockTransport(handler)))


def test_the_query_travels_in_the_body_and_values_as_parameters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b'{"meta": [], "data": [[1]], "rows": 1}')

    assert _mock_client(handler).rows("SELECT {s:String} = {s:String}", {"s": HOSTILE}) == [[1]]
    request = seen[0]
    assert request.method == "POST" and request.content.decode() == "SELECT {s:String} = {s:String}\nFORMAT JSONCompact"
    assert request.url.params["param_s"] == HOSTILE.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    assert request.url.params["wait_end_of_query"] == "1"


def test_an_exception_after_the_200_is_still_mapped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"PAR1\x15\x04garbage Code: 241. DB::Exception: "
                              b"Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)")

    with pytest.raises(SourceUnavailable, match="code 241"):
        _mock_client(handler).frame("SELECT 1")


def test_repeated_timeouts_open_the_breaker() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ReadTimeout("slow", request=request)

    client = _mock_client(handler)
    for _ in range(3):
        with pytest.raises(SourceTimeout):
            client.rows("SELECT 1")
    with pytest.raises(SourceUnavailable, match="breaker open"):
        client.rows("SELECT 1")
    assert len(calls) == 3  # the open breaker answers without I/O
