"""Span sampling in a snapshot: every request kept, and the traces behind the view keep their child
spans before any other trace does."""

from __future__ import annotations

import polars as pl

from snapshots.capture import build_snapshot, sample_spans
from tests import snapshot_data


def test_the_views_traces_keep_their_children_first() -> None:
    spans = snapshot_data.spans(n_traces=400)
    roots = spans.filter(pl.col("is_root"))
    children = spans.filter(~pl.col("is_root"))
    view = roots.filter(pl.col("attr.region") == "eu-west").select("trace_id")
    view_children = children.join(view, on="trace_id", how="semi").height
    assert 0 < view_children < children.height
    bound = roots.height + view_children  # room for every request and the view's child spans, nothing else

    kept, info = sample_spans(spans, bound, preferred=view)
    assert info["applied"] and info["all_requests_kept"]
    assert kept.filter(pl.col("is_root")).height == roots.height
    kept_children = kept.filter(~pl.col("is_root"))
    assert kept_children.join(view, on="trace_id", how="semi").height == view_children
    assert kept_children.join(view, on="trace_id", how="anti").height == 0

    unpreferred, _ = sample_spans(spans, bound)  # without a preference the same budget goes elsewhere too
    assert unpreferred.filter(~pl.col("is_root")).join(view, on="trace_id", how="anti").height > 0


def test_build_snapshot_passes_the_preference_on() -> None:
    spans = snapshot_data.spans(n_traces=200)
    roots = spans.filter(pl.col("is_root"))
    view = roots.head(10).select("trace_id")
    want = spans.join(view, on="trace_id", how="semi").filter(~pl.col("is_root")).height
    snap = build_snapshot({"spans": spans}, title="t", span_bound=roots.height + want, preferred_traces=view)
    kept = snap.frames["spans"].filter(~pl.col("is_root"))
    assert kept.join(view, on="trace_id", how="semi").height == want
    assert snap.manifest.sampling["spans"]["rows_kept"] == roots.height + want
