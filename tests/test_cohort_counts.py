"""class_counts (the ranking's packed-histogram hot loop) against a plain polars group_by."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.cohort import counts as cohort_counts
from analysis.cohort.counts import class_counts


def _naive(frame: pl.DataFrame, columns: list[str], cls: str) -> pl.DataFrame:
    parts = [
        frame.filter(pl.col(cls).is_not_null())
        .group_by(pl.col(c).cast(pl.String).alias("value"), cls)
        .agg(n=pl.len())
        .select(pl.lit(c).alias("column"), "value", pl.col(cls).cast(pl.Int8).alias("cls"), pl.col("n").cast(pl.UInt32))
        for c in columns
    ]
    return pl.concat(parts)


def _same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    order = ["column", "value", "cls"]
    assert got.schema == {"column": pl.String, "value": pl.String, "cls": pl.Int8, "n": pl.UInt32}
    assert got.sort(order, nulls_last=True).equals(want.sort(order, nulls_last=True))


def _mixed(n: int) -> pl.DataFrame:
    i = pl.int_range(n)
    return pl.select(**{
        "u8": (i % 7).cast(pl.UInt8),  # direct codes
        "offset": (i % 5 + 100).cast(pl.Int32),  # direct, not starting at 0
        "negative": (i % 9 - 4).cast(pl.Int16),
        "with_null": pl.when(i % 4 == 0).then(None).otherwise(i % 3).cast(pl.UInt8),
        "wide": (i * 7919 % 3_000_000).cast(pl.Int64),  # range too large for codes: treated as text
        "text": pl.format("v{}", i % 11),
        "text_null": pl.when(i % 5 == 0).then(None).otherwise(pl.format("t{}", i % 3)),
        "flag": i % 2 == 0,
        # categoricals: codes are global (shared with every other categorical), so sparse here
        "cat": pl.format("zc{}", i % 13).cast(pl.Categorical),
        "cat_null": pl.when(i % 3 == 0).then(None).otherwise(pl.format("b{}", i % 4)).cast(pl.Categorical),
        "cat_all_null": pl.lit(None, dtype=pl.String).cast(pl.Categorical),
        "cls": pl.when(i % 10 == 0).then(None).otherwise(i % 4).cast(pl.UInt8),
    })  # type: ignore[arg-type]


def test_matches_group_by_on_every_kind_of_column() -> None:
    frame = _mixed(5_000)
    columns = [c for c in frame.columns if c != "cls"]
    _same(class_counts(frame, columns, "cls"), _naive(frame, columns, "cls"))


def test_matches_group_by_across_many_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cohort_counts, "MIN_PACK_LIMIT", 64)  # force one attribute per pass, or almost
    frame = _mixed(3_000)
    columns = [c for c in frame.columns if c != "cls"]
    _same(class_counts(frame, columns, "cls"), _naive(frame, columns, "cls"))


def test_class_as_expression_and_empty_inputs() -> None:
    frame = _mixed(1_000)
    by_expr = class_counts(frame, ["text"], pl.col("cls"))
    _same(by_expr, _naive(frame, ["text"], "cls"))
    assert class_counts(frame, [], "cls").height == 0
    assert class_counts(frame.head(0), ["text", "u8"], "cls").height == 0
    assert class_counts(frame.with_columns(cls=pl.lit(None, pl.UInt8)), ["text"], "cls").height == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(-3, 300)),
            st.one_of(st.none(), st.sampled_from(["a", "b", "ü", "", "a" * 40])),
            st.one_of(st.none(), st.integers(0, 3)),
        ),
        max_size=200,
    )
)
def test_property_matches_group_by(rows: list[tuple[int | None, str | None, int | None]]) -> None:
    frame = pl.DataFrame(rows, schema={"n": pl.Int64, "s": pl.String, "cls": pl.UInt8}, orient="row")
    _same(class_counts(frame, ["n", "s"], "cls"), _naive(frame, ["n", "s"], "cls"))


def test_the_overall_excess_does_not_overflow_on_millions_of_requests() -> None:
    """polars counts are UInt32: total × base_bad of a 10 M-span window passes 2**32 (coverage 0.61 instead of 1)."""
    from analysis.cohort.find import cohorts_of_leaves

    counts = {"attr.v": ["5.2", "5.1", "5.0"], "bad": [44_470, 13_830, 13_831],
              "total": [555_555, 555_555, 555_556], "base_bad": [19_414, 19_413, 19_414],
              "base_total": [1_111_111, 1_111_111, 1_111_112]}
    wide = cohorts_of_leaves(pl.DataFrame(counts), ["attr.v"], "bad", "before")
    narrow = cohorts_of_leaves(pl.DataFrame(counts).with_columns(pl.exclude("attr.v").cast(pl.UInt32)),
                               ["attr.v"], "bad", "before")
    assert [c.pairs for c in wide] == [(("v", "5.2"),)]
    assert [(c.pairs, c.coverage) for c in narrow] == [(c.pairs, c.coverage) for c in wide]
    excess = sum(counts["bad"]) - sum(counts["total"]) * sum(counts["base_bad"]) / sum(counts["base_total"])
    assert narrow[0].coverage == pytest.approx((narrow[0].bad - narrow[0].expected_bad) / excess)
