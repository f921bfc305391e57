"""Tempo's TraceQL metrics give a sampled window its exact total, on a real local HTTP server.

The replay server answers ``/api/search`` and ``/api/v2/traces/{id}`` as in ``test_window_sampling``,
and ``/api/metrics/query_range`` by counting the population's root spans per step of the range it is
asked, the way Tempo's ``count_over_time()`` does. Without the feature (404, 400 "not enabled") the
total stays the sampled estimate and the probe is not repeated; any other failure is a notice.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from config import SourceConfig
from connectors.base import Coverage, Result
from connectors.errors import ConfigError, PayloadError
from connectors.traces.query import epoch_us
from connectors.traces.tempo import TempoConnector
from connectors.traces.tempo_metrics import MAX_STEPS, PATH, ROOTS_QUERY, root_count
from tests.replay_server import ReplayServer, Seen, epoch_param, require
from tests.test_window_sampling import BUDGET, END, START, TOLERANCE, Population, population, tempo, window
from ui import coverage as cov

METRICS_404 = (404, b"404 page not found\n")
METRICS_OFF = (400, b"localblocks processor not found: TraceQL metrics is not enabled for this tenant")
METRICS_500 = (500, b"querier unavailable")


@pytest.fixture(scope="module")
def pop() -> Population:
    return population()


Answer = Callable[[Seen], tuple[int, bytes]]


def count_roots(pop: Population) -> Answer:
    """A responder counting root spans per ``step`` bucket of ``[start, end)``, as Tempo's JSON answers it."""
    def answer(seen: Seen) -> tuple[int, bytes]:
        if seen.param("q") != ROOTS_QUERY:
            return 400, f"unexpected query {seen.param('q')}".encode()
        start_s, end_s = int(seen.param("start") or 0), int(seen.param("end") or 0)
        step_s = int(str(seen.param("step")).removesuffix("s"))
        samples = []
        for bucket_s in range(start_s, end_s, step_s):
            lo, hi = bucket_s * 1_000_000, min(bucket_s + step_s, end_s) * 1_000_000
            hits = sum(1 for r in pop.roots if lo <= r.start_us < hi)
            if hits:  # int64 timestamps as strings (protobuf JSON); values as plain numbers
                samples.append({"timestampMs": str(bucket_s * 1000), "value": hits})
        series = [{"labels": [{"key": "__name__", "value": {"stringValue": "count_over_time"}}], "samples": samples}]
        return 200, json.dumps({"series": series if samples else []}).encode()
    return answer


def serve(server: ReplayServer, pop: Population, metrics: Answer, **options: object) -> TempoConnector:
    tempo(server, pop)  # the search and trace routes
    server.route(PATH, metrics, checks=[require("q", "step"), epoch_param("start", "s"), epoch_param("end", "s")])
    return TempoConnector(SourceConfig("tempo-m", "tempo", {"url": server.url, "window_fetch_traces": 400, **options},
                                       timeout_s=30))


def responder(status_body: tuple[int, bytes]) -> Answer:
    return lambda seen: status_body


def metrics_calls(server: ReplayServer) -> list[Seen]:
    return [s for s in server.seen(PATH) if s.path == PATH]


def sampled(result: Result) -> Coverage:
    assert result.ok and result.frame is not None, result.error
    assert isinstance(result.coverage, Coverage) and result.coverage.method == "sampled_evenly"
    return result.coverage


def height(result: Result) -> int:
    assert result.frame is not None, result.error
    return result.frame.height


def test_metrics_give_the_exact_total_and_only_exemplars_are_fetched(pop: Population) -> None:
    with ReplayServer() as server:
        connector = serve(server, pop, count_roots(pop))
        first, second = connector.query([window(), window()])
        truth = len(pop.roots)
        for result in (first, second):
            coverage = sampled(result)
            assert coverage.total_exact and coverage.traces_total == truth
            assert result.frame is not None
            assert coverage.traces_read == result.frame["trace_id"].n_unique() <= BUDGET < truth  # exemplars only
            assert coverage.scale == pytest.approx(truth / coverage.traces_read)
            assert not any("TraceQL" in n for n in result.notices)
            assert "count_over_time" in result.executed_query
        calls = metrics_calls(server)
        assert len(calls) == 3  # one probe, then one count per window query
        probe, count = calls[0], calls[1]
        assert int(probe.param("end") or 0) - int(probe.param("start") or 0) <= 1  # the probe is cheap
        start_s, end_s = int(count.param("start") or 0), int(count.param("end") or 0)
        step_s = int(str(count.param("step")).removesuffix("s"))
        assert start_s * 1_000_000 <= epoch_us(START) and end_s * 1_000_000 >= epoch_us(END)  # the whole window
        assert (end_s - start_s) / step_s <= MAX_STEPS
        text = cov.computed_over(first.coverage, height(first))
        assert f"of {truth:,} traces" in text and "≈" not in text


