"""Pushed-down aggregates on a real ClickHouse engine (chdb behind tests/clickhouse_front.py) equal the
polars engine's over the same spans: the demo incident in the current exporter layout, and a generated
incident in the older and the JSON-attributes layouts."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import NamedTuple

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis.blast_radius import bad_rate_series
from analysis.cohort import discover_attributes, split_requests
from analysis.cohort.attributes import _ID_NAME, MAX_VALUES, MIN_REQUESTS_PER_VALUE
from analysis.cohort.counts import class_counts
from analysis.outcome import roots, with_outcome
from analysis.service_map import service_graph
from config import SloConfig, SloRule, SourceConfig
from connectors.base import Query
from connectors.clickhouse import ClickHouseConnector
from connectors.demo.traffic import hex_ids
from model.periods import Window as Split
from tests.clickhouse_front import Front, as_stored, start_front

pytestmark = pytest.mark.skipif(importlib.util.find_spec("chdb") is None,
                                reason="chdb (requirements-dev.txt) is not installed")

SLO = SloConfig(default_ms=2000, rules=(SloRule(3000, "gateway", "POST /checkout"),))
USER, PASSWORD = "faultline", "s3cret 'quoted' \\ pass"
ID_PATTERN = "(?i)" + _ID_NAME.pattern  # the never-a-cohort rule, as RE2


def generated_incident(seed: int = 5, n: int = 6000) -> pl.DataFrame:
    """Requests on ``edge`` each calling ``api``; after 10:30 eu-west-1 on 2.0 fails or crawls; ``plan`` is often
    missing."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    offset_us = np.sort(rng.integers(0, 3_600_000_000, n))
    region = rng.choice(["eu-west-1", "us-east-1", "ap-south-1"], n)
    version = rng.choice(["1.0", "1.1", "2.0"], n)
    hit = (offset_us >= 1_800_000_000) & (region == "eu-west-1") & (version == "2.0")
    error = rng.random(n) < np.where(hit, 0.4, 0.02)
    duration_ms = np.round(rng.lognormal(np.log(120.0), 0.6, n) * np.where(hit & (rng.random(n) < 0.5), 30.0, 1.0), 3)
    trace_id, root_id, child_id = hex_ids(rng, n, 16), hex_ids(rng, n, 8), hex_ids(rng, n, 8)
    start = pl.Series(offset_us + int(t0.timestamp() * 1e6)).cast(pl.Datetime("us", "UTC"))
    plan = pl.Series(rng.choice(["free", "pro", "team"], n)).zip_with(pl.Series(rng.random(n) < 0.6),
                                                                      pl.Series([None] * n, dtype=pl.String))
    root = pl.DataFrame({
        "trace_id": trace_id, "span_id": root_id, "parent_span_id": pl.Series([None] * n, dtype=pl.String),
        "service": "edge", "operation": rng.choice(["GET /a", "POST /b"], n), "kind": "server", "start": start,
        # half the failures say so only by their HTTP status (a 503 with status unset is an error too)
        "duration_ms": duration_ms, "status": np.where(error & (rng.random(n) < 0.5), "error", "unset"),
        "http_status": pl.Series(np.where(error, 503, 200)).cast(pl.Int32), "is_root": True,
        "attr.region": region, "attr.client_version": version,
        "attr.tenant": pl.Series(rng.integers(0, 40, n)).cast(pl.String), "attr.plan": plan,
        "attr.user_id": pl.Series(rng.integers(0, n // 3, n)).cast(pl.String),
    })
    child = root.with_columns(
        span_id=child_id, parent_span_id=root_id, service=pl.lit("api"), operation=pl.lit("query"),
                              kind=pl.lit("client"),
        duration_ms=(pl.col("duration_ms") * 0.8).round(3), http_status=pl.lit(None, dtype=pl.Int32), is_root=False,
        **{"attr.plan": pl.lit(None, dtype=pl.String), "attr.user_id": pl.lit(None, dtype=pl.String)},
    )
    return pl.concat([root, child])


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, demo_frames_small: dict[str, pl.DataFrame]) -> Iterator[Front]:
    """One front process (its own chdb engine) holding the demo (current layout) and the generated incident
    (older, JSON)."""
    scratch = tmp_path_factory.mktemp("clickhouse")
    front = start_front(scratch / "data", USER, PASSWORD)
    try:
        front.create_traces("otel", "otel_traces", "current")
        front.load("otel", "otel_traces", demo_frames_small["spans"], "current", scratch)
        generated = generated_incident()
        for variant in ("older", "json"):
            front.create_traces("gen", f"traces_{variant}", variant)
            front.load("gen", f"traces_{variant}", generated, variant, scratch)
        yield front
    finally:
        front.stop()


CASES = {  # case -> (database, table, spans, incident start)
    "demo_current": ("otel", "otel_traces", None, datetime(2026, 3, 14, 2, 25, tzinfo=UTC)),
    "generated_older": ("gen", "traces_older", generated_incident, datetime(2026, 5, 1, 10, 30, tzinfo=UTC)),
    "generated_json": ("gen", "traces_json", generated_incident, datetime(2026, 5, 1, 10, 30, tzinfo=UTC)),
}


class Case(NamedTuple):
    connector: ClickHouseConnector
    spans: pl.DataFrame
    start: datetime
    end: datetime
    incident: datetime


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest, front: Front, demo_frames_small: dict[str, pl.DataFrame]) -> Case:
    database, table, make, incident = CASES[request.param]
    spans = as_stored(demo_frames_small["spans"] if make is None else make())
    source = SourceConfig("ch", "clickhouse", {"url": front.url, "database": database, "table": table},
                          timeout_s=60.0, secrets={"username": USER, "password": PASSWORD})  # 2 shared cores
    start, end = _moment(spans["start"].min()), _moment(spans["start"].max()) + timedelta(seconds=1)
    return Case(ClickHouseConnector(source, strict=True), spans, start, end, incident)


