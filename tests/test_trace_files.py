"""trace_files: sniffing, files, uploads (limits, gzip), and the directory connector's search and cache."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.errors import ConfigError, PayloadError
from connectors.registry import build_connector
from connectors.traces import files as trace_files
from connectors.traces.files import sniff_format, spans_from_file, spans_from_upload
from tests.shared import shared_path
from tests.trace_wire import BASE_US, jaeger_envelope, otlp_doc, sample_spans, zipkin_traces

SPANS = sample_spans(n_traces=6, spans_per_trace=2)
T0 = datetime.fromtimestamp(BASE_US / 1e6, tz=timezone.utc)


def write(path: Path, payload: object) -> Path:
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload), encoding="utf-8")
    return path


def test_sniff_format_on_every_wire_shape() -> None:
    lines = "\n".join(json.dumps({"resourceSpans": [rs]}) for rs in otlp_doc(SPANS)["resourceSpans"])
    cases = {
        "otlp": [otlp_doc(SPANS), {"result": otlp_doc(SPANS)}, {"batches": []}, {"trace": {}}, lines],
        "jaeger": [jaeger_envelope(SPANS), jaeger_envelope(SPANS)["data"], jaeger_envelope(SPANS)["data"][0],
                   {"data": None, "errors": [{"code": 404, "msg": "x"}]}],
        "zipkin": [zipkin_traces(SPANS), zipkin_traces(SPANS)[0], []],
    }
    for fmt, payloads in cases.items():
        for payload in payloads:
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            assert sniff_format(data) == fmt, payload
    for junk in (b'{"status": "success", "data": {"resultType": "matrix"}}', b"[1, 2]", b'"x"', b"# HELP x"):
        with pytest.raises(PayloadError):
            sniff_format(junk)


def test_spans_from_file_formats_and_errors(tmp_path: Path) -> None:
    otlp = write(tmp_path / "a.json", otlp_doc(SPANS))
    assert spans_from_file(otlp).height == 12 and spans_from_file(otlp, "otlp").height == 12
    with pytest.raises(ConfigError, match="unknown trace format"):
        spans_from_file(otlp, "protobuf")
    with pytest.raises(PayloadError, match="a.json"):
        spans_from_file(otlp, "zipkin")  # explicit but wrong format: a clear error naming the file
    with pytest.raises(ConfigError, match="cannot read trace file"):
        spans_from_file(tmp_path / "missing.json")
    binary = tmp_path / "export.proto"
    binary.write_bytes(b"\x00\x00\x01\x02\x0a\x0b")
    with pytest.raises(PayloadError, match="protobuf"):
        spans_from_file(binary)
    zipped = tmp_path / "z.json.gz"
    zipped.write_bytes(gzip.compress(json.dumps(zipkin_traces(SPANS)).encode()))
    assert spans_from_file(zipped).height == 12


def test_uploads_are_limited_and_all_or_nothing() -> None:
    data = json.dumps(jaeger_envelope(SPANS)).encode()
    frame = spans_from_upload(data, "traces.json")
    assert frame.height == 12 and frame.filter(pl.col("status") == "error").height == 2
    with pytest.raises(PayloadError, match="limit is 100 bytes"):
        spans_from_upload(data, "traces.json", max_bytes=100)
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    assert len(bomb) < 100_000
    with pytest.raises(PayloadError, match="inflates to more than"):
        spans_from_upload(bomb, "bomb.json.gz", max_bytes=1_000_000)
    with pytest.raises(PayloadError, match="must be bytes"):
        spans_from_upload("text", "x.json")  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="half.json"):
        spans_from_upload(data[: len(data) // 2], "half.json")


def test_real_fixtures_from_a_directory(tmp_path: Path) -> None:
    for rel in ("zipkin/yelp.json", "otlp/otlp2jaeger-multi-in.json.txt", "jaeger/jaeger-ui/testTraceNormal.json",
                "jaeger/jaeger-ui/small.json"):
        shutil.copy(shared_path("fixtures", *rel.split("/")), tmp_path / Path(rel).name)  # copied at test time only
    connector = trace_files.build(SourceConfig("captured", "trace_files", {"path": str(tmp_path)}))
    window = (datetime(2019, 1, 1, tzinfo=timezone.utc), datetime(2025, 1, 1, tzinfo=timezone.utc))
    everything, yelp, by_id = connector.query([
        Query("all", "spans", *window, {"limit": 10}),
        Query("yelp", "spans", *window, {"service": "spectre"}),
        Query("id", "spans", *window, {"trace_id": "4766f1209f70a5e2e55417fc296fd101"}),
    ])
    assert everything.ok and everything.frame.height == 16 + 4 + 5 and everything.frame["trace_id"].n_unique() == 3
    assert any("skipped small.json" in n for n in everything.notices)
    assert yelp.frame["trace_id"].unique().to_list() == ["0000000000000000a03ee8fff1dcd9b9"]
    assert yelp.frame.height == 16  # whole traces, not only the matching span
    assert by_id.frame.height == 5 and "attr.sql" in by_id.frame.columns and "attr.ecosystem" not in by_id.frame.columns
    health = connector.check_health()
    assert health.status == "degraded" and "1 of 4" in health.message


def test_search_window_limit_tags_and_durations(tmp_path: Path) -> None:
    write(tmp_path / "otlp.json", otlp_doc(SPANS[:6]))
    write(tmp_path / "zipkin.json", zipkin_traces(SPANS[6:]))
    connector = trace_files.build(SourceConfig("f", "trace_files", {"path": str(tmp_path)}))
    t = T0

    def run(params: dict[str, object], start: datetime = t - timedelta(hours=1), end: datetime = t + timedelta(hours=1)):
        (result,) = connector.query([Query("q", "spans", start, end, params)])
        assert result.ok, result.error
        return result.frame
    assert run({})["trace_id"].n_unique() == 6
    newest = run({"limit": 2})
    assert sorted(newest["trace_id"].unique()) == [f"{5:032x}", f"{6:032x}"]  # newest first
    (full,) = connector.query([Query("q", "spans", t - timedelta(hours=1), t + timedelta(hours=1), {"limit": 2})])
    assert any("showing 2 traces, the query limit" in n for n in full.notices)
    (roomy,) = connector.query([Query("q", "spans", t - timedelta(hours=1), t + timedelta(hours=1), {"limit": 7})])
    assert not any("query limit" in n for n in roomy.notices)
    assert run({}, t + timedelta(seconds=2), t + timedelta(seconds=4))["trace_id"].n_unique() == 2
    assert run({"tags": {"region": "eu-west"}})["trace_id"].n_unique() == 3
    assert run({"tags": {"error": "true"}})["trace_id"].n_unique() == 2
    assert run({"tags": {"http.status_code": "500"}})["trace_id"].n_unique() == 2
    assert run({"min_duration_ms": 254})["trace_id"].n_unique() == 2  # roots last 250..255 ms
    assert run({"operation": "charge-1", "max_duration_ms": 10})["trace_id"].n_unique() == 6
    assert run({"tags": {"no.such": "x"}}).height == 0


def test_files_are_converted_once_until_they_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "a.json", otlp_doc(SPANS))
    calls = []
    real = trace_files.convert_file
    monkeypatch.setattr(trace_files, "convert_file", lambda *a, **k: calls.append(a) or real(*a, **k))
    connector = trace_files.build(SourceConfig("f", "trace_files", {"path": str(tmp_path)}))
    connector.load()
    connector.load()
    assert len(calls) == 1
    write(path, otlp_doc(SPANS[:2]))
    os.utime(path, ns=(1, 10**18))
    assert connector.load().frame.height == 2 and len(calls) == 2


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="options.path"):
        trace_files.build(SourceConfig("f", "trace_files", {}))
    with pytest.raises(ConfigError, match="unknown trace format"):
        trace_files.build(SourceConfig("f", "trace_files", {"path": str(tmp_path), "format": "xml"}))
    gone = build_connector(SourceConfig("f", "trace_files", {"path": str(tmp_path / "nope")}))
    (result,) = gone.query([Query("q", "spans", T0, T0, {})])
    assert isinstance(result.error, ConfigError) and gone.check_health().status == "down"
    empty = trace_files.build(SourceConfig("f", "trace_files", {"path": str(tmp_path)}))
    (result,) = empty.query([Query("q", "spans", T0, T0, {})])
    assert result.ok and result.frame.height == 0 and empty.check_health().status == "degraded"


def test_recursive_option(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "t.ndjson", otlp_doc(SPANS))
    flat = trace_files.build(SourceConfig("f", "trace_files", {"path": str(tmp_path)}))
    deep = trace_files.build(SourceConfig("f", "trace_files", {"path": str(tmp_path), "recursive": True}))
    assert flat.load().frame.height == 0 and deep.load().frame.height == 12


@pytest.mark.parametrize("options", [{"recursive": "false"}, {"max_file_bytes": "big"}, {"max_file_bytes": 0}])
def test_bad_options_are_config_errors(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        trace_files.build(SourceConfig("f", "trace_files", {"path": str(tmp_path), **options}))
