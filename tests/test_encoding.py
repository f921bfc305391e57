"""Spans held with low-cardinality strings as Categorical (model.encoding) give every analysis the same answer
as the plain String frame the schemas describe, and take less memory."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis.cohort.report import investigate
from analysis.outcome import with_outcome
from analysis.pools import exhaustion_chain
from analysis.service_map import service_map_view
from analysis.timeline import timeline
from analysis.traces import lookup_ids, retry_amplification, search_traces
from config import SloConfig
from model.encoding import MAX_CATEGORIES, decoded, encoded, held
from model.semconv import resolve_roles
from model.validate import problems

SLO = SloConfig(default_ms=2000)


@pytest.fixture(scope="module")
def pair(demo_frames_small: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(plain, held) spans with outcome columns, the same rows: plain in no particular order, held as the app
    holds them (codes, in start order)."""
    plain = decoded(demo_frames_small["spans"]).sample(fraction=1.0, shuffle=True, seed=3)
    held_spans = held(plain)
    assert held_spans.get_column("start").is_sorted() and not plain.get_column("start").is_sorted()
    return with_outcome(plain, SLO), with_outcome(held_spans, SLO)


def _same(got: Any, want: Any, where: str = "result") -> None:
    """Equal once every frame in ``got`` is decoded (frames, dataclasses, tuples, lists, dicts, scalars)."""
    if isinstance(want, pl.DataFrame):
        # rows tied on a sort key may come in another order; a rank column still pins ranked order
        assert_frame_equal(decoded(got), want, check_exact=False, rel_tol=1e-9, check_row_order=False)
    elif dataclasses.is_dataclass(want) and not isinstance(want, type):
        for f in dataclasses.fields(want):
            _same(getattr(got, f.name), getattr(want, f.name), f"{where}.{f.name}")
    elif isinstance(want, (tuple, list)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, dict):
        assert got.keys() == want.keys(), where
        for k in want:
            _same(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9), where
    else:
        assert got == want, where


def test_low_cardinality_columns_are_codes_and_ids_stay_strings(pair: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    plain, enc = pair
    assert enc.schema["service"] == pl.Categorical and enc.schema["attr.region"] == pl.Categorical
    for column in ("trace_id", "span_id", "attr.correlation_id"):
        assert plain.get_column(column).n_unique() > MAX_CATEGORIES and enc.schema[column] == pl.String
    assert_frame_equal(decoded(enc), plain, check_row_order=False)
    assert problems(enc.drop("slo_ms", "is_error", "is_slow", "is_bad"), "spans") == []  # still the schema's frame
    assert enc.get_column("attr.region").to_physical().dtype == pl.UInt32  # a 4-byte code a row, not a 16-byte view


def test_every_analysis_answers_the_same_over_codes(pair: tuple[pl.DataFrame, pl.DataFrame],
                                                    demo_frames_small: dict[str, pl.DataFrame]) -> None:
    plain, enc = pair
    roots_plain, roots_enc = plain.filter(pl.col("is_root")), enc.filter(pl.col("is_root"))
    roles = resolve_roles(plain.columns)
    t0 = plain.get_column("start").min()
    start, end = t0 + timedelta(minutes=25), t0 + timedelta(minutes=45)  # type: ignore[operator]
    trace = plain.filter(pl.col("is_root")).sort("trace_id").get_column("trace_id")[7]
    other = demo_frames_small
    runs = {
        "investigate": lambda s, r: investigate(r, SLO, roles, "bad", start, end),
        "service map": lambda s, r: service_map_view(s, start, end, max_rank_traces=500, max_baseline_traces=2000),
        "search": lambda s, r: search_traces(s, operation="Charge", attrs=(("region", "eu-west-1"),),
                                             min_duration_ms=100.0, outcome="bad"),
        "lookup": lambda s, r: lookup_ids(s, trace[:12]),
        "retries": lambda s, r: retry_amplification(s, by="1m"),
        "timeline": lambda s, r: timeline(other["events"], breakers=other["breakers"], pools=other["pools"], spans=s),
        "pools": lambda s, r: exhaustion_chain(other["pools"], other["pool_holders"], s, roles=roles),
    }
    for name, run in runs.items():
        want = run(plain, roots_plain)
        _same(run(enc, roots_enc), want, name)
    assert search_traces(enc, operation="charge").height > 0  # the case-insensitive text search reads the codes


def test_redaction_reaches_columns_held_as_codes() -> None:
    from snapshots.redact import RedactionConfig, Redactor

    table = encoded(pl.DataFrame({"attr.user_id": ["u-1", "u-2", "u-1"],
                                  "note": ["token s3cr3t-value here", "fine", "fine"]}))
    assert table.schema["attr.user_id"] == pl.Categorical and table.schema["note"] == pl.String
    table = table.with_columns(pl.col("note").cast(pl.Categorical))  # a result table grouped on a code column
    out = Redactor(RedactionConfig(), b"key", ["s3cr3t-value"]).table(table)
    assert not out.get_column("attr.user_id").is_in(["u-1", "u-2"]).any()
    assert not out.get_column("note").str.contains("s3cr3t-value").any()


def test_a_time_window_of_held_spans_shares_their_columns(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    """Spans held in start order: the filter an engineer changes most (the time window) copies nothing, at any size
    (polars returns a contiguous run of rows as a slice: this fails if an upgrade stops doing so)."""
    from ui.view_state import Filter

    spans = held(decoded(demo_frames_small["spans"]).sample(fraction=1.0, shuffle=True, seed=5))
    t0 = spans.get_column("start").min()
    flt = Filter(t0 + timedelta(minutes=20), t0 + timedelta(minutes=40))  # type: ignore[operator]
    window = flt.clip(spans, "start")
    assert 0 < window.height < spans.height
    assert np.shares_memory(window.get_column("duration_ms").to_numpy(allow_copy=False),
                            spans.get_column("duration_ms").to_numpy(allow_copy=False))
    requests = spans.filter(pl.col("is_root"))
    assert np.shares_memory(flt.clip(requests, "start").get_column("duration_ms").to_numpy(allow_copy=False),
                            requests.get_column("duration_ms").to_numpy(allow_copy=False))
