"""Issue 12's proof: on OpenTelemetry-SDK-shaped data the app analyses the whole incident window.

One generated hour (tests/otel_files.py: 21,000 requests, current semantic conventions, an incident in the
first half) reaches the Overview three ways: a ``trace_files`` source, an upload, and a Jaeger v1 API on
127.0.0.1 that only answers "newest N traces" searches, which the app samples evenly across the window.
Each time the top suspect is the injected cohort, the detected start is within 60 s of the truth, users
affected are within 15 % of the truth, and the figures say what they were computed over.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.cohort import cohort_label
from connectors.traces.files import spans_from_file
from tests.conftest import REPO, app_test, run_until_drawn
from tests.otel_files import GroundTruth, write_otel_file
from tests.replay_server import ReplayServer, Seen, epoch_param, int_param
from tests.trace_payloads import spans_from_frame
from tests.trace_wire import Span, jaeger_envelope

REQUESTS = 21_000
SAMPLE_BUDGET = 4_000  # traces the app may fetch from the search-only backend: a fifth of the window


@pytest.fixture(scope="module")
def hour(tmp_path_factory: pytest.TempPathFactory) -> GroundTruth:
    folder = tmp_path_factory.mktemp("otel")
    return write_otel_file(folder / "shop.jsonl", requests=REQUESTS, seed=7)


def _configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, truth: GroundTruth, source: str) -> None:
    config = tmp_path / "sources.yaml"
    config.write_text(f"window: {{start: {truth.start.isoformat()}, end: {truth.end.isoformat()}}}\n"
                      f"sources:\n  - {source}\n")
    monkeypatch.setenv("FAULTLINE_SOURCES", str(config))
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.chdir(REPO)


def _number(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text))


def _assert_finds_the_incident(at: AppTest, truth: GroundTruth) -> dict[str, str]:
    shown = {m.label: m.value for m in at.metric}
    label = cohort_label(truth.cohort.items())
    suspects = [md.value for md in at.markdown if md.value.startswith("### ")]
    assert suspects and all(f"{k}={v}" in suspects[0] for k, v in truth.cohort.items()), (suspects, label)
    since = next(md.value for md in at.markdown if md.value.startswith("**Incident since "))
    hh_mm = re.search(r"Incident since (\d\d):(\d\d)", since)
    assert hh_mm, since
    detected = truth.start.replace(hour=int(hh_mm[1]), minute=int(hh_mm[2]))
    assert abs((detected - truth.incident_start).total_seconds()) <= 60, (since, truth.incident_start)
    users = _number(shown["Users affected"])
    assert abs(users - truth.affected_users) <= 0.15 * truth.affected_users, (users, truth.affected_users)
    return shown


def _computed_over(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if "Computed over" in c.value]


def test_a_trace_file_source_is_analysed_whole(hour: GroundTruth, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(tmp_path, monkeypatch, hour,
               f"{{name: shop, type: trace_files, options: {{path: '{hour.path.parent}'}}}}")
    at = run_until_drawn(app_test())
    _assert_finds_the_incident(at, hour)
    assert any(f"all {hour.requests:,} requests" in line for line in _computed_over(at)), _computed_over(at)
    assert not any("SourceTimeout" in e.value for e in at.error), [e.value for e in at.error]


def test_an_upload_is_analysed_whole(hour: GroundTruth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the configured source serves nothing of this hour: every request comes from the upload
    empty = tmp_path / "empty"
    empty.mkdir()
    _configure(tmp_path, monkeypatch, hour, f"{{name: none, type: trace_files, options: {{path: '{empty}'}}}}")
    at = app_test()
    at.run()
    at.switch_page("views/traces.py").run()
    at.file_uploader(key="trace_upload").set_value((hour.path.name, hour.path.read_bytes(), "application/json")).run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("views/overview.py")
    _assert_finds_the_incident(run_until_drawn(at), hour)
    assert any(f"all {hour.requests:,} requests" in line for line in _computed_over(at)), _computed_over(at)


def _jaeger(server: ReplayServer, spans: list[Span]) -> None:
    """A Jaeger v1 query service: each search answers the newest ``limit`` traces that start in [start, end)."""
    roots = sorted((s for s in spans if s.parent_id is None), key=lambda s: s.start_us, reverse=True)
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)

    def search(seen: Seen) -> tuple[int, bytes]:
        lo, hi, limit = int(seen.param("start") or 0), int(seen.param("end") or 0), int(seen.param("limit") or 20)
        newest = [r.trace_id for r in roots if lo <= r.start_us < hi][:limit]
        return 200, json.dumps(jaeger_envelope([s for t in newest for s in by_trace[t]])).encode()

    server.route("/api/services", {"data": ["frontend"], "total": 1, "limit": 0, "offset": 0, "errors": None})
    server.route("/api/traces", search, checks=[epoch_param("start", "us"), epoch_param("end", "us"),
                                                int_param("limit", 1, 1000, optional=False)])


def test_a_search_only_backend_is_sampled_evenly_and_says_so(hour: GroundTruth, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spans = spans_from_frame(spans_from_file(hour.path))
    monkeypatch.setenv("FAULTLINE_WINDOW_BUDGET_TRACES", str(SAMPLE_BUDGET))
    with ReplayServer() as server:
        _jaeger(server, spans)
        _configure(tmp_path, monkeypatch, hour,
                   f"{{name: jaeger, type: jaeger, timeout_s: 30, options: {{url: '{server.url}', api: v1}}}}")
        at = run_until_drawn(app_test())
        searched = [s for s in server.seen("/api/traces") if s.path == "/api/traces"]
    shown = _assert_finds_the_incident(at, hour)
    assert sum(int(s.param("limit") or 0) for s in searched) <= SAMPLE_BUDGET
    lines = _computed_over(at)
    sampled = [line for line in lines if "sampled evenly across the window" in line]
    assert sampled, lines
    of_total = re.search(r"([\d,]+) of ≈ ([\d,]+) traces", sampled[0])
    assert of_total, sampled[0]
    read, total = (int(x.replace(",", "")) for x in of_total.groups())
    assert read <= SAMPLE_BUDGET < hour.requests and abs(total - hour.requests) <= 0.15 * hour.requests
    assert shown["Bad requests (excess)"].startswith("≈"), shown  # counts from a sample are scaled and say so
    excess = _number(shown["Bad requests (excess)"])
    assert abs(excess - hour.excess_bad_requests) <= 0.3 * hour.excess_bad_requests, (excess, hour.excess_bad_requests)
