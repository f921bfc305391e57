"""The UI data layer: typed problems on the pages, generation-keyed caches, coverage next to figures,
scaled counts from a sample, and a slow local source that shows progress instead of timing out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from analysis.blast_radius import blast_radius, split_periods
from analysis.changepoint import detect_incident_start
from analysis.outcome import roots, with_outcome
from connectors.base import Coverage, Query, Result
from connectors.errors import SourceUnavailable
from connectors.registry import CONNECTOR_TYPES, load_config
from connectors.runtime.fanout import StaleResult
from snapshots.store import SnapshotStore
from tests import fake_sources
from tests.conftest import app_test
from ui import coverage as cov
from ui import frames, generation
from ui.loader import Loader, Request
from ui.problems import Notice, Problem, read_result

YAML = """
window: {{start: 2026-03-14T02:00:00Z, end: 2026-03-14T03:00:00Z}}
slo:
  default_ms: 2000
  rules: [{{service: gateway, operation: "POST /checkout", ms: 3000}}]
sources:
  - {{name: demo, type: demo, options: {{seed: 11, requests: 20000, kinds: [breakers, pools, pool_holders, events]}}}}
{extra}
"""


def _configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *sources: str) -> Path:
    monkeypatch.setitem(CONNECTOR_TYPES, "fake", "tests.fake_sources:build")
    path = tmp_path / "sources.yaml"
    path.write_text(YAML.format(extra="\n".join(f"  - {s}" for s in sources)))
    monkeypatch.setenv("FAULTLINE_SOURCES", str(path))
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    return path


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: str(m.value) for m in at.metric}


def _captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def _expected_radius(path: Path) -> tuple[int, float, float]:
    config = load_config(path)
    requests = roots(with_outcome(fake_sources.demo_spans(), config.slo))
    start, _ = detect_incident_start(requests)
    radius = blast_radius(*split_periods(requests, start))
    return requests.height, radius.excess_bad, radius.excess_users


# --- typed problems ---------------------------------------------------------------------------------------


def test_a_failing_source_is_a_degraded_notice_with_its_error_class(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(tmp_path, monkeypatch, "{name: good, type: fake, options: {mode: complete}}",
               "{name: down, type: fake, options: {mode: failing}}")
    at = app_test()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    degraded = [e.value for e in at.error if "Degraded" in e.value]
    assert degraded == ["Degraded: down: SourceUnavailable: connection refused — check that the fake backend is up"]
    assert not at.warning or all("Stale since" not in w.value for w in at.warning)
    assert "Bad requests (excess)" in _metrics(at)  # the good source still draws the page


def test_a_source_that_fails_after_a_good_answer_shows_a_stale_badge(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(tmp_path, monkeypatch, "{name: flaky, type: fake, options: {mode: flaky}}")
    at = app_test()
    at.run()
    assert not at.exception
    assert not any("Stale since" in w.value for w in at.warning)
    first = _metrics(at)["Bad requests (excess)"]
    at.button(key="w_reload").click().run()
    assert not at.exception, [e.value for e in at.exception]
    badges = [w.value for w in at.warning if "Stale since" in w.value]
    assert len(badges) == 1 and "flaky" in badges[0] and "SourceUnavailable" in badges[0]
    assert not any("Degraded" in e.value and "flaky" in e.value for e in at.error), "stale is a badge, not a failure"
    assert _metrics(at)["Bad requests (excess)"] == first  # the last good data is still drawn


# --- generations ------------------------------------------------------------------------------------------


def _total(frame: pl.DataFrame) -> int:
    return int(frame.get_column("x").sum())


def _reused_id_frame(attempt: int) -> tuple[int, pl.DataFrame] | None:
    """A cached result for one frame, then a new frame under the same id (or None if the slot was taken)."""
    old = pl.DataFrame({"x": [1, 2, 3]})
    generation.ISSUED.put(old, generation.Generation(("test-reuse", attempt)))
    first = generation.memo(_total, old)  # not inside an assert: pytest's rewriting would keep ``old`` alive
    reused_id = id(old)
    generation.ISSUED.clear()  # the old data ages out, as the fetch cache's TTL does
    # Build the new frame's data first, so the only allocation after the free is the DataFrame object
    # itself: CPython then gives it the freed slot, i.e. the old frame's id.
    data = pl.DataFrame({"x": [10]})._df
    del old
    new = pl.DataFrame._from_pydf(data)
    return (first, new) if id(new) == reused_id else None


def test_a_cache_entry_is_never_served_for_a_frame_that_reuses_an_id() -> None:
    """CPython hands a freed object's id to the next object of that size: construct exactly that."""
    for attempt in range(200):  # another thread (an earlier test's loader) may grab the freed slot first
        constructed = _reused_id_frame(attempt)
        if constructed is not None:
            break
    else:
        pytest.skip("this interpreter did not reuse the id; the case cannot be constructed here")
    first, new = constructed
    assert first == 6
    assert generation.memo(_total, new) == 10  # not the old frame's 6
    generation.ISSUED.put(new, generation.Generation(("test-reuse", "new")))
    assert generation.memo(_total, new) == 10


