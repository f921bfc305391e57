"""Where a cohort's failure starts: the service/operation its extra time or its errors come from.

The cohort's own traces are compared with the baseline's, per ``(service, operation)`` of the call
tree: *self time* per trace (a span's duration minus its children's, so time spent waiting on a
slow callee is charged to the callee, not to every caller above it) and the share of traces with
an *own* error there (an error span none of whose children failed: where the errors first
appear, not every caller they travel through). The origin is the node with the most extra self
time per trace (or, for errors, the largest rise in the own-error share), so the first screen can
say "time goes to fraud: POST /score, +10.4 s vs baseline".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import polars as pl

from analysis.cohort.find import cohort_mask
from analysis.outcome import is_error_expr
from analysis.trace_tree import self_time

MIN_BASELINE_TRACES = 30  # fewer of the cohort's own traces before the start: compare with every baseline trace
Rank = Literal["time", "errors"]


@dataclass(frozen=True)
class Origin:
    """One ``service``/``operation`` of a cohort's call tree against the baseline's.

    ``extra_ms`` is the mean self time per trace there, cohort minus baseline; ``error_share_delta``
    the share of traces with an own error there, cohort minus baseline (−1…1); ``cohort_traces``
    and ``baseline_traces`` say what was compared (``baseline`` words which baseline).
    """

    service: str
    operation: str
    extra_ms: float
    error_share_delta: float
    cohort_traces: int
    baseline_traces: int
    baseline: str = "baseline"

    def sentence(self, by: Rank = "time") -> str:
        """``time goes to fraud: POST /score, +10.4 s vs baseline`` (or where the errors start)."""
        where = f"{self.service}: {self.operation}"
        if by == "errors":
            return f"errors start at {where}, {self.error_share_delta:+.0%} of traces vs {self.baseline}".replace(
                "%", " %"
            )
        extra = f"{self.extra_ms / 1000.0:+.1f} s" if abs(self.extra_ms) >= 1000.0 else f"{self.extra_ms:+.0f} ms"
        return f"time goes to {where}, {extra} vs {self.baseline}"


_TREE_COLUMNS = ("trace_id", "span_id", "parent_span_id", "service", "operation", "start", "duration_ms", "status",
                 "http_status")  # what _per_node reads


def _per_node(spans: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """Per (service, operation): self ms per trace and the share of traces with an own error there."""
    n_traces = max(spans["trace_id"].n_unique(), 1)
    flagged = self_time(spans).with_columns(_err=is_error_expr().fill_null(False))
    failed_children = (
        flagged.filter(pl.col("_err"))
        .select("trace_id", pl.col("parent_span_id").alias("span_id"), _child_err=pl.lit(True))
        .unique()
    )
    own = flagged.join(failed_children, on=["trace_id", "span_id"], how="left").with_columns(
        _own=pl.col("_err") & pl.col("_child_err").is_null()
    )
    return own.group_by("service", "operation").agg(
        (pl.col("self_ms").sum() / n_traces).alias(f"{prefix}_ms"),
        (pl.col("trace_id").filter(pl.col("_own")).n_unique() / n_traces).alias(f"{prefix}_err"),
    )


def origins(
    cohort_spans: pl.DataFrame,
    baseline_spans: pl.DataFrame,
    *,
    by: Rank = "time",
    top: int = 3,
    baseline: str = "baseline",
) -> tuple[Origin, ...]:
    """The likely origins, best first: nodes where the cohort's traces spend more (or fail more).

    Only nodes that got worse count (``extra_ms > 0`` for ``by="time"``, a positive
    ``error_share_delta`` for ``by="errors"``); ties by service and operation name.
    """
    if cohort_spans.height == 0 or baseline_spans.height == 0:
        return ()
    n_cohort, n_base = cohort_spans["trace_id"].n_unique(), baseline_spans["trace_id"].n_unique()
    table = (
        _per_node(cohort_spans, "c")
        .join(_per_node(baseline_spans, "b"), on=["service", "operation"], how="full", coalesce=True)
        .fill_null(0.0)
        .with_columns(extra_ms=pl.col("c_ms") - pl.col("b_ms"), error_delta=pl.col("c_err") - pl.col("b_err"))
    )
    key = "extra_ms" if by == "time" else "error_delta"
    ranked = table.filter(pl.col(key) > 0).sort([key, "service", "operation"], descending=[True, False, False])
    return tuple(
        Origin(str(row["service"]), str(row["operation"]), float(row["extra_ms"]), float(row["error_delta"]),
               n_cohort, n_base, baseline)
        for row in ranked.head(top).iter_rows(named=True)
    )


def cohort_origins(
    spans: pl.DataFrame,
    pairs: Sequence[tuple[str, object]],
    start: datetime | None,
    end: datetime | None = None,
    *,
    by: Rank = "time",
    top: int = 3,
) -> tuple[Origin, ...]:
    """:func:`origins` of one cohort (``pairs`` as in :class:`analysis.cohort.Cohort`) since ``start``.

    The cohort's traces are those whose root request matches ``pairs`` within ``[start, end)``.
    They are compared with the same cohort's traces before ``start`` when there are at least
    ``MIN_BASELINE_TRACES`` of them (same client, same routes: the fairest comparison), else with
    every trace before ``start``; without a ``start``, with every trace outside the cohort.
    """
    # lazily, so each query reads only the columns it needs, not a copy of every root span
    roots = spans.lazy().filter(pl.col("is_root") if "is_root" in spans.columns else pl.col("parent_span_id").is_null())

    def ids(where: pl.Expr) -> pl.DataFrame:
        return roots.filter(where).select("trace_id").collect()

    in_cohort = cohort_mask(pairs, spans.columns)
    ts = pl.col("start")
    window = pl.lit(True) if start is None else ts >= start
    if end is not None:
        window = window & (ts < end)
    chosen = ids(in_cohort & window)
    if start is None:
        base, word = ids(~in_cohort), "the other requests"
    else:
        base, word = ids(in_cohort & (ts < start)), "its own baseline"
        if base.height < MIN_BASELINE_TRACES:
            base, word = ids(ts < start), "baseline"
    # only the columns origins reads: the two sides are copies of most of the spans, attributes would triple them
    tree = spans.select(c for c in _TREE_COLUMNS if c in spans.columns)
    return origins(tree.join(chosen, on="trace_id", how="semi"), tree.join(base, on="trace_id", how="semi"),
                   by=by, top=top, baseline=word)
