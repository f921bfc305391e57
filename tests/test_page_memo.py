"""Per-generation memo over several frames, derived frames, and the Service map's one-pass view."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from polars.testing import assert_frame_equal

from analysis.outcome import with_outcome
from analysis.periods import split_requests
from analysis.service_map import (
    blast_radius_services,
    propagation_path,
    rank_root_cause_services,
    service_graph,
    service_map_view,
)
from analysis.traces import bad_vs_good_diff, sample_traces, search_traces, trace_diff
from config import SloConfig
from model.encoding import decoded
from ui import generation


def _sum_of(frame: pl.DataFrame, other: pl.DataFrame, *, scale: int = 1) -> int:
    return int(frame.get_column("x").sum() + other.get_column("x").sum()) * scale


def test_memo_keys_every_frame_argument_by_its_generation() -> None:
    calls: list[int] = []

    def counted(frame: pl.DataFrame, other: pl.DataFrame, *, scale: int = 1) -> int:
        calls.append(1)
        return _sum_of(frame, other, scale=scale)

    a = generation.ISSUED.put(pl.DataFrame({"x": [1, 2]}), generation.Generation(("memo-a", 1)))
    b = generation.ISSUED.put(pl.DataFrame({"x": [10]}), generation.Generation(("memo-b", 1)))
    assert generation.memo(counted, a, b, scale=2) == generation.memo(counted, a, b, scale=2) == 26
    assert len(calls) == 1
    assert generation.memo(counted, a, b, scale=3) == 39  # another keyword value: computed again
    newer_b = generation.ISSUED.put(pl.DataFrame({"x": [100]}), generation.Generation(("memo-b", 2)))
    assert generation.memo(counted, a, newer_b, scale=2) == 206  # the second frame's new answer counts
    assert len(calls) == 3
    loose = pl.DataFrame({"x": [5]})  # never handed out: nothing says which data it holds
    assert generation.memo(counted, a, loose) == generation.memo(counted, a, loose) == 8
    assert len(calls) == 5


def test_the_registry_does_not_keep_a_frame_alive_and_forgets_it_when_it_is_freed() -> None:
    import gc
    import weakref

    gc.collect()  # frames other tests dropped in cycles go now, not inside the count below
    big = generation.ISSUED.put(pl.DataFrame({"x": range(1000)}), generation.Generation(("memo-freed", 1)))
    alive = weakref.ref(big)
    size = len(generation.ISSUED)
    assert generation.generation_of(big) == generation.Generation(("memo-freed", 1))
    del big
    gc.collect()
    assert alive() is None  # handed out, then dropped by every holder: freed, not held by the registry
    assert len(generation.ISSUED) == size - 1
    other = pl.DataFrame({"x": [1]})  # whatever id it gets, it has no generation
    assert generation.generation_of(other) is None


def test_a_memoised_frame_feeds_the_next_memo_and_a_derived_frame_has_its_own_generation() -> None:
    parent = generation.ISSUED.put(pl.DataFrame({"x": [1, 2, 3]}), generation.Generation(("memo-parent", 1)))

    def doubled(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col("x") * 2)

    out = generation.memo(doubled, parent)
    assert generation.generation_of(out) not in (None, generation.generation_of(parent))
    clipped = generation.issue_derived(parent.filter(pl.col("x") > 1), parent, "clip", 1)
    again = generation.issue_derived(parent.filter(pl.col("x") > 1), parent, "clip", 1)
    assert generation.generation_of(clipped) == generation.generation_of(again)  # same step, same data
    assert generation.generation_of(clipped) != generation.generation_of(parent)
    # an unchanged frame (clip without a window returns its input) keeps the generation it had
    assert generation.issue_derived(parent, parent, "clip", None) is parent
    assert generation.generation_of(parent) == generation.Generation(("memo-parent", 1))


def test_service_map_view_equals_the_functions_one_by_one(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    spans = with_outcome(demo_frames_small["spans"], SloConfig())
    start = spans.get_column("start").min() + timedelta(minutes=30)  # type: ignore[operator]
    view = service_map_view(spans, start, None, max_rank_traces=500, max_baseline_traces=2_000)
    selection, baseline = split_requests(spans, (start, None)).parts()
    nodes, edges = service_graph(selection)
    # rows tied on the sort key (calls) come in group_by order, which varies run to run
    assert_frame_equal(view.nodes, nodes, check_row_order=False)
    assert_frame_equal(view.edges, edges, check_row_order=False)
    assert view.radius is not None and view.ranked is not None
    assert_frame_equal(view.radius, blast_radius_services(selection, baseline))
    assert view.path == propagation_path(selection, baseline)["service"].to_list()
    bad = selection.filter(pl.col("is_root") & pl.col("is_bad")).select("trace_id")
    fault = selection.join(bad, on="trace_id", how="semi")
    ranked = rank_root_cause_services(sample_traces(fault, 500), sample_traces(baseline, 2_000))
    # top_operation is left out: trace_rca breaks a tie between zero-excess operations arbitrarily (run to run)
    assert_frame_equal(view.ranked.drop("top_operation"), ranked.drop("top_operation"))
    assert view.requests == spans.filter(pl.col("is_root")).height


def test_bad_vs_good_diff_equals_the_diff_of_the_sampled_sides(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    spans = with_outcome(demo_frames_small["spans"], SloConfig())
    diff, n_bad, n_good = bad_vs_good_diff(spans, 300)
    roots = spans.filter(pl.col("is_root"))
    assert (n_bad, n_good) == (roots.filter(pl.col("is_bad")).height, roots.filter(~pl.col("is_bad")).height)
    bad = spans.join(roots.filter(pl.col("is_bad")).select("trace_id"), on="trace_id", how="semi")
    good = spans.join(roots.filter(~pl.col("is_bad")).select("trace_id"), on="trace_id", how="semi")
    assert diff is not None
    assert_frame_equal(diff, trace_diff(sample_traces(bad, 300), sample_traces(good, 300)))
    assert bad_vs_good_diff(spans.filter(~pl.col("is_root") | pl.col("is_bad")), 300)[0] is None  # no good request


def test_search_without_span_conditions_equals_a_condition_every_span_meets(
        demo_frames_small: dict[str, pl.DataFrame]) -> None:
    spans = with_outcome(demo_frames_small["spans"], SloConfig())
    assert spans.get_column("duration_ms").min() >= 0  # type: ignore[operator]
    unconditioned = search_traces(spans, limit=300)
    assert unconditioned.height == 300
    assert_frame_equal(unconditioned, search_traces(spans, min_duration_ms=0.0, limit=300))
    rare = spans.get_column("attr.region").drop_nulls().value_counts(sort=True).get_column("attr.region")[-1]
    by_region = search_traces(spans, attrs=(("region", rare),), limit=300)
    assert_frame_equal(by_region, search_traces(spans, attrs=(("region", rare),), min_duration_ms=0.0, limit=300))
    assert by_region.height and not by_region.equals(unconditioned)


def test_should_have_tripped_given_its_windows_equals_computing_them(
        demo_frames_small: dict[str, pl.DataFrame]) -> None:
    from analysis.breakers import breaker_windows, config_from_events, should_have_tripped

    spans, breakers = with_outcome(demo_frames_small["spans"], SloConfig()), demo_frames_small["breakers"]
    config = config_from_events(demo_frames_small["events"])
    flagged = should_have_tripped(breakers, spans, SloConfig(), config)
    assert flagged.height  # the demo's payments→fraud breaker never trips
    windows = breaker_windows(breakers, spans, SloConfig())
    given = should_have_tripped(breakers, spans, SloConfig(), config, windows=windows)
    assert_frame_equal(given, flagged)


def _unpivoted_counts(roots: pl.DataFrame, attrs: list[str], name: str) -> pl.DataFrame:
    """The long-frame way: every root × attribute, distinct traces per value."""
    long = roots.unpivot(index="trace_id", on=attrs, variable_name="attribute").drop_nulls("value")
    return long.group_by(["attribute", "value"]).agg(pl.col("trace_id").n_unique().cast(pl.UInt32).alias(name))


def test_requests_per_value_equals_the_unpivoted_count_with_and_without_repeated_roots(
        demo_frames_small: dict[str, pl.DataFrame]) -> None:
    from analysis.pools import _requests_per_value

    attrs = ["attr.region", "attr.tenant", "attr.client_version"]
    roots = demo_frames_small["spans"].filter(pl.col("is_root")).select("trace_id", *attrs)
    doubled = pl.concat([roots, roots.head(500).with_columns(pl.lit("elsewhere", pl.Categorical).alias("attr.region"))])
    for frame in (roots, doubled):
        got = decoded(_requests_per_value(frame, attrs, "requests")).sort("attribute", "value")
        assert_frame_equal(got, decoded(_unpivoted_counts(frame, attrs, "requests")).sort("attribute", "value"))
    assert _requests_per_value(doubled, attrs, "n").filter(pl.col("value") == "elsewhere")["n"].to_list() == [500]
