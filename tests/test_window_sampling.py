"""Window-wide spans queries (``purpose="window"``) against search-only backends, on real local HTTP servers.

Each replay server holds one synthetic population of traces over a 60-minute window, with an incident
(denser, erroring traffic) in the first half, and answers searches the way the backends do: the newest
``limit`` traces of the range asked. The sample must come from every part of the window, the Coverage
must estimate the population's size within a stated tolerance, the budget must hold, and a failing
slice must be a notice.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from config import SourceConfig
from connectors.base import Coverage, Query
from connectors.demo import DemoConfig, DemoConnector
from connectors.traces.jaeger import JaegerConnector
from connectors.traces.query import epoch_us
from connectors.traces.sampling import SliceCount, TimeSlice, plan_slices, window_coverage
from connectors.traces.search_http import TraceHttpConnector
from connectors.traces.tempo import TempoConnector
from connectors.traces.zipkin import ZipkinConnector
from tests.replay_server import ReplayServer, Seen, epoch_param, int_param, rfc3339_param
from tests.trace_wire import Span, jaeger_envelope, otlp_doc, tempo_search, tempo_shape, zipkin_traces

START = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
END = START + timedelta(hours=1)
INCIDENT = (START + timedelta(minutes=10), START + timedelta(minutes=25))
BUDGET = 1200
TOLERANCE = 0.15  # the estimated window total is within 15 % of the population's true size
PARTS = 6  # "from every part of the window": each tenth of an hour holds sampled traces


@dataclass(frozen=True)
class Population:
    """Root spans (one per trace) and a payments child for the incident's traces."""

    spans: list[Span]
    roots: list[Span]

    def between(self, start_us: int, end_us: int, limit: int, service: str | None = None) -> list[Span]:
        """What a search backend answers: the newest ``limit`` traces starting in ``[start_us, end_us)``
        (with a span of ``service``, when given)."""
        through = None if service is None else {s.trace_id for s in self.spans if s.service == service}
        hits = [r for r in self.roots if start_us <= r.start_us < end_us and (through is None or r.trace_id in through)]
        newest = sorted(hits, key=lambda r: r.start_us, reverse=True)[:limit]
        wanted = {r.trace_id for r in newest}
        return [s for s in self.spans if s.trace_id in wanted]


def population(background: int = 4000, incident: int = 2000, seed: int = 5) -> Population:
    rng = random.Random(seed)
    start_us, end_us = epoch_us(START), epoch_us(END)
    lo, hi = epoch_us(INCIDENT[0]), epoch_us(INCIDENT[1])
    spans: list[Span] = []
    roots: list[Span] = []
    for i in range(background + incident):
        bad = i >= background
        at = rng.randrange(lo, hi) if bad else rng.randrange(start_us, end_us)
        trace_id, root_id = f"{i + 1:032x}", f"{i + 1:016x}"
        root = Span(trace_id, root_id, None, "gateway", "POST /checkout", "server", at, 11_000_000 if bad else 120_000,
                    error=bad, http_status=200, attrs={"region": "eu-west-1" if bad else "us-east-1"})
        roots.append(root)
        spans.append(root)
        if bad:
            spans.append(Span(trace_id, f"{i + 1:08x}{0:08x}", root_id, "payments", "charge", "client", at + 1000,
                              10_900_000))
    return Population(spans, roots)


def window(params: dict[str, object] | None = None) -> Query:
    return Query("W", "spans", START, END, {"budget_traces": BUDGET, **(params or {})}, purpose="window")


def _fails(seen_start_us: int) -> bool:
    """The slice holding minute 40 of the window answers 500."""
    return seen_start_us <= epoch_us(START + timedelta(minutes=40)) < seen_start_us + 1


# --- the backends as replay servers -------------------------------------------------------------


