"""Multi-attribute cohorts for requests: spans → leaf frame → :func:`analysis.cohort_search.localize`."""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl

from analysis.cohort import (
    COUNT_PARAMS, SEARCH_ATTRIBUTES, Selection, Split, cohort_key, discover_attributes, rank_values, split_requests,
)
from analysis.cohort_search import Pairs, localize, ratio_leaves
from analysis.cohort_stats import excess_z, with_bh, with_p_values
from analysis.outcome import OUTCOME_WORDS, Outcome, outcome_column

MIN_CONCENTRATION = 0.02  # see search_attributes
MAX_LEAVES = 200_000
MISSING = "(missing)"  # the value of a cohort attribute a request does not carry


@dataclass(frozen=True)
class Cohort:
    """A group of requests sharing ``pairs`` (attribute key without ``attr.``, value).

    ``bad``/``total`` count the selection; ``expected_bad`` is what the baseline rates predict for
    these requests; ``baseline_rate`` is the cohort's own bad rate in the baseline; ``coverage`` is
    the share of all excess bad requests this cohort explains;
    ``precision`` its bad rate; ``lift`` = precision ÷ ``baseline_rate``.
    """

    pairs: Pairs
    bad: int
    total: int
    precision: float
    baseline_rate: float
    expected_bad: float
    coverage: float
    lift: float | None
    p_value: float
    outcome: Outcome = "bad"
    versus: str = "before"

    def label(self) -> str:
        """``region=eu-west AND client_version=5.2.0``."""
        return " AND ".join(f"{k}={v}" for k, v in self.pairs)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of ``python -m analysis cohort --json``."""
        return {
            "cohort": dict(self.pairs),
            "bad": self.bad,
            "total": self.total,
            "precision": round(self.precision, 6),
            "coverage": round(self.coverage, 6),
            "lift": None if self.lift is None else round(self.lift, 4),
            "p_value": float(f"{self.p_value:.6g}"),
        }

    def describe(self, band: str | None = None) -> str:
        """Plain words: "explains 87 % of slow requests; 64 % of its requests are slow vs 2 % before; ×32".

        ``band`` words a selection whose "bad" is a brushed latency band ("in the brushed band"):
        "explains 87 % of the requests in the brushed band; 64 % of its requests are in the brushed band …".
        """
        word = OUTCOME_WORDS[self.outcome]
        which, are = (f"the requests {band}", band) if band else (f"{word} requests", word)
        lift = "" if self.lift is None else f"; ×{self.lift:.3g}"
        return (
            f"explains {self.coverage:.0%} of {which}; {self.precision:.0%} of its requests are {are} "
            f"vs {self.baseline_rate:.0%} {self.versus}{lift}"
        ).replace("%", " %")


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


def request_leaves(split: Split, columns: list[str], outcome: Outcome = "bad") -> pl.DataFrame:
    """Leaf frame: one row per combination of ``columns`` with bad/total per side."""
    flag = pl.col(outcome_column(outcome)).fill_null(False)
    sel, base = pl.col("_sel"), pl.col("_base")
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
) -> list[Cohort]:
    """The smallest set of 1–``max_depth``-attribute cohorts explaining the excess bad requests.

    Best first (largest coverage). A cohort already as bad in the baseline explains no excess and
    is not reported; neither is one whose excess is not significant after Benjamini–Hochberg.
    Pass the ``split`` and ``ranking`` already computed for the same requests to skip that work.
    """
    split = split or split_requests(requests, selection, outcome)
    attrs = attributes if attributes is not None else discover_attributes(requests)
    if ranking is None:
        ranking = rank_values(requests, outcome=outcome, attributes=attrs, split=split)
    columns = search_attributes(ranking)
    if not columns:
        return []
    leaves = ratio_leaves(request_leaves(split, columns, outcome), columns)
    # the overall excess: selection bad minus what the overall baseline rate predicts
    excess_all = float(leaves.select(
        pl.col("bad").sum() - pl.col("total").sum() * pl.col("base_bad").sum() / pl.col("base_total").sum().clip(1)
    ).item() or 0.0)
    if excess_all <= 0:
        return []
    found = localize(leaves, columns, replace(COUNT_PARAMS, max_depth=min(max_depth, len(columns))))
    if not found:
        return []
    rows = []
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
    versus = "before" if split.start is not None else "elsewhere"
    cohorts = []
    for element, row in zip(found, stats.iter_rows(named=True)):
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
