"""Golden tests over EVERY real trace payload in ../shared/fixtures/{jaeger,otlp,zipkin}.

For each file: sniff + convert, validate the SPANS schema, check invariants, compare a small summary
with tests/golden/traces/<file>.json (regenerate with FAULTLINE_UPDATE_GOLDEN=1 after checking the
diff), and compare counts recomputed independently from the raw JSON. Key facts of each payload are
also asserted by hand below, so a golden file can never bless a wrong conversion on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from connectors.errors import PayloadError
from connectors.traces.convert_jaeger import convert_jaeger
from connectors.traces.convert_otlp import convert_otlp
from connectors.traces.convert_zipkin import convert_zipkin
from connectors.traces.files import convert_file, sniff_format
from model.validate import validate
from tests.shared import shared_dir, shared_path

GOLDEN = Path(__file__).parent / "golden" / "traces"
TRACE_DIRS = ("jaeger", "otlp", "zipkin")
NOT_TRACES = {
    "jaeger/api_v3/GetServices.json": "a service list (GET /api/v3/services), not spans",
    "jaeger/api_v3/GetOperations.json": "an operation list (GET /api/v3/operations), not spans",
    "jaeger/api_v3/FindTraceSummaries.json": "trace summaries (GET /api/v3/trace-summaries), not spans",
    "jaeger/jaeger-ui/small.json": "dependency links (GET /api/dependencies), not spans",
}
CONVERTERS = {"otlp": convert_otlp, "jaeger": convert_jaeger, "zipkin": convert_zipkin}


def _fixtures() -> list[str]:
    base = shared_dir()
    if base is None:
        return ["<shared fixtures absent>"]
    root = base / "fixtures"
    return sorted(str(p.relative_to(root)) for d in TRACE_DIRS for p in (root / d).rglob("*") if p.is_file())


def _golden_path(rel: str) -> Path:
    return GOLDEN / (rel.replace("/", "__").removesuffix(".json") + ".json")


def summary(frame: pl.DataFrame, notices: tuple[str, ...]) -> dict[str, Any]:
    """A small, diff-friendly digest of a converted frame (the fixture itself is not copied)."""
    fixed = frame.select(pl.all().exclude("^attr\\..*$")).sort("trace_id", "span_id", "operation", "start")
    rows = fixed.with_columns(pl.col("start").dt.to_string("%Y-%m-%dT%H:%M:%S%.6f")).write_json()
    return {
        "spans": frame.height,
        "roots": int(frame["is_root"].sum()),
        "traces": frame["trace_id"].n_unique(),
        "errors": frame.filter(pl.col("status") == "error").height,
        "services": sorted(frame["service"].unique().to_list()),
        "kinds": dict(sorted(frame["kind"].value_counts().iter_rows())),
        "http_statuses": sorted(frame["http_status"].drop_nulls().unique().to_list()),
        "duration_ms_total": round(float(frame["duration_ms"].sum()), 6),
        "attr_columns": sorted(c for c in frame.columns if c.startswith("attr.")),
        "notices": list(notices),
        "rows_sha256": hashlib.sha256(rows.encode()).hexdigest(),
    }


@pytest.mark.parametrize("rel", _fixtures())
def test_fixture_matches_golden(rel: str) -> None:
    path = shared_path("fixtures", *rel.split("/"))
    if rel in NOT_TRACES:
        pytest.skip(f"{rel}: {NOT_TRACES[rel]}")
    data = path.read_bytes()
    fmt = sniff_format(data)
    assert fmt == rel.split("/")[0] or (rel.startswith("jaeger/api_v3/") and fmt == "otlp") \
        or (rel == "jaeger/jaeger-ui/otlp2jaeger-in.json" and fmt == "otlp")
    converted = convert_file(path)
    frame = validate(converted.frame, "spans")
    direct = CONVERTERS[fmt](data).frame
    assert direct.equals(frame), "sniffed and explicit conversion differ"
    _invariants(frame)
    _raw_facts(fmt, json_docs(data), frame)
    got = summary(frame, tuple(n.split(": ", 1)[1] for n in converted.notices))
    golden = _golden_path(rel)
    if os.environ.get("FAULTLINE_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert golden.exists(), f"no golden file {golden.name}; run with FAULTLINE_UPDATE_GOLDEN=1 and review it"
    assert got == json.loads(golden.read_text(encoding="utf-8"))


@pytest.mark.parametrize("rel", sorted(NOT_TRACES))
def test_non_trace_fixtures_are_rejected_clearly(rel: str) -> None:
    data = shared_path("fixtures", *rel.split("/")).read_bytes()
    with pytest.raises(PayloadError, match="not OTLP, Jaeger or Zipkin trace JSON"):
        sniff_format(data)


def json_docs(data: bytes) -> Any:
    text = data.decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _invariants(frame: pl.DataFrame) -> None:
    assert frame["trace_id"].str.contains("^[0-9a-f]{32}$").all()
    assert frame["span_id"].str.contains("^[0-9a-f]{16}$").all()
    assert frame["parent_span_id"].drop_nulls().str.contains("^[0-9a-f]{16}$").all()
    assert frame["is_root"].to_list() == frame["parent_span_id"].is_null().to_list()
    assert (frame["duration_ms"].drop_nulls() >= 0).all()
    assert frame.schema["start"] == pl.Datetime("us", "UTC")
    assert frame["status"].is_in(["ok", "error", "unset"]).all()
    assert frame["kind"].is_in(["server", "client", "producer", "consumer", "internal", "unspecified"]).all()
    assert not {"attr.error", "attr.span.kind", "attr.http.status_code", "attr.service.name"} & set(frame.columns)


def _raw_facts(fmt: str, doc: Any, frame: pl.DataFrame) -> None:
    """Counts recomputed from the raw JSON with no code shared with the converters."""
    if fmt == "zipkin":
        spans = [s for item in doc for s in (item if isinstance(item, list) else [item])]
        assert frame.height == len(spans)
        assert frame.filter(pl.col("status") == "error").height == sum("error" in s.get("tags", {}) for s in spans)
        assert frame["duration_ms"].sum() == pytest.approx(sum(s.get("duration", 0) for s in spans) / 1000)
        services = {s.get("localEndpoint", {}).get("serviceName", "unknown_service") for s in spans}
        assert set(frame["service"]) == services
    elif fmt == "jaeger":
        traces = doc["data"] if isinstance(doc, dict) and "data" in doc else doc if isinstance(doc, list) else [doc]
        spans = [s for t in traces for s in t.get("spans", [t])]
        unique = {json.dumps(s, sort_keys=True) for s in spans}  # Jaeger's dedupe adjuster drops exact copies
        assert frame.height == len(unique)
        errors = sum(any(t["key"] == "error" and t["value"] in (True, "true") for t in s["tags"])
                     for s in map(json.loads, unique))
        assert frame.filter(pl.col("status") == "error").height == errors
        assert frame["duration_ms"].sum() == pytest.approx(sum(json.loads(s)["duration"] for s in unique) / 1000)
    else:
        docs = doc if isinstance(doc, list) else [doc]
        spans = [s for d in docs for rs in d.get("result", d)["resourceSpans"] for ss in rs["scopeSpans"]
                 for s in ss["spans"]]
        unique = {json.dumps(s, sort_keys=True): s for s in spans}.values()
        assert frame.height == len(unique)
        timed = [s for s in unique if "startTimeUnixNano" in s]
        total_ms = sum(int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"]) for s in timed) / 1e6
        assert frame["duration_ms"].sum() == pytest.approx(total_ms)
        assert frame.filter(pl.col("status") == "error").height == sum(
            (s.get("status") or {}).get("code") == 2 for s in unique)


def load(rel: str) -> pl.DataFrame:
    return convert_file(shared_path("fixtures", *rel.split("/"))).frame


def row(frame: pl.DataFrame, span_id: str) -> dict[str, Any]:
    rows = frame.filter(pl.col("span_id") == span_id).to_dicts()
    assert len(rows) == 1, f"{len(rows)} spans with id {span_id}"
    return rows[0]


def test_otlp_spec_example_hand_checked() -> None:
    frame = load("otlp/trace.json")
    span = row(frame, "eee19b7ec3c1b174")  # UPPER-case hex in the file, lower-cased here
    assert span["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert span["parent_span_id"] == "eee19b7ec3c1b173" and span["is_root"] is False
    assert span["duration_ms"] == 1000.0  # 1544712661000000000 - 1544712660000000000 ns
    assert span["start"] == datetime(2018, 12, 13, 14, 51, tzinfo=UTC)
    assert (span["kind"], span["service"], span["attr.my.span.attr"]) == ("server", "my.service", "some value")


def test_otlp_jaeger_storage_example_hand_checked() -> None:
    frame = load("otlp/example_trace.json")
    assert frame.height == 5 and frame["is_root"].all()  # no span names a parent
    assert frame["duration_ms"].to_list() == [0.1] * 5  # 100 000 ns each
    assert sorted(frame["service"].unique()) == ["example-service-1", "example-service-2", "example-service-3"]
    assert row(frame, "0000000000000006")["kind"] == "server" and row(frame, "0000000000000007")["kind"] == "client"


def test_otlp_json_lines_hand_checked() -> None:
    frame = load("otlp/otlp2jaeger-multi-in.json.txt")  # 4 lines, one TracesData each
    assert frame.height == 4 and frame["is_root"].sum() == 1
    main = row(frame, "eff3153be6b1fb93")  # parentSpanId "" means root
    assert main["is_root"] and main["operation"] == "main"
    assert main["duration_ms"] == pytest.approx(176.321958)  # 1711138247116321958 - 1711138246940000000 ns
    assert frame["attr.telemetry.sdk.language"].unique().to_list() == ["nodejs"]  # resource attributes flattened


def test_jaeger_api_v3_hand_checked() -> None:
    for rel in ("jaeger/api_v3/GetTrace.json", "jaeger/api_v3/FindTraces.json"):
        span = row(load(rel), "0000000000000002")
        assert span["trace_id"] == "0" * 31 + "1" and span["status"] == "error" and span["kind"] == "server"
        assert span["start"] is None and span["duration_ms"] is None  # the snapshot has no timestamps


def test_jaeger_anonymizer_inline_process_and_string_bool() -> None:
    frame = load("jaeger/jaeger/trace_success.json")
    assert frame["trace_id"].unique().to_list() == ["00000000000000002be38093ead7a083"]  # 16 hex -> 32
    client = row(frame, "7bd66f09ba90ea3d")
    assert client["status"] == "error"  # {"type":"bool","value":"true"}: a string
    assert (client["kind"], client["service"], client["duration_ms"]) == ("client", "3c220036602f839e", 32.782)
    assert row(frame, "7606ddfe69932d34")["duration_ms"] == 267.037  # 267037 µs


def test_jaeger_ui01_references_and_warnings() -> None:
    converted = convert_file(shared_path("fixtures", "jaeger", "jaeger", "ui_01.json"))
    frame = converted.frame
    # the first CHILD_OF points into another trace (00ff): the parent is the same-trace CHILD_OF
    assert row(frame, "0000000000000004")["parent_span_id"] == "0000000000000002"
    assert row(frame, "0000000000000005")["parent_span_id"] == "0000000000000004"
    assert frame.filter(pl.col("status") == "error")["operation"].to_list() == ["some-operation"]
    assert any("some trace warning" in n for n in converted.notices)
    assert any("share a span id" in n for n in converted.notices)  # span 0002 appears twice, differently


def test_jaeger_ui_traces_hand_checked() -> None:
    normal = load("jaeger/jaeger-ui/testTraceNormal.json")
    root = normal.filter(pl.col("is_root")).to_dicts()
    assert len(root) == 1 and root[0]["operation"] == "GET /api/customer/owners/8/pets/10"
    assert root[0]["duration_ms"] == 4.902 and root[0]["service"] == "api-gateway"
    assert row(normal, "622a5079b565623e")["attr.sql"] == "select * from pet"
    among = load("jaeger/jaeger-ui/spansAmongEachOther.json")
    assert among["trace_id"].unique().to_list() == ["0df84e36b9e2ee3815d07f0867a5be1f"]  # 31 hex, padded
    assert "0a68c6983a6d81a2" in among["span_id"].to_list()  # 15 hex, padded
    synthetic = convert_file(shared_path("fixtures", "jaeger", "jaeger-ui", "testTrace.json"))
    assert synthetic.frame.height == 11 and synthetic.frame["is_root"].sum() == 1  # tree kept through hashing
    assert any("neither hex nor base64" in n for n in synthetic.notices)


def test_otlp_and_jaeger_renderings_of_one_trace_agree() -> None:
    cols = ["trace_id", "span_id", "parent_span_id", "service", "operation", "kind", "start", "duration_ms", "status"]
    single_in, single_out = load("jaeger/jaeger-ui/otlp2jaeger-in.json"), load("jaeger/jaeger-ui/otlp2jaeger-out.json")
    assert single_in.height == 1  # the two identical spans are one span
    assert single_in.select(cols).equals(single_out.select(cols))
    assert single_in["duration_ms"].item() == 0.123
    multi_in = load("otlp/otlp2jaeger-multi-in.json.txt")
    multi_out = load("jaeger/jaeger-ui/oltp2jaeger-multi-out.json")
    key = ["span_id", "parent_span_id", "operation", "kind", "service"]
    assert multi_in.select(key).sort("span_id").equals(multi_out.select(key).sort("span_id"))
    # Jaeger keeps µs: the OTLP ns durations agree once truncated to µs
    ns = multi_in.sort("span_id")["duration_ms"].to_list()
    us = multi_out.sort("span_id")["duration_ms"].to_list()
    assert [int(d * 1000) for d in ns] == [round(d * 1000) for d in us]


def test_zipkin_shared_ids_hand_checked() -> None:
    skew = load("zipkin/skew.json")
    client = skew.filter(pl.col("span_id") == "74280ae0c10d8062").to_dicts()
    assert len(client) == 1 and client[0]["kind"] == "client" and client[0]["service"] == "servicea"
    server = skew.filter(pl.col("parent_span_id") == "74280ae0c10d8062").to_dicts()
    assert len(server) == 1 and server[0]["kind"] == "server" and server[0]["service"] == "serviceb"
    # the local "async" span (parentId = the shared id) now hangs under the serviceb server span
    assert skew.filter(pl.col("operation") == "async")["parent_span_id"].item() == server[0]["span_id"]
    assert skew.filter(pl.col("is_root"))["span_id"].to_list() == ["bf396325699c84bf"]
    smart = load("zipkin/smartthings-oauth-authorization.json")
    assert smart.height == 175 and smart.select("trace_id", "span_id").is_unique().all()  # 41 shared ids split
    assert smart.filter(pl.col("status") == "error").height == 2


def test_zipkin_single_traces_hand_checked() -> None:
    envoy = load("zipkin/envoy.json")
    span = envoy.to_dicts()[0]
    assert (span["http_status"], span["duration_ms"], span["kind"]) == (200, 127.115, "server")
    assert span["service"] == "unknown_service" and span["attr.upstream_cluster"] == "service_google"
    db = load("zipkin/simple-db-p6.json")
    assert set(db.filter(pl.col("kind") == "client")["attr.peer.service"]) == {"app_db"}
    messaging = load("zipkin/messaging.json")
    assert messaging["trace_id"].unique().to_list() == ["5aab74dbb904746bb33447baae403ed6"]  # 128-bit as is
    assert sorted(messaging["kind"]) == ["consumer", "producer", "server", "unspecified"]
    kafka = load("zipkin/messaging-kafka.json")
    assert kafka.height == 28 and kafka.filter(pl.col("status") == "error").height == 3