@pytest.mark.parametrize("answer", [METRICS_404, METRICS_OFF], ids=["404", "400-not-enabled"])
def test_no_metrics_keeps_the_estimate_and_is_probed_once(pop: Population, answer: tuple[int, bytes]) -> None:
    with ReplayServer() as server:
        connector = serve(server, pop, responder(answer))
        results = connector.query([window(), window()])
        truth = len(pop.roots)
        for result in results:
            coverage = sampled(result)
            assert not coverage.total_exact and coverage.traces_total is not None
            assert abs(coverage.traces_total - truth) <= TOLERANCE * truth
            assert not any("TraceQL" in n for n in result.notices)  # not enabled is no fault
            assert "≈" in cov.computed_over(coverage, height(result))
        assert len(metrics_calls(server)) == 1


def test_a_failing_metrics_api_is_a_notice_and_the_sampled_path(pop: Population) -> None:
    with ReplayServer() as server:
        connector = serve(server, pop, responder(METRICS_500))
        results = connector.query([window(), window()])
        truth = len(pop.roots)
        for result in results:
            coverage = sampled(result)
            assert not coverage.total_exact and coverage.traces_total is not None
            assert abs(coverage.traces_total - truth) <= TOLERANCE * truth
            assert any("TraceQL metrics did not answer" in n and "500" in n for n in result.notices)
        assert len(metrics_calls(server)) == 2  # a passing fault is not remembered: the next window asks again


def test_a_malformed_metrics_answer_is_a_notice(pop: Population) -> None:
    with ReplayServer() as server:
        connector = serve(server, pop, lambda seen: (200, b'{"series": [{"samples": [{"value": "lots"}]}]}'))
        (result,) = connector.query([window()])
        assert not sampled(result).total_exact
        assert any("TraceQL metrics did not answer" in n for n in result.notices)


def test_option_off_never_asks_and_on_skips_the_probe(pop: Population) -> None:
    with ReplayServer() as server:
        (result,) = serve(server, pop, count_roots(pop), traceql_metrics="off").query([window()])
        assert not sampled(result).total_exact
        assert metrics_calls(server) == []
    with ReplayServer() as server:
        results = serve(server, pop, count_roots(pop), traceql_metrics="on").query([window(), window()])
        assert all(sampled(r).traces_total == len(pop.roots) for r in results)
        calls = metrics_calls(server)
        assert len(calls) == 2 and all(int(c.param("end") or 0) - int(c.param("start") or 0) > 60 for c in calls)
    with ReplayServer() as server:
        (result,) = serve(server, pop, responder(METRICS_404), traceql_metrics="on").query([window()])
        assert not sampled(result).total_exact
        assert any("TraceQL metrics did not answer" in n for n in result.notices)  # on, yet not there: say so


def test_a_filtered_window_keeps_the_estimate(pop: Population) -> None:
    with ReplayServer() as server:
        (result,) = serve(server, pop, count_roots(pop)).query([window({"service": "gateway"})])
        assert result.ok, result.error
        assert result.coverage is not None and not result.coverage.total_exact
        assert metrics_calls(server) == []


def test_traceql_metrics_option_is_checked() -> None:
    with pytest.raises(ConfigError, match="traceql_metrics"):
        TempoConnector(SourceConfig("t", "tempo", {"url": "http://127.0.0.1:1", "traceql_metrics": "sometimes"}))


def test_root_count_sums_every_series_and_rejects_what_is_not_a_count() -> None:
    params: dict[str, str | int] = {"q": ROOTS_QUERY, "start": 100, "end": 220, "step": "60s"}
    body = {"series": [{"samples": [{"timestampMs": "100000", "value": 3}, {"timestampMs": 160000, "value": "4"}]},
                       {"labels": [], "samples": [{"timestampMs": "100000", "value": 5.0}]}]}
    counted = root_count(body, params, "t")
    assert (counted.total, counted.steps, counted.step_s) == (12, 2, 60)
    assert root_count({}, params, "t").total == 0  # nothing matched: Tempo omits "series"
    bad_values: list[object] = [-1, True, "NaN", "lots", None]
    bad_bodies: list[object] = [[], {"series": {}}, *({"series": [{"samples": [{"value": v}]}]} for v in bad_values)]
    for bad in bad_bodies:
        with pytest.raises(PayloadError):
            root_count(bad, params, "t")


def test_an_exact_total_survives_merge_and_the_snapshot_record() -> None:
    exact = Coverage(400, 6000, "sampled_evenly", 16, total_exact=True)
    assert cov.from_record(cov.to_record(exact)) == exact
    older = {"traces_read": 1, "traces_total": 2, "method": "sampled_evenly"}  # a snapshot from before the field
    assert cov.from_record(older) == Coverage(1, 2, "sampled_evenly")
    assert cov.merge([exact, Coverage(100, 100)]) == Coverage(500, 6100, "sampled_evenly", 16, total_exact=True)
    mixed = cov.merge([exact, Coverage(10, 90, "sampled_evenly")])
    assert mixed is not None and not mixed.total_exact
    assert "of 6,000 traces" in cov.computed_over(exact, 400)
    assert "of ≈ 6,000 traces" in cov.computed_over(Coverage(400, 6000, "sampled_evenly"), 400)
