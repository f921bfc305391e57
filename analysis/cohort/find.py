"""Steps 3–5 of the cohort engine: the combination search over requests.

The ranking (:mod:`analysis.cohort.rank`) picks the attributes worth combining; the requests are
grouped into a leaf frame per combination of them; :func:`analysis.cohort.search.localize` finds
the cohorts (refined by :mod:`analysis.cohort.refine`); each becomes a :class:`Cohort`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import polars as pl

from analysis.cohort.attributes import cohort_key, discover_attributes
from analysis.cohort.describe import Cohort
from analysis.cohort.rank import rank_values
from analysis.cohort.search import COUNT_PARAMS, localize, ratio_leaves
from analysis.cohort.stats import excess_z, with_bh, with_p_values
from analysis.outcome import Outcome, outcome_column
from analysis.periods import BASE, SEL, Selection, Split, split_requests
from model.schemas import ATTR_PREFIX, MISSING
from model.semconv import Roles

SEARCH_ATTRIBUTES = 8  # the combination search looks at the attributes with the strongest single values
MIN_CONCENTRATION = 0.02  # see search_attributes
MAX_LEAVES = 200_000


def search_attributes(ranking: pl.DataFrame, limit: int = SEARCH_ATTRIBUTES, max_leaves: int = MAX_LEAVES) -> list[str]:
    """Columns worth combining, most telling first.

    An attribute unrelated to the fault spreads the excess bad requests like its traffic; one that
    is related concentrates them. The score is the total variation between the two distributions,
    ``Σ max(0, coverage − selection_share − 3σ)`` over the attribute's values; attributes scoring at
    least ``MIN_CONCENTRATION`` are taken while the product of their cardinalities (the leaf count
    of the search) stays under ``max_leaves``.
    """
    excess_all = pl.col("excess_bad").sum().over("column").clip(lower_bound=1.0)
    # a value's coverage beyond its traffic share, less 3 Poisson standard deviations of its bad count
    beyond = pl.col("coverage") - pl.col("selection_share") - 3.0 * (pl.col("bad") + 1.0).sqrt() / excess_all
    scores = (
        ranking.with_columns(beyond=beyond)
        .group_by("column")
        .agg(score=pl.col("beyond").clip(lower_bound=0).sum(), values=pl.len())
        .filter(pl.col("score") >= MIN_CONCENTRATION)
        .sort(["score", "column"], descending=[True, False])
    )
    chosen: list[str] = []
    leaves = 1
    for column, values in scores.select("column", "values").iter_rows():
        if len(chosen) >= limit:
            break
        if chosen and leaves * values > max_leaves:
            continue
        chosen.append(column)
        leaves *= values
    return chosen


def cohort_mask(pairs: Sequence[tuple[str, object]], columns: Sequence[str]) -> pl.Expr:
    """Rows of a cohort: its pairs' keys (``region``) matched to the frame's ``columns`` (``attr.region``)."""
    mask = pl.lit(True)
    for key, value in pairs:
        column = key if key in columns else f"{ATTR_PREFIX}{key}"
        mask = mask & (pl.col(column).cast(pl.String).fill_null(MISSING) == str(value))
    return mask


def request_leaves(split: Split, columns: list[str], outcome: Outcome = "bad") -> pl.DataFrame:
    """Leaf frame: one row per combination of ``columns`` with bad/total per side."""
    flag = pl.col(outcome_column(outcome)).fill_null(False)
    sel, base = pl.col(SEL), pl.col(BASE)
    leaves = (
        split.frame.lazy()
        .filter(sel | base)
        .group_by(columns)
        .agg(
            bad=(sel & flag).sum(),
            total=sel.sum(),
            base_bad=(base & flag).sum(),
            base_total=base.sum(),
        )
        .collect()
    )  # group first, then stringify the few leaves (not the millions of requests)
    return leaves.with_columns(pl.col(c).cast(pl.String).fill_null(MISSING) for c in columns)


def find_cohorts(
    requests: pl.DataFrame,
    selection: Selection = None,
    outcome: Outcome = "bad",
    attributes: list[str] | None = None,
    *,
    max_depth: int = 3,
    top: int = 10,
    split: Split | None = None,
    ranking: pl.DataFrame | None = None,
    alpha: float = 0.05,
    roles: Roles | None = None,
) -> list[Cohort]:
    """The smallest set of 1–``max_depth``-attribute cohorts explaining the excess bad requests.

    Best first (largest coverage). A cohort already as bad in the baseline explains no excess and
    is not reported; neither is one whose excess is not significant after Benjamini–Hochberg.
    Pass the ``split`` and ``ranking`` already computed for the same requests to skip that work.
    Equal coverage keeps the search's order (ties never depend on group-by order).
    """
    split = split or split_requests(requests, selection, outcome)
    attrs = attributes if attributes is not None else discover_attributes(requests, roles)
    if ranking is None:
        ranking = rank_values(requests, outcome=outcome, attributes=attrs, split=split)
    columns = search_attributes(ranking)
    if not columns:
        return []
    return cohorts_of_leaves(request_leaves(split, columns, outcome), columns, outcome, split.versus,
                             max_depth=max_depth, top=top, alpha=alpha)


def cohorts_of_leaves(
    counted: pl.DataFrame, columns: list[str], outcome: Outcome, versus: str, *,
    max_depth: int = 3, top: int = 10, alpha: float = 0.05,
) -> list[Cohort]:
    """:func:`find_cohorts` from leaf counts already made (as :func:`request_leaves`; any engine's)."""
    leaves = ratio_leaves(counted, columns)
    # the overall excess: selection bad minus what the overall baseline rate predicts
    # in floats: the counts are UInt32 from polars, and total × base_bad overflows 32 bits at a few M requests
    in_floats = [pl.col(c).cast(pl.Float64).sum() for c in ("bad", "total", "base_bad", "base_total")]
    bad, total, base_bad, base_total = in_floats
    excess_all = float(leaves.select(bad - total * base_bad / base_total.clip(1.0)).item() or 0.0)
    if excess_all <= 0:
        return []
    found = localize(leaves, columns, replace(COUNT_PARAMS, max_depth=min(max_depth, len(columns))))
    if not found:
        return []
    rows: list[dict[str, object]] = []
    for element in found:
        mask = pl.lit(True)
        for column, value in element.pairs:
            mask = mask & (pl.col(column) == value)
        sums = leaves.filter(mask).select(
            bad=pl.col("bad").sum(), total=pl.col("total").sum(), expected=pl.col("predict").sum(),
            base_bad=pl.col("base_bad").sum(), base_total=pl.col("base_total").sum(),
        ).row(0, named=True)
        rows.append({"i": len(rows), **sums})
    stats = with_p_values(pl.DataFrame(rows), {
        "p_value": excess_z(pl.col("bad").cast(pl.Float64), pl.col("expected"), pl.col("total").cast(pl.Float64)),
    })
    stats = with_bh(stats)
    cohorts = []
    for element, row in zip(found, stats.iter_rows(named=True), strict=True):
        if row["bad"] <= row["expected"] or row["q_value"] >= alpha or not row["total"]:
            continue
        precision = row["bad"] / row["total"]
        # the cohort's own rate in the baseline (half a pseudo-event); the model's when never seen
        base_rate = (
            (row["base_bad"] + 0.5) / (row["base_total"] + 1.0) if row["base_total"] else row["expected"] / row["total"]
        )
        cohorts.append(Cohort(
            pairs=tuple((cohort_key(c), v) for c, v in element.pairs),
            bad=int(row["bad"]),
            total=int(row["total"]),
            precision=precision,
            baseline_rate=base_rate,
            expected_bad=float(row["expected"]),
            coverage=min(1.0, (row["bad"] - row["expected"]) / excess_all),
            lift=precision / base_rate if base_rate > 0 else None,
            p_value=float(row["p_value"]),
            outcome=outcome,
            versus=versus,
        ))
    return sorted(cohorts, key=lambda c: -c.coverage)[:top]
