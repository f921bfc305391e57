"""Unit tests of the span converters on payloads built here: variants, units, ids, caps, hostile and malformed input."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

import polars as pl
import pytest

from connectors.errors import PayloadError
from connectors.traces.convert_jaeger import convert_jaeger, spans_from_jaeger
from connectors.traces.convert_otlp import convert_otlp, spans_from_otlp
from connectors.traces.convert_zipkin import convert_zipkin, spans_from_zipkin
from connectors.traces.frame import MAX_ATTR_COLUMNS, MAX_ATTRS_PER_SPAN, MAX_VALUE_CHARS
from model.validate import validate
from tests.trace_wire import jaeger_envelope, otlp_doc, sample_spans, tempo_shape, zipkin_traces

SPANS = sample_spans(n_traces=3, spans_per_trace=3)


def otlp_span(**fields: Any) -> dict[str, Any]:
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "op", "kind": 2,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000250000000"}
    span.update(fields)
    return span


def otlp_one(span: dict[str, Any], resource_attrs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    resource = {"attributes": resource_attrs or [{"key": "service.name", "value": {"stringValue": "api"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}


def kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


# --- OTLP ----------------------------------------------------------------------------------------

def test_otlp_basic_units_and_columns() -> None:
    frame = validate(spans_from_otlp(otlp_one(otlp_span())), "spans")
    span = frame.to_dicts()[0]
    assert span["start"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert span["duration_ms"] == 250.0  # 250 000 000 ns
    assert (span["kind"], span["status"], span["service"], span["is_root"]) == ("server", "unset", "api", True)


def test_otlp_every_wrapper_gives_the_same_frame() -> None:
    doc = otlp_doc(SPANS)
    expected = spans_from_otlp(doc)
    assert expected.height == 9 and expected["is_root"].sum() == 3
    lines = "\n".join(json.dumps({"resourceSpans": [rs]}) for rs in doc["resourceSpans"]) + "\n"
    variants = {
        "str": json.dumps(doc), "bytes": json.dumps(doc).encode(), "bom": b"\xef\xbb\xbf" + json.dumps(doc).encode(),
        "jaeger v3": {"result": doc}, "json lines": lines, "tempo v1": tempo_shape(doc, v2=False),
        "tempo v2": tempo_shape(doc, v2=True), "v3 stream": "\n".join(json.dumps({"result": doc}) for _ in range(2)),
        "tempo<2": {"batches": [{**rs, "instrumentationLibrarySpans": rs["scopeSpans"], "scopeSpans": None}
                                for rs in doc["resourceSpans"]]},
    }
    sort = ["trace_id", "span_id"]
    for name, payload in variants.items():
        if name == "tempo<2":
            for rs in payload["batches"]:
                del rs["scopeSpans"]
        got = spans_from_otlp(payload)
        assert got.sort(sort).equals(expected.sort(sort)), name


def test_otlp_tempo_base64_ids_and_enum_names() -> None:
    span = otlp_span(traceId=base64.b64encode(bytes.fromhex("00" * 8 + "0f" * 8)).decode(),
                     spanId=base64.b64encode(bytes.fromhex("0102030405060708")).decode(),
                     parentSpanId=base64.b64encode(bytes.fromhex("1112131415161718")).decode(),
                     kind="SPAN_KIND_CLIENT", status={"code": "STATUS_CODE_ERROR", "message": "timeout"})
    row = spans_from_otlp(otlp_one(span)).to_dicts()[0]
    assert row["trace_id"] == "0" * 16 + "0f" * 8 and row["span_id"] == "0102030405060708"
    assert row["parent_span_id"] == "1112131415161718" and row["is_root"] is False
    assert (row["kind"], row["status"], row["attr.otel.status_description"]) == ("client", "error", "timeout")


@pytest.mark.parametrize(("kind", "expected"), [(0, "unspecified"), (1, "internal"), (4, "producer"), (5, "consumer"),
                                                ("SPAN_KIND_CONSUMER", "consumer"), ("3", "client"), (None, "unspecified")])
def test_otlp_kinds(kind: object, expected: str) -> None:
    span = otlp_span(kind=kind) if kind is not None else {k: v for k, v in otlp_span().items() if k != "kind"}
    assert spans_from_otlp(otlp_one(span))["kind"].item() == expected


def test_otlp_unknown_enums_are_notices_not_errors() -> None:
    converted = convert_otlp(otlp_one(otlp_span(kind=9, status={"code": 7})))
    assert converted.frame["kind"].item() == "unspecified" and converted.frame["status"].item() == "unset"
    assert any("unknown kind" in n for n in converted.notices) and any("unknown status" in n for n in converted.notices)


def test_otlp_attribute_values_precedence_names_and_http_status() -> None:
    span = otlp_span(attributes=[
        kv("tenant", {"stringValue": "span-wins"}), kv("retry_attempt", {"intValue": 2}),
        kv("flag", {"boolValue": True}), kv("ratio", {"doubleValue": 0.5}),
        kv("list", {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}),
        kv("map", {"kvlistValue": {"values": [kv("k", {"stringValue": "v"})]}}),
        kv("http.status_code", {"intValue": "404"}), kv("http.response.status_code", {"intValue": "503"}),
        kv("empty", {}),
    ])
    resource = [kv("service.name", {"stringValue": "api"}), kv("tenant", {"stringValue": "resource"}),
                kv("cloud.region", {"stringValue": "eu-west-1"}), kv("host.name", {"stringValue": "h1"}),
                kv("service.version", {"stringValue": "5.2.0"})]
    row = spans_from_otlp(otlp_one(span, resource)).to_dicts()[0]
    assert row["attr.tenant"] == "span-wins" and row["attr.retry_attempt"] == "2"
    assert (row["attr.flag"], row["attr.ratio"]) == ("true", "0.5")
    assert json.loads(row["attr.list"]) == ["a", "1"] and json.loads(row["attr.map"]) == {"k": "v"}
    deep: dict[str, Any] = {"stringValue": "bottom"}
    for _ in range(50):
        deep = {"arrayValue": {"values": [deep]}}
    cut = spans_from_otlp(otlp_one(otlp_span(attributes=[kv("deep", deep)])))["attr.deep"].item()
    assert "…" in cut and "bottom" not in cut  # nesting is cut, not recursed without bound
    assert row["http_status"] == 503  # the newer semantic convention wins
    assert (row["attr.cloud.region"], row["attr.host.name"], row["attr.service.version"]) == ("eu-west-1", "h1", "5.2.0")
    assert not {"attr.region", "attr.host", "attr.service_version"} & set(row)  # no alias duplicates
    assert "attr.empty" not in row
    assert "attr.http.status_code" not in row and "attr.service.name" not in row


def test_otlp_keeps_each_key_as_the_data_names_it() -> None:
    span = otlp_span(attributes=[kv("region", {"stringValue": "eu-west"}), kv("cloud.region", {"stringValue": "x"})])
    row = spans_from_otlp(otlp_one(span)).to_dicts()[0]
    assert (row["attr.region"], row["attr.cloud.region"]) == ("eu-west", "x")


def test_otlp_ids_normalised() -> None:
    spans = [otlp_span(traceId="ABCDEF", spanId="0A", parentSpanId="0000000000000000"),
             otlp_span(traceId="abcdef", spanId="0b", parentSpanId="0a")]
    frame = spans_from_otlp(otlp_one(spans[0]) | {"resourceSpans": otlp_one(spans[0])["resourceSpans"]
                                                   + otlp_one(spans[1])["resourceSpans"]})
    assert frame["trace_id"].unique().to_list() == ["0" * 26 + "abcdef"]
    assert frame["span_id"].to_list() == ["000000000000000a", "000000000000000b"]
    assert frame["parent_span_id"].to_list() == [None, "000000000000000a"]  # all-zero parent = no parent


def test_otlp_bad_ids_hashed_or_dropped_with_notices() -> None:
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        otlp_span(traceId="not-hex!", spanId="x-1"), otlp_span(traceId="not-hex!", spanId="x-2", parentSpanId="x-1"),
        otlp_span(spanId=None), otlp_span(traceId="ab" * 20)]}]}]}
    converted = convert_otlp(doc)
    frame = validate(converted.frame, "spans")
    assert frame.height == 3 and frame["service"].unique().to_list() == ["unknown_service"]
    child = frame.filter(pl.col("parent_span_id").is_not_null()).to_dicts()[0]
    assert child["parent_span_id"] in frame["span_id"].to_list()  # the tree survives the hashing
    assert any("neither hex nor base64" in n for n in converted.notices)
    assert any("dropped 1 spans without a trace id or span id" in n for n in converted.notices)


def test_otlp_missing_and_inverted_times() -> None:
    converted = convert_otlp(otlp_one(otlp_span(startTimeUnixNano="0", endTimeUnixNano="5")))
    assert converted.frame["start"].item() is None and converted.frame["duration_ms"].item() is None
    inverted = convert_otlp(otlp_one(otlp_span(endTimeUnixNano="1699999999000000000")))
    assert inverted.frame["duration_ms"].item() is None
    assert any("ending before they start" in n for n in inverted.notices)
    numeric = spans_from_otlp(otlp_one(otlp_span(startTimeUnixNano=1700000000000000000,
                                                 endTimeUnixNano=1700000000001500000)))
    assert numeric["duration_ms"].item() == 1.5  # ints accepted as well as decimal strings


@pytest.mark.parametrize(("payload", "message"), [
    (b"", "empty"), (b"\xff\xfe{", "not UTF-8"), ("{not json", "not JSON"), ("[" * 100_000, "nested"),
    ({"resourceSpans": "x"}, "must be a list"), ({"resourceSpans": [{"scopeSpans": [{"spans": [3]}]}]}, "object"),
    ({"error": {"httpCode": 404, "message": "No traces found"}}, "No traces found"),
    ({"traces": []}, "not OTLP"), (42, "must be str, bytes, dict or list"), ("1" * 5000, "unreadable value"),
    ({"resourceSpans": [{"scopeSpans": "nope"}]}, "must be a list"), ('{"a": 1}\n{"b": ', "not valid JSON"),
])
def test_otlp_malformed_is_payload_error(payload: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        spans_from_otlp(payload)  # type: ignore[arg-type]


def test_otlp_empty_documents_are_empty_frames() -> None:
    for payload in ({}, {"resourceSpans": []}, {"result": {}}, {"trace": {}, "metrics": {}}, "[]"):
        frame = validate(spans_from_otlp(payload), "spans")  # type: ignore[arg-type]
        assert frame.height == 0 and frame.width == 11


# --- hostile strings and caps ----------------------------------------------------------------------

def test_hostile_keys_and_values_are_only_data() -> None:
    nasty = ['__import__("os").system("x")', "a\nb", '"; DROP TABLE spans; --', "attr.double", "ключ", "${jndi:x}"]
    span = otlp_span(name="{{7*7}}", attributes=[kv(k, {"stringValue": k}) for k in nasty])
    frame = validate(spans_from_otlp(otlp_one(span)), "spans")
    assert frame["operation"].item() == "{{7*7}}"
    for key in nasty:
        assert frame[f"attr.{key}"].item() == key


def test_attribute_caps_with_notices() -> None:
    many = otlp_span(attributes=[kv(f"k{i}", {"stringValue": "v"}) for i in range(MAX_ATTRS_PER_SPAN + 20)]
                     + [kv("long", {"stringValue": "x" * (MAX_VALUE_CHARS + 100)}), kv("y" * 300, {"stringValue": "1"})])
    converted = convert_otlp(otlp_one(many))
    frame = converted.frame
    assert len([c for c in frame.columns if c.startswith("attr.")]) == MAX_ATTRS_PER_SPAN
    joined = " | ".join(converted.notices)
    assert "over the cap of 128 per span" in joined and "over-128-character key" in joined
    wide = {"resourceSpans": [{"scopeSpans": [{"spans": [
        otlp_span(spanId=f"{i + 1:016x}", attributes=[kv(f"key{i}", {"stringValue": "v" * 5000})])
        for i in range(MAX_ATTR_COLUMNS + 40)]}]}]}
    converted = convert_otlp(wide)
    assert len([c for c in converted.frame.columns if c.startswith("attr.")]) == MAX_ATTR_COLUMNS
    assert converted.frame.select(pl.col("^attr\\..*$").str.len_chars().max()).max_horizontal().item() == MAX_VALUE_CHARS
    joined = " | ".join(converted.notices)
    assert f"kept the {MAX_ATTR_COLUMNS} most frequent" in joined and "were cut" in joined


# --- Jaeger --------------------------------------------------------------------------------------

def jaeger_span(**fields: Any) -> dict[str, Any]:
    span = {"traceID": "1f" * 8, "spanID": "2e" * 8, "operationName": "op", "references": [],
            "startTime": 1_700_000_000_000_000, "duration": 1500, "tags": [], "processID": "p1"}
    span.update(fields)
    return span


def jaeger_doc(*spans: dict[str, Any]) -> dict[str, Any]:
    return {"data": [{"traceID": "1f" * 8, "spans": list(spans),
                      "processes": {"p1": {"serviceName": "api", "tags": [{"key": "host.name", "type": "string",
                                                                           "value": "h1"}]}}}]}


@pytest.mark.parametrize(("tags", "status"), [
    ([{"key": "error", "type": "bool", "value": True}], "error"),
    ([{"key": "error", "type": "bool", "value": "true"}], "error"),
    ([{"key": "error", "type": "bool", "value": "false"}], "unset"),
    ([{"key": "otel.status_code", "type": "string", "value": "ERROR"}], "error"),
    ([{"key": "otel.status_code", "type": "string", "value": "OK"}], "ok"),
])
def test_jaeger_error_detection(tags: list[dict[str, Any]], status: str) -> None:
    assert spans_from_jaeger(jaeger_doc(jaeger_span(tags=tags)))["status"].item() == status


def test_jaeger_tags_kind_http_and_process() -> None:
    tags = [{"key": "span.kind", "type": "string", "value": "CLIENT"},
            {"key": "http.status_code", "type": "int64", "value": 502},
            {"key": "peer.port", "type": "int64", "value": "9223372036854775222"}]
    row = spans_from_jaeger(jaeger_doc(jaeger_span(tags=tags))).to_dicts()[0]
    assert (row["kind"], row["http_status"], row["service"], row["attr.host.name"]) == ("client", 502, "api", "h1")
    assert row["duration_ms"] == 1.5 and row["trace_id"] == "0" * 16 + "1f" * 8
    assert row["attr.peer.port"] == "9223372036854775222"


def test_jaeger_parent_rules() -> None:
    follows = jaeger_span(spanID="03" * 8, references=[{"refType": "FOLLOWS_FROM", "traceID": "1f" * 8,
                                                         "spanID": "2e" * 8}])
    omitted = jaeger_span(spanID="04" * 8, references=[{"traceID": "00" * 8 + "1f" * 8, "spanID": "03" * 8}])
    legacy = jaeger_span(spanID="05" * 8, parentSpanID="04" * 8)
    frame = spans_from_jaeger(jaeger_doc(jaeger_span(), follows, omitted, legacy))
    parents = dict(zip(frame["span_id"], frame["parent_span_id"]))
    assert parents == {"2e" * 8: None, "03" * 8: "2e" * 8, "04" * 8: "03" * 8, "05" * 8: "04" * 8}


def test_jaeger_envelope_errors_and_missing_process() -> None:
    with pytest.raises(PayloadError, match="trace not found"):
        spans_from_jaeger({"data": None, "errors": [{"code": 404, "msg": "trace not found"}]})
    converted = convert_jaeger({"data": jaeger_doc(jaeger_span(processID="nope"))["data"],
                                "errors": [{"code": 500, "msg": "partial"}]})
    assert converted.frame["service"].item() == "unknown_service"
    assert any("process is missing" in n for n in converted.notices) and any("partial" in n for n in converted.notices)


def test_jaeger_matches_otlp_for_the_same_spans() -> None:
    cols = ["trace_id", "span_id", "parent_span_id", "service", "operation", "kind", "start", "duration_ms",
            "status", "http_status", "is_root", "attr.region", "attr.client_version", "attr.db.system"]
    a = spans_from_jaeger(jaeger_envelope(SPANS)).select(cols).sort("span_id")
    b = spans_from_otlp(otlp_doc(SPANS)).select(cols).sort("span_id")
    assert a.equals(b)


@pytest.mark.parametrize("payload", [{"foo": 1}, [1, 2], {"data": [{"nope": 1}]}, {"data": "x"},
                                     {"spans": [{"spanID": "1"}, 5]}, {"processes": [], "spans": []}])
def test_jaeger_malformed_is_payload_error(payload: object) -> None:
    with pytest.raises(PayloadError):
        spans_from_jaeger(payload)  # type: ignore[arg-type]


# --- Zipkin --------------------------------------------------------------------------------------

def test_zipkin_matches_otlp_for_the_same_spans() -> None:
    cols = ["trace_id", "span_id", "parent_span_id", "service", "operation", "kind", "start", "duration_ms",
            "http_status", "is_root", "attr.region"]
    z = spans_from_zipkin(zipkin_traces(SPANS))
    assert z.select(cols).sort("span_id").equals(spans_from_otlp(otlp_doc(SPANS)).select(cols).sort("span_id"))
    assert z.filter(pl.col("status") == "error")["attr.error.message"].to_list() == ["boom"]


def test_zipkin_error_presence_missing_fields_and_single_span() -> None:
    span = {"traceId": "a" * 16, "id": "b" * 16, "tags": {"error": ""}, "localEndpoint": {"serviceName": "svc"}}
    row = spans_from_zipkin(span).to_dicts()[0]  # a bare object is one span
    assert row["status"] == "error" and row["start"] is None and row["duration_ms"] is None
    assert row["kind"] == "unspecified" and row["trace_id"] == "0" * 16 + "a" * 16


def test_zipkin_shared_span_split_and_children_follow_the_server() -> None:
    trace = [
        {"traceId": "t" * 0 + "1" * 16, "id": "a" * 16, "kind": "SERVER", "name": "root", "timestamp": 10, "duration": 9,
         "localEndpoint": {"serviceName": "front"}},
        {"traceId": "1" * 16, "id": "b" * 16, "parentId": "a" * 16, "kind": "CLIENT", "name": "call", "timestamp": 11,
         "duration": 7, "localEndpoint": {"serviceName": "front"}},
        {"traceId": "1" * 16, "id": "b" * 16, "parentId": "a" * 16, "kind": "SERVER", "shared": True, "name": "call",
         "timestamp": 12, "duration": 5, "localEndpoint": {"serviceName": "back"}},
        {"traceId": "1" * 16, "id": "c" * 16, "parentId": "b" * 16, "name": "work", "timestamp": 13, "duration": 1,
         "localEndpoint": {"serviceName": "back"}},
    ]
    converted = convert_zipkin(trace)
    frame = converted.frame
    server = frame.filter((pl.col("kind") == "server") & (pl.col("service") == "back")).to_dicts()[0]
    assert server["parent_span_id"] == "b" * 16 and server["span_id"] != "b" * 16
    assert frame.filter(pl.col("operation") == "work")["parent_span_id"].item() == server["span_id"]
    assert frame.select("trace_id", "span_id").is_unique().all()
    assert spans_from_zipkin(trace).equals(frame)  # the derived id is stable


@pytest.mark.parametrize("payload", [{"foo": 1}, [[{"foo": 1}]], ["x"], '"text"', [[1]]])
def test_zipkin_malformed_is_payload_error(payload: object) -> None:
    with pytest.raises(PayloadError):
        spans_from_zipkin(payload)  # type: ignore[arg-type]


def test_converters_accept_hostile_structures_without_crashing() -> None:
    junk_tags = {"tags": [None, 3, {"key": 5}, {"key": "ok", "value": {"nested": [1, {"a": None}]}}]}
    frame = spans_from_jaeger(jaeger_doc(jaeger_span(**junk_tags)))
    assert json.loads(frame["attr.ok"].item()) == {"nested": [1, {"a": None}]}
    zipkin = spans_from_zipkin([{"traceId": "1" * 16, "id": "2" * 16, "tags": "nope", "localEndpoint": "x",
                                 "timestamp": "soon", "duration": -5, "kind": 3}])
    assert zipkin["start"].item() is None and zipkin["duration_ms"].item() is None