def _polars_split(spans: pl.DataFrame, incident: datetime, split: Split | None = None) -> pl.DataFrame:
    requests = roots(with_outcome(spans, SLO))
    if split is None or split.baseline == "before":
        frame = split_requests(requests, (incident, split.end if split else None)).frame
    else:  # a brushed band against the rest
        frame = split_requests(requests, (pl.col("start") >= split.start) & (pl.col("start") < split.end)).frame
    bad = pl.col("is_bad").cast(pl.UInt8)
    return frame.with_columns(_cls=pl.when("_sel").then(bad + 2).when("_base").then(bad).otherwise(None))


def test_the_layout_is_detected(case: Case) -> None:
    connector, *_ = case
    table = connector.table()
    assert table.variant == {"otel_traces": "current", "traces_older": "older", "traces_json": "json"}[table.table]
    assert table.has_lookup


def test_window_spans_read_back_equal_the_stored_spans(case: Case) -> None:
    connector, spans, start, end, _ = case
    result = connector.query([Query("w", "spans", start, end, {"budget_traces": 10**7}, purpose="window")])[0]
    assert result.error is None and result.coverage is not None
    assert result.coverage.complete and result.coverage.traces_total == spans["trace_id"].n_unique()
    got = result.frame
    assert got is not None
    want = spans.select([c for c in spans.columns if not c.startswith("attr.") or spans[c].null_count() < spans.height])
    assert sorted(got.columns) == sorted(want.columns)
    assert_frame_equal(got.select(want.columns).sort("trace_id", "span_id"), want.sort("trace_id", "span_id"))


def test_sampled_window_keeps_traces_whole(case: Case) -> None:
    connector, spans, start, end, _ = case
    budget = spans["trace_id"].n_unique() // 5
    result = connector.query([Query("w", "spans", start, end, {"budget_traces": budget}, purpose="window")])[0]
    assert result.error is None and result.coverage is not None and result.frame is not None
    assert result.coverage.method == "sampled_evenly" and 0 < result.coverage.traces_read <= budget * 1.3
    sampled = result.frame.get_column("trace_id").unique()
    per_trace = spans.filter(pl.col("trace_id").is_in(sampled.implode())).group_by("trace_id").len()
    got = result.frame.group_by("trace_id").len()
    assert_frame_equal(got.sort("trace_id"), per_trace.sort("trace_id"))


def test_rate_series_equals_polars(case: Case) -> None:
    connector, spans, start, end, _ = case
    got = connector.aggregates(start, end, SLO).rate_series(60)
    want = bad_rate_series(roots(with_outcome(spans, SLO)), every="1m")
    assert_frame_equal(got, want, check_dtypes=False)