def jaeger_v1(server: ReplayServer, pop: Population, fail_at: datetime | None = None) -> JaegerConnector:
    def answer(seen: Seen) -> tuple[int, bytes]:
        lo, hi, limit = int(seen.param("start") or 0), int(seen.param("end") or 0), int(seen.param("limit") or 20)
        if fail_at is not None and lo <= epoch_us(fail_at) < hi:
            return 500, b"storage timeout"
        return 200, json.dumps(jaeger_envelope(pop.between(lo, hi, limit, seen.param("service")))).encode()

    server.route("/api/services",
                 {"data": ["gateway", "payments"], "total": 2, "limit": 0, "offset": 0, "errors": None})
    server.route("/api/traces", answer, checks=[epoch_param("start", "us"), epoch_param("end", "us"),
                                                int_param("limit", 1, 1000, optional=False)])
    return JaegerConnector(SourceConfig("jaeger-w", "jaeger", {"url": server.url, "api": "v1", "max_services": 1},
                                        timeout_s=30))


def jaeger_v1_every_service(server: ReplayServer, pop: Population, fail_at: datetime | None = None) -> JaegerConnector:
    """No service given and two services searched per slice (gateway sees every trace, payments the incident's)."""
    connector = jaeger_v1(server, pop, fail_at)
    connector.max_services = 2
    return connector


def jaeger_v3(server: ReplayServer, pop: Population, fail_at: datetime | None = None) -> JaegerConnector:
    def answer(seen: Seen) -> tuple[int, bytes]:
        lo = epoch_us(datetime.fromisoformat(str(seen.param("query.start_time_min"))))  # RFC 3339, "Z"
        hi = epoch_us(datetime.fromisoformat(str(seen.param("query.start_time_max"))))
        if fail_at is not None and lo <= epoch_us(fail_at) < hi:
            return 500, b"storage timeout"
        found = pop.between(lo, hi, int(seen.param("query.num_traces") or 20), seen.param("query.service_name"))
        if not found:
            return 404, b'{"error": {"httpCode": 404}}'
        return 200, json.dumps({"result": otlp_doc(found)}).encode()

    server.route("/api/v3/services", {"services": ["gateway"]})
    server.route("/api/v3/traces", answer, checks=[rfc3339_param("query.start_time_min"),
                                                   rfc3339_param("query.start_time_max"),
                                                   int_param("query.num_traces", 1, 1000, optional=False)])
    return JaegerConnector(SourceConfig("jaeger-w3", "jaeger", {"url": server.url, "api": "v3"}, timeout_s=30))


def zipkin(server: ReplayServer, pop: Population, fail_at: datetime | None = None) -> ZipkinConnector:
    def answer(seen: Seen) -> tuple[int, bytes]:
        end_ms, lookback_ms = int(seen.param("endTs") or 0), int(seen.param("lookback") or 0)
        lo, hi = (end_ms - lookback_ms) * 1000, end_ms * 1000  # ms -> µs
        if fail_at is not None and lo <= epoch_us(fail_at) < hi:
            return 500, b"storage timeout"
        return 200, json.dumps(zipkin_traces(pop.between(lo, hi, int(seen.param("limit") or 10)))).encode()

    server.route("/api/v2/traces", answer, checks=[epoch_param("endTs", "ms"),
                                                   int_param("lookback", 1, 10**11, optional=False),
                                                   int_param("limit", 1, 1000, optional=False)])
    return ZipkinConnector(SourceConfig("zipkin-w", "zipkin", {"url": server.url}, timeout_s=30))


def tempo(server: ReplayServer, pop: Population, fail_at: datetime | None = None) -> TempoConnector:
    by_id: dict[str, list[Span]] = {}
    for span in pop.spans:
        by_id.setdefault(span.trace_id, []).append(span)

    def search(seen: Seen) -> tuple[int, bytes]:
        lo, hi = int(seen.param("start") or 0) * 1_000_000, int(seen.param("end") or 0) * 1_000_000  # s -> µs
        if fail_at is not None and lo <= epoch_us(fail_at) < hi:
            return 500, b"querier unavailable"
        return 200, json.dumps(tempo_search(pop.between(lo, hi, int(seen.param("limit") or 20)))).encode()

    def trace(seen: Seen) -> tuple[int, bytes]:
        spans = by_id.get(seen.path.rsplit("/", 1)[-1])
        return (200, json.dumps(tempo_shape(otlp_doc(spans), v2=True)).encode()) if spans else (404, b"trace not found")

    server.route("/api/search", search, checks=[epoch_param("start", "s"), epoch_param("end", "s"),
                                               int_param("limit", 1, 1000, optional=False)])
    server.route("^/api/v2/traces/[0-9a-f]{32}$", trace)
    options = {"url": server.url, "window_fetch_traces": 400}
    return TempoConnector(SourceConfig("tempo-w", "tempo", options, timeout_s=30))