def test_same_generation_hits_the_cache_and_a_new_answer_gets_a_new_generation(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counted(frame: pl.DataFrame) -> int:
        calls.append(1)
        return _total(frame)

    frame = pl.DataFrame({"x": [4, 5]})
    generation.ISSUED.put(frame, generation.Generation(("test-hit", 1)))
    assert generation.memo(counted, frame) == generation.memo(counted, frame) == 9
    assert len(calls) == 1

    # two loads of the very same query are two answers: their parts carry different serials
    source = fake_sources.FakeSpans("gen", "complete")
    start, end = fake_sources.demo_spans()["start"].min(), fake_sources.demo_spans()["start"].max()
    loader = Loader(ttl_s=0.0, local_ttl_s=0.0)

    def request() -> Request:
        return Request("spans", start, end, {"gen": source}, {}, {}, 5.0, 5.0, 100)

    first = loader.load("key", request)
    assert first.wait(30)
    time.sleep(0.01)  # past the zero TTL
    second = loader.load("key", request)
    assert second is not first and second.wait(30)
    assert first.backends is not None and second.backends is not None
    assert first.backends.serial != second.backends.serial


def test_the_window_query_asks_for_the_window_with_a_trace_budget(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(tmp_path, monkeypatch, "{name: budgeted, type: fake, options: {mode: complete}}")
    monkeypatch.setenv("FAULTLINE_WINDOW_BUDGET_TRACES", "1234")
    fake_sources.QUERIES.pop("budgeted", None)
    at = app_test()
    at.run()
    assert not at.exception
    sent = fake_sources.QUERIES["budgeted"]
    assert sent and all(q.purpose == "window" and q.params.get("budget_traces") == 1234 for q in sent)
    assert all("limit" not in q.params for q in sent)


# --- coverage next to figures, scaled counts -------------------------------------------------------------


def test_a_complete_source_says_all_requests_next_to_every_figure(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = _configure(tmp_path, monkeypatch, "{name: files, type: fake, options: {mode: complete}}")
    n_requests, excess_bad, excess_users = _expected_radius(path)
    at = app_test()
    at.run()
    assert not at.exception
    line = f"Computed over all {n_requests:,} requests of the window."
    assert sum(line in c for c in _captions(at)) >= 2, _captions(at)  # the metrics and the rate chart
    assert _metrics(at)["Bad requests (excess)"] == f"{excess_bad:,.0f}"
    assert _metrics(at)["Users affected"] == f"{excess_users:,.0f}"
    for page in ("cohorts", "service_map"):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception
        assert any(line in c for c in _captions(at)), (page, _captions(at))


def test_a_sampled_source_says_so_and_its_counts_are_scaled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _configure(tmp_path, monkeypatch, "{name: search, type: fake, options: {mode: sampled}}")
    n_requests, excess_bad, excess_users = _expected_radius(path)
    traces = fake_sources.demo_spans().get_column("trace_id").n_unique()
    at = app_test()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    sample = f"{traces:,} of ≈ {traces * fake_sources.SAMPLE_SCALE:,} traces, sampled evenly across the window"
    assert sum(f"{sample} ({n_requests:,} requests)" in c for c in _captions(at)) >= 2, _captions(at)
    assert not any("Computed over all" in c for c in _captions(at))
    scale = fake_sources.SAMPLE_SCALE
    assert _metrics(at)["Bad requests (excess)"] == f"≈ {excess_bad * scale:,.0f}"
    assert _metrics(at)["Users affected"] == f"≈ {excess_users * scale:,.0f}"
    for page in ("cohorts", "service_map"):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception
        assert any(sample in c for c in _captions(at)), (page, _captions(at))
    at.switch_page("views/breakers.py").run()
    assert not at.exception
    assert any(sample in c for c in _captions(at)), ("breakers", _captions(at))
    at.switch_page("views/pools.py").run()
    assert not at.exception
    stuck = _metrics(at)["requests stuck on a pool"]
    assert stuck.startswith("≈ ") and int(stuck[2:].replace(",", "")) % scale == 0


def test_coverage_merges_sources_and_words_a_filtered_sample() -> None:
    merged = cov.merge([Coverage(100, 100, "all"), Coverage(50, 500, "sampled_evenly")])
    assert merged == Coverage(150, 600, "sampled_evenly")
    assert merged.scale == pytest.approx(4.0)
    assert cov.merge([Coverage(10, None, "sampled_evenly"), Coverage(5, 5)]).traces_total is None
    assert cov.count_text(12, Coverage(10, None, "sampled_evenly")) == "12 in the sample"
    line = cov.computed_over(merged, 42, filtered=True)
    assert line.startswith("Computed over 42 requests matching the filter, from 150 of ≈ 600 traces")


# --- a slow local source ----------------------------------------------------------------------------------


def test_a_slow_local_source_shows_progress_then_the_page_without_a_timeout(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = _configure(tmp_path, monkeypatch, "{name: bigfile, type: fake, options: {mode: slow_local}}")
    monkeypatch.setenv("FAULTLINE_DEADLINE_S", "0.5")  # far shorter than the read: only backends are bound by it
    gate = fake_sources.GATES["bigfile"] = fake_sources.threading.Event()
    n_requests, excess_bad, _ = _expected_radius(path)
    at = app_test()
    try:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        bars = [p.text for p in at.progress]
        assert bars and "bigfile" in bars[0] and "1.0 of 4.0 MiB read" in bars[0], bars
        assert any("Still loading" in i.value for i in at.info)
        assert not any("SourceTimeout" in e.value for e in at.error)
    finally:
        gate.set()
    for _ in range(200):  # the background read finishes on its own thread; poll as the page's fragment does
        if not frames.loader().in_flight():
            break
        time.sleep(0.05)
    at.run()
    assert not at.exception
    assert not at.progress
    assert not any("SourceTimeout" in e.value or "deadline" in e.value for e in at.error)
    assert _metrics(at)["Bad requests (excess)"] == f"{excess_bad:,.0f}"
    assert any(f"all {n_requests:,} requests" in c for c in _captions(at))


def test_a_reload_of_a_slow_local_source_keeps_the_previous_read_on_the_page(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = _configure(tmp_path, monkeypatch, "{name: rereads, type: fake, options: {mode: slow_local}}")
    gate = fake_sources.GATES["rereads"] = fake_sources.threading.Event()
    gate.set()  # the first read goes straight through
    _, excess_bad, _ = _expected_radius(path)
    at = app_test()
    at.run()
    for _ in range(200):
        if not frames.loader().in_flight():
            break
        time.sleep(0.05)
    at.run()
    assert _metrics(at)["Bad requests (excess)"] == f"{excess_bad:,.0f}"
    gate.clear()  # the re-read blocks until the test lets it finish
    try:
        at.button(key="w_reload").click().run()
        assert not at.exception, [e.value for e in at.exception]
        bars = [p.text for p in at.progress]
        assert bars and "Re-reading spans from **rereads**" in bars[0], bars
        assert _metrics(at)["Bad requests (excess)"] == f"{excess_bad:,.0f}"  # the previous read, not a blank page
        assert not any("Still loading" in i.value for i in at.info)
    finally:
        gate.set()
    for _ in range(200):  # let the re-read finish inside this test
        if not frames.loader().in_flight():
            break
        time.sleep(0.05)


def test_a_snapshot_of_a_sample_still_says_it_is_a_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(tmp_path, monkeypatch, "{name: search, type: fake, options: {mode: sampled}}")
    at = app_test()
    at.run()
    live = _metrics(at)
    assert live["Bad requests (excess)"].startswith("≈ ")
    at.text_input(key="snapshot_title_overview").input("sampled")
    next(b for b in at.button if b.label == "Save snapshot").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (info,) = SnapshotStore(tmp_path / "snapshots", redaction_key="test-key").list()
    shared = app_test()
    shared.query_params["snapshot"] = info.id
    shared.run()
    assert not shared.exception, [e.value for e in shared.exception]
    assert any("Read-only snapshot" in i.value for i in shared.info)
    assert _metrics(shared)["Bad requests (excess)"] == live["Bad requests (excess)"]
    assert any("sampled evenly across the window" in c for c in _captions(shared))


def test_a_stale_result_reads_as_one_typed_problem_and_keeps_its_own_notices() -> None:
    error = SourceUnavailable("connection reset", source="zipkin", hint="the backend")
    at = datetime(2026, 3, 14, 2, 40, tzinfo=UTC)
    stale = StaleResult("spans", "spans", pl.DataFrame(), "GET /api/v2/traces",
                        ("3 spans dropped", "stale since 02:40:00 UTC (…)"),
                        stale_since=at, live_error=error)
    problems, notices = read_result("zipkin", stale)
    assert problems == (Problem("stale", "zipkin", error.describe(), error, at),)
    assert problems[0].error_class == "SourceUnavailable"
    assert notices == (Notice("zipkin", "3 spans dropped"),)
    failed = Result("spans", "spans", error=error)
    (problem,), () = read_result("zipkin", failed)
    assert problem.kind == "failed" and problem.stale_since is None and problem.error is error


def test_a_local_source_is_not_bounded_by_the_page_deadline_but_a_backend_is() -> None:
    local = fake_sources.FakeSpans("slowfile", "slow_local", sleep_s=1.0)
    backend = _Stalling("stalled", 1.0)
    start, end = fake_sources.demo_spans()["start"].min(), fake_sources.demo_spans()["start"].max()
    load = Loader(60.0, 60.0).load("k", lambda: Request("spans", start, end, {"stalled": backend}, {"slowfile": local},
                                                        {}, 0.3, 30.0, 100))
    assert load.wait(30)
    assert load.local is not None and load.backends is not None
    assert not load.local.problems and load.local.frames and load.local.frames[0].height > 0
    assert [p.error_class for p in load.backends.problems] == ["SourceTimeout"]


class _Stalling(fake_sources.FakeSpans):
    """A backend that answers after ``sleep_s``: past a short page deadline."""

    def __init__(self, name: str, sleep_s: float) -> None:
        super().__init__(name, "complete")
        self.stall_s = sleep_s

    def query(self, queries: Sequence[Query]) -> list[Result]:
        time.sleep(self.stall_s)
        return super().query(queries)