def test_latency_histogram_equals_polars(case: Case) -> None:
    connector, spans, start, end, _ = case
    edges = [50.0, 200.0, 1000.0, 2000.0, 10_000.0]
    got = connector.aggregates(start, end, SLO).latency_histogram(300, edges)
    requests = roots(with_outcome(spans, SLO))
    want = (requests.group_by(bucket=pl.col("start").dt.truncate("5m"),
                              bin=pl.sum_horizontal([pl.col("duration_ms") >= e for e in edges]).cast(pl.UInt16))
            .agg(requests=pl.len(), bad=pl.col("is_bad").sum().cast(pl.Int64)))
    assert_frame_equal(got.sort("bucket", "bin"), want.sort("bucket", "bin"), check_dtypes=False)
    assert got["bin"].n_unique() >= 3


def test_cardinality_gives_the_same_cohort_columns(case: Case) -> None:
    connector, spans, start, end, _ = case
    card = connector.aggregates(start, end, SLO).attribute_cardinality(ID_PATTERN)
    height = int(card["n_requests"][0])
    limit = max(2.0, height / MIN_REQUESTS_PER_VALUE)
    chosen = card.filter((pl.col("n_values") > 1) & (pl.col("n_values") <= MAX_VALUES)
                         & ((pl.col("n_values") <= limit) | (height < 20)))["column"].to_list()
    want = discover_attributes(roots(with_outcome(spans, SLO)))
    assert sorted(chosen) == sorted(want) and want
    assert not any("user_id" in c for c in card["column"])  # id-like keys never leave the server


@pytest.mark.parametrize("kind", ["from_start", "window_before", "band_rest"])
def test_class_counts_equal_polars(case: Case, kind: str) -> None:
    connector, spans, start, end, incident = case
    split = {"from_start": Split(incident), "window_before": Split(incident, incident + timedelta(minutes=10)),
             "band_rest": Split(incident, incident + timedelta(minutes=10), baseline="rest")}[kind]
    frame = _polars_split(spans, incident, split)
    columns = discover_attributes(roots(with_outcome(spans, SLO)))
    got = connector.aggregates(start, end, SLO).class_counts(split, columns)
    want = class_counts(frame, columns, "_cls")
    order = ["column", "value", "cls"]
    assert_frame_equal(got.sort(order, nulls_last=True), want.sort(order, nulls_last=True))


def test_combination_counts_equal_polars(case: Case) -> None:
    connector, spans, start, end, incident = case
    frame = _polars_split(spans, incident).filter(pl.col("_cls").is_not_null())
    columns = ["attr.region", "attr.client_version", "attr.plan" if "attr.plan" in spans.columns else "attr.tenant"]
    got = connector.aggregates(start, end, SLO).combination_counts(Split(incident), columns)
    parts = []
    for size in (1, 2, 3):
        for subset in combinations(columns, size):
            parts.append(frame.group_by([*subset, "_cls"]).len().select(
                pl.lit(list(subset), dtype=pl.List(pl.String)).alias("columns"),
                pl.concat_list(list(subset)).alias("values"), pl.col("_cls").cast(pl.Int8).alias("cls"),
                pl.col("len").cast(pl.UInt32).alias("n")))
    want = pl.concat(parts)
    key = [pl.col("columns").list.join(","), pl.col("values").list.eval(pl.element().fill_null("∅")).list.join(","),
           "cls"]
    assert_frame_equal(got.sort(key), want.sort(key))
    assert got.filter(pl.col("columns").list.len() == 3).height > 0


def test_distinct_users_per_period_equal_polars(case: Case) -> None:
    connector, spans, start, end, incident = case
    frame = _polars_split(spans, incident).filter(pl.col("_cls").is_not_null())
    got = connector.aggregates(start, end, SLO).distinct_per_period(Split(incident), ["attr.user_id", "attr.tenant"])
    period = pl.when(pl.col("_cls") >= 2).then(pl.lit("selection")).otherwise(pl.lit("baseline")).alias("period")
    want = pl.concat([
        frame.group_by(period).agg(
            pl.lit(column).alias("column"), pl.len().cast(pl.Int64).alias("requests"),
            pl.col(column).drop_nulls().n_unique().cast(pl.Int64).alias("distinct"),
            pl.col(column).filter(pl.col("is_bad")).drop_nulls().n_unique().cast(pl.Int64).alias("distinct_bad"))
        for column in ("attr.user_id", "attr.tenant")
    ])
    assert_frame_equal(got.sort("period", "column"), want.sort("period", "column"), check_column_order=False)


