"""Step 2 of the cohort engine: per ``attribute=value`` counts and statistics (BubbleUp-style)."""

from __future__ import annotations

import polars as pl

from analysis.cohort.attributes import discover_attributes
from analysis.cohort.counts import class_counts
from analysis.cohort.stats import excess_z, two_proportion_z, with_bh, with_p_values
from analysis.outcome import Outcome, outcome_column
from analysis.periods import BASE, SEL, Selection, Split, split_requests
from model.schemas import ATTR_PREFIX
from model.semconv import Roles


def rank_values(
    requests: pl.DataFrame,
    selection: Selection = None,
    outcome: Outcome = "bad",
    attributes: list[str] | None = None,
    *,
    split: Split | None = None,
    roles: Roles | None = None,
) -> pl.DataFrame:
    """One row per ``attribute=value`` (BubbleUp-style), strongest excess first.

    Columns: ``attribute`` (key without ``attr.``), ``column``, ``value``, ``selection_count``,
    ``baseline_count``, ``selection_share``, ``baseline_share`` (of all requests of each side),
    ``bad_share`` (of the selection's bad requests: compare with ``selection_share``, BubbleUp-style),
    ``bad``/``total`` (selection), ``precision`` (bad rate in the cohort), ``baseline_rate``,
    ``expected_bad``, ``excess_bad``, ``coverage`` (share of the excess bad requests explained),
    ``lift`` (precision ÷ baseline rate), ``p_value`` (selection rate > baseline rate),
    ``q_value`` (Benjamini–Hochberg over all rows), ``significant`` (q < 0.05, excess > 0) and
    ``stands_out``: the value's share of the excess bad requests (``coverage``) is significantly
    above its share of the selection's traffic (BH-controlled) — during a big incident every value
    gets "significantly" worse, only the ones behind it stand out, and a chronically bad value
    (its baseline already bad) does not. Sorted by stands_out, significant,
    excess, then by attribute and value (ties never depend on group-by order). ``roles``: see
    :func:`analysis.cohort.attributes.discover_attributes`.
    """
    split = split or split_requests(requests, selection, outcome)
    attrs = attributes if attributes is not None else discover_attributes(requests, roles)
    flag = outcome_column(outcome)
    if not attrs or split.frame.height == 0:
        return _empty_ranking()
    sel, base = pl.col(SEL), pl.col(BASE)
    bad = pl.col(flag).fill_null(False).cast(pl.UInt8)
    # 0 baseline good, 1 baseline bad, 2 selection good, 3 selection bad, null neither
    cls = pl.when(sel).then(bad + 2).when(base).then(bad).otherwise(None)
    frame = split.frame.select(*attrs, _cls=cls)  # columns are shared, not copied; the class computed once
    return rank_counts(class_counts(frame, attrs, "_cls"), attrs)


def rank_counts(counts: pl.DataFrame, attrs: list[str]) -> pl.DataFrame:
    """:func:`rank_values` from counts already made (``column, value, cls, n``, as
    ``analysis.cohort.counts.class_counts``; any engine's, see ``analysis.aggregates``)."""
    if not attrs:
        return _empty_ranking()
    long = counts.with_columns(attribute=pl.col("column").str.strip_prefix(ATTR_PREFIX))
    sides = long.filter(pl.col("column") == attrs[0]).group_by("cls").agg(pl.col("n").sum())
    n = dict(zip(sides["cls"].to_list(), sides["n"].to_list(), strict=True))
    if not n:
        return _empty_ranking()
    sel_n, base_n = n.get(2, 0) + n.get(3, 0), n.get(0, 0) + n.get(1, 0)
    base_rate_all = (n.get(1, 0) + 0.5) / (base_n + 1.0)  # half a pseudo-event: never exactly 0
    sel_bad_all = n.get(3, 0)
    wide = long.group_by("attribute", "column", "value").agg(
        *[pl.col("n").filter(pl.col("cls") == c).sum().alias(f"c{c}") for c in range(4)]
    )
    expected_total = sel_n * base_rate_all
    return _score(wide, sel_n, base_n, base_rate_all, sel_bad_all - expected_total, sel_bad_all)


def _score(
    wide: pl.DataFrame, sel_n: int, base_n: int, base_rate_all: float, excess_all: float, sel_bad_all: int = 0
) -> pl.DataFrame:
    c0, c1, c2, c3 = (pl.col(f"c{i}").cast(pl.Float64) for i in range(4))
    prior = 10.0  # pseudo-requests at the overall baseline rate: a value never seen before is "normal"
    out = wide.lazy().with_columns(
        selection_count=(c2 + c3).cast(pl.Int64),
        baseline_count=(c0 + c1).cast(pl.Int64),
        bad=c3.cast(pl.Int64),
        total=(c2 + c3).cast(pl.Int64),
        baseline_bad=c1.cast(pl.Int64),
    ).with_columns(
        selection_share=pl.col("selection_count") / max(sel_n, 1),
        bad_share=pl.col("bad") / max(sel_bad_all, 1),
        baseline_share=pl.col("baseline_count") / max(base_n, 1),
        precision=pl.when(pl.col("total") > 0).then(c3 / (c2 + c3)).otherwise(0.0),
        baseline_rate=(c1 + prior * base_rate_all) / (c0 + c1 + prior),
    ).with_columns(
        expected_bad=pl.col("total") * pl.col("baseline_rate"),
    ).with_columns(
        excess_bad=pl.col("bad") - pl.col("expected_bad"),
        lift=pl.when(pl.col("baseline_rate") > 0).then(pl.col("precision") / pl.col("baseline_rate")).otherwise(None),
    ).with_columns(
        coverage=pl.col("excess_bad") / excess_all if excess_all > 0 else pl.lit(0.0),
    )
    out = with_p_values(out, {
        "p_value": pl.when(pl.col("baseline_count") > 0)
        .then(two_proportion_z(c3, c2 + c3, c1, c0 + c1))
        .otherwise(excess_z(c3, pl.col("expected_bad"), c2 + c3)),
        # does the value hold more of the *excess* than its share of the traffic would? (its own
        # baseline expectation plus a traffic-proportional part of the excess)
        "p_stands_out": excess_z(
            c3, pl.col("expected_bad") + pl.col("selection_share") * max(excess_all, 0.0), c2 + c3
        ),
    })
    scored = with_bh(with_bh(out.collect()), "p_stands_out", "q_stands_out")
    scored = scored.with_columns(
        significant=(pl.col("q_value") < 0.05) & (pl.col("excess_bad") > 0),
        stands_out=(pl.col("q_stands_out") < 0.05) & (pl.col("coverage") > pl.col("selection_share")),
    )
    return scored.select(_RANK_COLUMNS).sort(
        ["stands_out", "significant", "excess_bad", "attribute", "value"], descending=[True, True, True, False, False]
    )


_RANK_COLUMNS = [
    "attribute", "column", "value", "selection_count", "baseline_count", "selection_share", "baseline_share",
    "bad_share", "bad", "total", "baseline_bad", "precision", "baseline_rate", "expected_bad", "excess_bad", "coverage",
    "lift", "p_value", "q_value", "significant", "stands_out",
]


def _empty_ranking() -> pl.DataFrame:
    return _score(
        pl.DataFrame(schema={"attribute": pl.String, "column": pl.String, "value": pl.String,
                             **{f"c{i}": pl.UInt32 for i in range(4)}}), 0, 0, 0.0, 0.0,
    )