BACKENDS: dict[str, tuple[Callable[..., TraceHttpConnector], str, str]] = {
    # name: (factory, search path, the search's limit parameter)
    "jaeger-v1": (jaeger_v1, "/api/traces", "limit"),
    "jaeger-v1-every-service": (jaeger_v1_every_service, "/api/traces", "limit"),
    "jaeger-v3": (jaeger_v3, "/api/v3/traces", "query.num_traces"),
    "zipkin": (zipkin, "/api/v2/traces", "limit"),
    "tempo": (tempo, "/api/search", "limit"),
}


@pytest.fixture(scope="module")
def pop() -> Population:
    return population()


def _searches(server: ReplayServer, path: str) -> list[Seen]:
    return [s for s in server.seen(path) if s.path == path]


def _parts_hit(frame: pl.DataFrame) -> set[int]:
    roots = frame.filter(pl.col("is_root"))
    offsets_us = [epoch_us(t) - epoch_us(START) for t in roots["start"].to_list()]
    part_us = (epoch_us(END) - epoch_us(START)) // PARTS
    return {min(PARTS - 1, offset // part_us) for offset in offsets_us}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_window_is_sampled_evenly_with_an_honest_total(backend: str, pop: Population) -> None:
    factory, path, limit_param = BACKENDS[backend]
    with ReplayServer() as server:
        (result,) = factory(server, pop).query([window()])
        assert result.ok, result.error
        coverage = result.coverage
        assert isinstance(coverage, Coverage) and coverage.method == "sampled_evenly"
        frame = result.frame
        assert coverage.traces_read == frame["trace_id"].n_unique() > 0
        assert _parts_hit(frame) == set(range(PARTS)), "the sample misses part of the window"
        truth = len(pop.roots)
        assert coverage.traces_total is not None and abs(coverage.traces_total - truth) <= TOLERANCE * truth
        searches = _searches(server, path)
        assert sum(int(s.param(limit_param) or 0) for s in searches) <= BUDGET  # budget respected, as asked
        parts = 2 if backend == "jaeger-v1-every-service" else 1
        assert coverage.traces_read <= BUDGET and len(searches) == coverage.slices * parts and coverage.slices > 1
        incident = frame.filter(pl.col("is_root"), pl.col("start") >= INCIDENT[0], pl.col("start") < INCIDENT[1])
        assert incident.height and incident["status"].eq("error").mean() > 0.3  # the incident is in the sample
        assert "window sampled in" in result.executed_query
        assert not any("query limit" in n for n in result.notices)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_failing_slice_is_a_notice_not_a_failed_query(backend: str, pop: Population) -> None:
    factory, path, _ = BACKENDS[backend]
    with ReplayServer() as server:
        (result,) = factory(server, pop, fail_at=START + timedelta(minutes=40)).query([window()])
        assert result.ok, result.error
        assert any("time-slice searches failed" in n and "extrapolated" in n for n in result.notices)
        coverage = result.coverage
        assert coverage is not None and coverage.method == "sampled_evenly"
        parts = 2 if backend == "jaeger-v1-every-service" else 1
        assert coverage.slices == len(_searches(server, path)) // parts - 1
        truth = len(pop.roots)
        assert coverage.traces_total is not None and abs(coverage.traces_total - truth) <= 2 * TOLERANCE * truth


def test_every_slice_failing_is_the_error(pop: Population) -> None:
    with ReplayServer() as server:
        connector = zipkin(server, pop)
        server.fail_with(503, b"down")
        (result,) = connector.query([window()])
        assert result.error is not None and "503" in result.error.message


def test_a_window_that_fits_the_budget_is_read_completely() -> None:
    small = population(background=300, incident=100, seed=9)
    with ReplayServer() as server:
        (result,) = jaeger_v1(server, small).query([window()])
        assert result.ok, result.error
        assert result.coverage == Coverage(len(small.roots), len(small.roots), "all", result.coverage.slices)
        assert result.frame["trace_id"].n_unique() == len(small.roots)


def test_the_budget_comes_from_the_source_option_and_search_keeps_its_semantics(pop: Population) -> None:
    with ReplayServer() as server:
        connector = zipkin(server, pop)
        connector.window_budget = 400  # what options.window_budget_traces sets
        (sampled,) = connector.query([Query("W", "spans", START, END, {}, purpose="window")])
        assert sampled.ok and sampled.coverage is not None and sampled.coverage.traces_read <= 400
        assert sum(int(s.param("limit") or 0) for s in _searches(server, "/api/v2/traces")) <= 400
        before = len(_searches(server, "/api/v2/traces"))
        (searched,) = connector.query([Query("S", "spans", START, END, {"limit": 50})])
        assert searched.ok and searched.coverage is None
        assert len(_searches(server, "/api/v2/traces")) == before + 1  # one search, as before
        newest = searched.frame.filter(pl.col("is_root"))["start"].min()
        assert newest >= END - timedelta(minutes=5)  # "newest N": the reason window queries slice


def test_window_options_are_read_and_checked(pop: Population) -> None:
    with ReplayServer() as server:
        options = {"url": server.url, "window_budget_traces": 300, "window_slices": 5}
        connector = ZipkinConnector(SourceConfig("z", "zipkin", options))
        assert (connector.window_budget, connector.window_slices) == (300, 5)
    from connectors.errors import ConfigError

    with pytest.raises(ConfigError, match="window_budget_traces"):
        ZipkinConnector(SourceConfig("z", "zipkin", {"url": "http://x", "window_budget_traces": 0}))
    zipkin = ZipkinConnector(SourceConfig("z", "zipkin", {"url": "http://x"}))
    (bad,) = zipkin.query([window({"budget_traces": "lots"})])
    assert isinstance(bad.error, ConfigError) and "budget_traces" in bad.error.message


# --- the plan and the estimate ------------------------------------------------------------------


@pytest.mark.parametrize(("budget", "slices", "parts", "granularity_us"),
                         [(8000, 16, 1, 1), (8000, 4, 1, 1), (1200, 16, 3, 1000), (50, 16, 1, 1_000_000),
                          (7, 16, 2, 1)])
def test_plan_slices_tiles_the_window_within_the_budget(
    budget: int, slices: int, parts: int, granularity_us: int
) -> None:
    plan = plan_slices(START, END, budget, slices, parts=parts, granularity_us=granularity_us)
    assert plan[0].start == START and plan[-1].end == END
    odd = plan_slices(START + timedelta(microseconds=500_001), END, budget, slices, parts=parts,
                      granularity_us=granularity_us)
    assert odd[0].start == START + timedelta(microseconds=500_001) and odd[-1].end == END
    assert all(epoch_us(s.start) % granularity_us == 0 for s in odd[1:])
    assert all(a.end == b.start for a, b in itertools.pairwise(plan))
    assert all(s.limit <= 1000 for s in plan)
    assert sum(s.limit for s in plan) * parts <= max(budget, len(plan) * parts)
    assert all(epoch_us(s.start) % granularity_us == 0 for s in plan[1:])  # inner edges on whole units
    lengths = {s.length_us for s in plan}
    assert max(lengths) - min(lengths) <= granularity_us


def test_a_full_slice_is_scaled_by_the_share_it_covers() -> None:
    time_slice = TimeSlice(0, START, START + timedelta(minutes=10), 100)
    for covered_min in (1, 2.5, 5, 10):
        count = SliceCount(time_slice, 100, time_slice.end - timedelta(minutes=covered_min))
        assert count.estimate() == pytest.approx(100 * 10 / covered_min)
    assert SliceCount(time_slice, 40, START + timedelta(minutes=9)).estimate() == 40  # not full: complete
    plan = [time_slice, TimeSlice(1, time_slice.end, time_slice.end + timedelta(minutes=10), 100)]
    answered = [SliceCount(time_slice, 100, START + timedelta(minutes=5))]
    assert window_coverage(plan, answered, 100).traces_total == 400  # 200 in the slice, the missing one alike


def test_the_demo_reads_a_window_completely() -> None:
    demo = DemoConnector("demo", DemoConfig(seed=3, requests=1000, full_trace_limit=1000))
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    (result,) = demo.query([Query("W", "spans", start, end, {"budget_traces": 10, "limit": 5}, purpose="window")])
    assert result.ok and result.coverage is not None and result.coverage.method == "all"
    assert result.coverage.traces_read == result.coverage.traces_total == result.frame["trace_id"].n_unique() > 10
    (searched,) = demo.query([Query("S", "spans", start, end, {})])
    assert searched.coverage is None


def test_a_window_query_through_fetch_all_is_one_breaker_call(pop: Population) -> None:
    import time

    from connectors.errors import SourceTimeout
    from connectors.runtime.fanout import fetch_all
    from connectors.runtime.resilience import BreakerConfig
    from connectors.runtime.source import breaker_for

    with ReplayServer() as server:
        connector = zipkin(server, pop)
        breaker = breaker_for(connector.name, BreakerConfig(failure_threshold=1, open_s=0.2))
        breaker.record_failure(SourceTimeout("earlier", source=connector.name))
        time.sleep(0.25)  # half-open: one probe call may pass
        (result,) = fetch_all({connector.name: connector}, {connector.name: [window()]}, 20.0)[connector.name]
        assert result.ok, result.error
        assert result.coverage is not None and len(_searches(server, "/api/v2/traces")) == result.coverage.slices > 1
        assert breaker.state == "closed"  # every slice search ran inside the one probe call, which succeeded


def test_a_stale_window_answer_keeps_its_coverage_and_never_stands_in_for_a_search(pop: Population) -> None:
    from connectors.runtime.fanout import LastGood, StaleResult, fetch_all

    cache = LastGood()
    with ReplayServer() as server:
        connector = zipkin(server, pop)
        name = connector.name
        (good,) = fetch_all({name: connector}, {name: [window({"service": "gateway"})]}, 20.0, cache=cache)[name]
        assert good.ok and good.coverage is not None
        server.fail_with(503, b"down")
        (stale,) = fetch_all({name: connector}, {name: [window({"service": "gateway"})]}, 20.0, cache=cache)[name]
        assert isinstance(stale, StaleResult) and stale.coverage == good.coverage
        search = Query("S", "spans", START, END, {"service": "gateway", "budget_traces": BUDGET})  # same params
        (failed,) = fetch_all({name: connector}, {name: [search]}, 20.0, cache=cache)[name]
        assert not isinstance(failed, StaleResult) and failed.error is not None


def test_a_tempo_trace_that_does_not_convert_is_left_out_with_a_notice() -> None:
    small = population(background=40, incident=10, seed=2)
    with ReplayServer() as server:
        connector = tempo(server, small)
        broken = small.roots[7].trace_id
        server.route(f"/api/v2/traces/{broken}", b'{"trace": {"resourceSpans": [{"scopeSpans": 5}]}}')
        (result,) = connector.query([window()])
        assert result.ok, result.error
        assert any("1 of 50 fetched traces were not valid OTLP" in n for n in result.notices)
        assert result.frame["trace_id"].n_unique() == 49 and broken not in result.frame["trace_id"].to_list()
        # every slice was complete, so the total is exact; one found trace was not read, so it is not "all"
        assert result.coverage == Coverage(49, 50, "sampled_evenly", result.coverage.slices)
