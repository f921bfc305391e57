"""Big OpenTelemetry collector files through trace_files: every span, the streamed path, bad lines, progress."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl
import pytest

from config import SourceConfig
from connectors.base import LOCAL, Progress, Query
from connectors.errors import PayloadError
from connectors.traces import chunks
from connectors.traces import files as trace_files
from connectors.traces.convert_otlp import convert_otlp
from connectors.traces.files import convert_file
from tests.otel_files import COHORT, SLO_MS, GroundTruth, write_otel_file
from tests.trace_wire import otlp_doc, sample_spans


@pytest.fixture(scope="module")
def otel(tmp_path_factory: pytest.TempPathFactory) -> GroundTruth:
    return write_otel_file(tmp_path_factory.mktemp("otel") / "otel.jsonl", requests=4000, seed=3)


def _connector(directory: Path) -> trace_files.TraceFilesConnector:
    return trace_files.build(SourceConfig("otel", "trace_files", {"path": str(directory)}))


def test_window_query_returns_every_span_with_complete_coverage(otel: GroundTruth) -> None:
    connector = _connector(otel.path.parent)
    assert LOCAL in connector.capabilities
    (window, search) = connector.query([
        Query("w", "spans", otel.start, otel.end, {"limit": 20}, purpose="window"),
        Query("s", "spans", otel.start, otel.end, {"limit": 20}),
    ])
    assert window.ok and window.error is None, window.error
    frame = window.frame
    assert frame is not None and frame.height == otel.spans
    assert window.coverage is not None and window.coverage.complete
    assert window.coverage.traces_read == window.coverage.traces_total == otel.requests
    assert any("ignored params ['limit']" in n for n in window.notices)
    assert search.ok and search.coverage is None and search.frame is not None
    assert search.frame["trace_id"].n_unique() == 20  # search keeps its semantics: the newest 20 traces

    roots = frame.filter(pl.col("is_root"))
    assert roots.height == otel.requests
    assert dict(roots.group_by("http_status").len().iter_rows()) == otel.http_status_counts
    # Stable names (frontend) and legacy ones (cart) both give http_status; neither stays an attribute column.
    assert frame.filter(pl.col("kind") == "server")["http_status"].null_count() == 0
    assert {"attr.http.response.status_code", "attr.http.status_code"}.isdisjoint(frame.columns)
    # Keys as the data names them (resource and span attributes merged), no alias duplicates.
    assert {"attr.cloud.region", "attr.app.client.version", "attr.enduser.id", "attr.tenant.id"} <= set(frame.columns)
    assert {"attr.region", "attr.host", "attr.service_version"}.isdisjoint(frame.columns)


def test_the_generated_incident_is_in_the_ingested_spans(otel: GroundTruth) -> None:
    (window,) = _connector(otel.path.parent).query([Query("w", "spans", otel.start, otel.end, purpose="window")])
    assert window.frame is not None
    roots = window.frame.filter(pl.col("is_root"))
    cohort = pl.all_horizontal([pl.col(f"attr.{k}") == v for k, v in COHORT.items()])
    hit = roots.filter(cohort, pl.col("start") >= otel.incident_start)
    assert hit.height == otel.affected_requests > 0
    assert hit.filter(pl.col("duration_ms") > SLO_MS, pl.col("http_status") == 200).height >= otel.excess_bad_requests
    assert hit["attr.enduser.id"].n_unique() == otel.affected_users
    before = roots.filter(cohort, pl.col("start") < otel.incident_start)
    assert before.height > 0 and (before["duration_ms"] > 10_000).mean() < 0.05  # slow only after the start


def test_a_sub_window_holds_exactly_the_spans_starting_in_it(otel: GroundTruth) -> None:
    connector = _connector(otel.path.parent)
    (full,) = connector.query([Query("w", "spans", otel.start, otel.end, purpose="window")])
    (part,) = connector.query([Query("p", "spans", otel.incident_start, otel.end, purpose="window")])
    assert full.frame is not None and part.frame is not None
    expected = full.frame.filter(pl.col("start") >= otel.incident_start)
    assert part.frame.height == expected.height < full.frame.height
    assert part.coverage is not None and part.coverage.traces_read == expected["trace_id"].n_unique()


def test_streamed_conversion_equals_the_general_path(tmp_path: Path) -> None:
    truth = write_otel_file(tmp_path / "small.jsonl", requests=600, seed=11)
    streamed = convert_file(truth.path)
    general = convert_otlp(truth.path.read_bytes())  # json + dict walking, one document per line
    assert streamed.frame.columns == general.frame.columns
    assert streamed.frame.equals(general.frame) and streamed.frame.height == truth.spans
    zipped = tmp_path / "small.jsonl.gz"
    zipped.write_bytes(gzip.compress(truth.path.read_bytes()))
    assert convert_file(zipped).frame.equals(general.frame)


def test_malformed_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    truth = write_otel_file(tmp_path / "bad.jsonl", requests=2000, seed=5, malformed_lines=4)
    assert truth.malformed_lines == 4
    converted = convert_file(truth.path)
    assert converted.frame.height == truth.spans
    assert any("skipped 4 malformed lines" in n and "bad.jsonl" in n for n in converted.notices), converted.notices
    with truth.path.open("a", encoding="utf-8") as fh:
        fh.write('{"resourceSpans": [{"resource": "not an object"}]}\n{"resourceSpans": [{"scopeSp')  # truncated tail
    again = convert_file(truth.path)
    assert again.frame.height == truth.spans and any("skipped 6 malformed lines" in n for n in again.notices)
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"resourceSpans": 5}\nnot json\n', encoding="utf-8")
    with pytest.raises(PayloadError, match="no usable line"):
        convert_file(junk)


def test_progress_moves_from_zero_to_the_total(otel: GroundTruth, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "BLOCK_BYTES", 256 * 1024)
    connector = _connector(otel.path.parent)
    assert connector.progress() is None
    seen: list[Progress | None] = []
    real = trace_files.convert_otlp_lines

    def watched(blocks: Iterable[bytes]) -> Iterator[bytes]:
        for block in blocks:
            seen.append(connector.progress())
            yield block
        seen.append(connector.progress())

    monkeypatch.setattr(trace_files, "convert_otlp_lines", lambda blocks, *a: real(watched(blocks), *a))
    loaded = connector.load()
    size = otel.path.stat().st_size
    assert loaded.frame.height == otel.spans
    dones = [p.done for p in seen if p is not None]
    assert len(dones) == len(seen) > 10 and all(p is not None and p.total == size for p in seen)
    assert dones == sorted(dones) and 0 < dones[0] < size and dones[-1] == size
    assert connector.progress() is None  # no load in progress
    seen.clear()
    assert connector.load() is loaded and not seen  # cached: the file is not read again


def test_progress_can_be_polled_from_another_thread(otel: GroundTruth, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "BLOCK_BYTES", 128 * 1024)
    connector = _connector(otel.path.parent)
    done = threading.Event()
    loaded: list[int] = []

    def load() -> None:
        loaded.append(connector.load().frame.height)
        done.set()

    worker = threading.Thread(target=load)
    worker.start()
    polled: list[Progress] = []
    while not done.wait(0.005):  # poll as the page does, without starving the loader of the GIL
        now = connector.progress()
        if now is not None:
            polled.append(now)
    worker.join()
    assert loaded == [otel.spans] and connector.progress() is None
    assert [p.done for p in polled] == sorted(p.done for p in polled)  # never goes backwards
    assert all(p.total == otel.path.stat().st_size and 0 <= p.done <= p.total for p in polled)


def test_lines_of_other_shapes_take_the_general_path(tmp_path: Path) -> None:
    spans = sample_spans(n_traces=4, spans_per_trace=2)
    path = tmp_path / "mixed.jsonl"
    lines = [json.dumps(otlp_doc(spans[:2])),
             json.dumps(otlp_doc(spans[2:4])) + json.dumps(otlp_doc(spans[4:6])),  # two documents on one line
             json.dumps({"batches": otlp_doc(spans[6:])["resourceSpans"]})]  # Tempo's v1 wrapper
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    converted = convert_file(path)
    assert converted.frame.height == len(spans) and not any("malformed" in n for n in converted.notices)


def test_typed_and_general_paths_agree_on_odd_values(tmp_path: Path) -> None:
    def kv(key: object, value: object) -> dict[str, object]:
        return {"key": key, "value": value}
    odd = [kv("i", {"intValue": 7}), kv("s", {"intValue": "8"}), kv("b", {"boolValue": False}),
           kv("d", {"doubleValue": 1e20}), kv("raw", {"bytesValue": "AAE="}), kv("nil", {"stringValue": None}),
           kv("both", {"stringValue": None, "intValue": "9"}), kv("arr", {"arrayValue": {"values": [{"intValue": 1}]}}),
           kv("map", {"kvlistValue": {"values": [kv("k", {"boolValue": True})]}}), kv("", {"stringValue": "empty"}),
           kv("k" * 200, {"stringValue": "long"}), kv("dup", {"stringValue": "first"}),
           kv("dup", {"stringValue": "last"}),
           kv("http.status_code", {"intValue": "404"})]
    spans = [
        {"traceId": "AAECAwQFBgcICQoLDA0ODw==", "spanId": "AAECAwQFBgc=", "name": "b64", "kind": "SPAN_KIND_SERVER",
         "startTimeUnixNano": 1_700_000_000_000_000_000, "endTimeUnixNano": "1700000000500000000",
         "attributes": odd, "status": {"code": "STATUS_CODE_ERROR", "message": "boom"}},
        {"traceId": "ab" * 16, "spanId": "cd" * 8, "parentSpanId": "", "name": "no-start", "kind": 9,
         "endTimeUnixNano": "5", "status": None},
        {"traceId": "ab" * 16, "spanId": "ef" * 8, "name": "backwards", "kind": 3,
         "startTimeUnixNano": "2000", "endTimeUnixNano": "1000", "attributes": []},
    ]
    doc = {"resourceSpans": [{"resource": {"attributes": [kv("service.name", {"stringValue": "api"}),
                                                          kv("http.response.status_code", {"intValue": "503"}),
                                                          kv("dup", {"stringValue": "resource"})]},
                              "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}]}]}
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(doc) + "\n" + json.dumps(doc) + "\n", encoding="utf-8")  # the repeat is deduplicated
    typed = convert_file(path)
    general = convert_otlp(path.read_bytes())
    assert typed.frame.equals(general.frame) and typed.frame.height == 3
    assert [n.removeprefix("'odd.jsonl': ") for n in typed.notices] == list(general.notices)
    first = typed.frame.filter(pl.col("operation") == "b64").row(0, named=True)
    assert (first["http_status"], first["attr.dup"], first["attr.i"], first["kind"]) == (503, "last", "7", "server")
    assert "attr.both" not in first  # a present stringValue decides, even when null (as the general path does)