def test_service_edges_equal_polars(case: Case) -> None:
    connector, spans, start, end, _ = case
    got = connector.aggregates(start, end, SLO, roots_only=False).service_edges()
    spans_out = with_outcome(spans, SLO)
    _, edges = service_graph(spans_out)
    assert_frame_equal(got.select("caller", "callee", "calls", "bad").sort("caller", "callee"),
                       edges.select("caller", "callee", "calls", "bad").sort("caller", "callee"), check_dtypes=False)
    parents = spans_out.select(pl.col("trace_id"), pl.col("span_id").alias("parent_span_id"),
                               pl.col("service").alias("caller"))
    latency = (spans_out.join(parents, on=["trace_id", "parent_span_id"]).filter(pl.col("caller") != pl.col("service"))
               .group_by("caller", callee=pl.col("service"))
               .agg(errors=pl.col("is_error").sum(), p50_ms=pl.col("duration_ms").quantile(0.5, "linear"),
                    p99_ms=pl.col("duration_ms").quantile(0.99, "linear")))
    assert_frame_equal(got.select("caller", "callee", "errors", "p50_ms", "p99_ms").sort("caller", "callee"),
                       latency.sort("caller", "callee"), check_dtypes=False, rel_tol=1e-9)


def test_trace_by_id_reads_the_whole_trace(case: Case) -> None:
    connector, spans, start, end, _ = case
    trace_id = spans.group_by("trace_id").len().sort("len", "trace_id", descending=True)["trace_id"][0]
    result = connector.query([Query("t", "spans", start, end, {"trace_id": trace_id})])[0]
    assert result.error is None and result.frame is not None
    want = spans.filter(pl.col("trace_id") == trace_id)
    assert sorted(result.frame["span_id"]) == sorted(want["span_id"])
    assert "_trace_id_ts" in result.executed_query


def test_only_aggregates_cross_the_wire(case: Case) -> None:
    connector, spans, start, end, incident = case
    connector.table()
    before = connector.client.bytes_read
    agg = connector.aggregates(start, end, SLO)
    columns = discover_attributes(roots(with_outcome(spans, SLO)))
    agg.rate_series(60), agg.class_counts(Split(incident), columns)
    agg.combination_counts(Split(incident), columns[:3]), agg.distinct_per_period(Split(incident), ["attr.user_id"])
    read = connector.client.bytes_read - before
    assert 0 < read < spans.estimated_size() / 10


def test_aggregates_within_a_cohort_equal_polars(case: Case) -> None:
    connector, spans, start, end, _ = case
    cohort = [("region", "eu-west-1"), ("service", spans.filter(pl.col("is_root"))["service"][0])]  # the user's keys
    got = connector.aggregates(start, end, SLO, cohort=cohort).rate_series(60)
    requests = roots(with_outcome(spans, SLO)).filter(pl.col("attr.region") == "eu-west-1",
                                                      pl.col("service") == cohort[1][1])
    assert_frame_equal(got, bad_rate_series(requests, every="1m"), check_dtypes=False)
    assert 0 < got["requests"].sum() < roots(spans).height


def test_search_returns_the_newest_matching_traces_whole(case: Case) -> None:
    connector, spans, start, end, _ = case
    service = spans.filter(~pl.col("is_root"))["service"][0]
    result = connector.query([Query("s", "spans", start, end, {"service": service, "limit": 5})])[0]
    assert result.error is None and result.frame is not None
    newest = (spans.filter(pl.col("service") == service).group_by("trace_id").agg(pl.col("start").max())
              .sort(["start", "trace_id"], descending=[True, False]).head(5)["trace_id"])
    assert sorted(result.frame["trace_id"].unique()) == sorted(newest)
    assert result.frame.height == spans.filter(pl.col("trace_id").is_in(newest.implode())).height


def _moment(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value
