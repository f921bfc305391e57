"""Waterfall rows for one trace, bounded so a 5,000-span trace stays readable."""

from __future__ import annotations

import polars as pl

from analysis.outcome import is_error_expr
from analysis.trace_tree import critical_path, self_time, with_tree

_SIBLINGS = ["trace_id", "parent_span_id", "service", "operation"]

WATERFALL_COLUMNS = [
    "row", "trace_id", "span_id", "parent_span_id", "depth", "service", "operation", "label", "offset_ms",
    "duration_ms", "self_ms", "count", "on_critical_path", "is_error", "is_slow",
]


def _flags(spans: pl.DataFrame) -> pl.DataFrame:
    error = pl.col("is_error") if "is_error" in spans.columns else is_error_expr()
    slow = pl.col("is_slow") if "is_slow" in spans.columns else pl.lit(False)
    return spans.with_columns(is_error=error.fill_null(False), is_slow=slow.fill_null(False))


def _collapse(rows: pl.DataFrame, sibling_bound: int) -> pl.DataFrame:
    """Fold runs of more than ``sibling_bound`` same-operation siblings into their representative
    (the critical one, else the earliest); the other members and their subtrees are hidden."""
    rows = rows.with_columns(group_n=pl.len().over(_SIBLINGS))
    big = rows.filter(pl.col("group_n") > sibling_bound)
    if big.is_empty():
        return rows.with_columns(count=pl.lit(1, dtype=pl.UInt32))
    big = big.sort(["on_critical_path", "start"], descending=[True, False]).with_columns(
        is_rep=pl.col("span_id") == pl.col("span_id").first().over(_SIBLINGS)
    )
    agg = big.group_by(_SIBLINGS).agg(
        g_start=pl.col("start").min(),
        g_end_us=(pl.col("start").dt.epoch("us") + (pl.col("duration_ms") * 1000).cast(pl.Int64)).max(),
        g_self_ms=pl.col("self_ms").sum(),
        g_error=pl.col("is_error").any(),
        g_slow=pl.col("is_slow").any(),
        g_crit=pl.col("on_critical_path").any(),
        count=pl.len(),
    )
    hidden_roots = big.filter(~pl.col("is_rep")).select("trace_id", "span_id")
    hidden_ids = (hidden_roots["trace_id"] + "/" + hidden_roots["span_id"]).implode()
    # a span is hidden with its folded ancestor; ancestors are span ids of the same trace
    in_hidden_subtree = (pl.col("trace_id") + "/" + pl.col("span_id")).is_in(hidden_ids) | pl.col(
        "ancestors"
    ).list.eval(pl.element().is_in(hidden_roots["span_id"].implode())).list.any()
    rows = rows.with_columns(_hidden=in_hidden_subtree).filter(~pl.col("_hidden"))
    rows = rows.join(agg, on=_SIBLINGS, how="left").with_columns(
        count=pl.col("count").fill_null(1).cast(pl.UInt32)
    )
    folded = pl.col("count") > 1
    return rows.with_columns(
        start=pl.when(folded).then(pl.col("g_start")).otherwise(pl.col("start")),
        duration_ms=pl.when(folded)
        .then((pl.col("g_end_us") - pl.col("g_start").dt.epoch("us")) / 1000.0)
        .otherwise(pl.col("duration_ms")),
        self_ms=pl.when(folded).then(pl.col("g_self_ms")).otherwise(pl.col("self_ms")),
        is_error=pl.when(folded).then(pl.col("g_error")).otherwise(pl.col("is_error")),
        is_slow=pl.when(folded).then(pl.col("g_slow")).otherwise(pl.col("is_slow")),
        on_critical_path=pl.when(folded).then(pl.col("g_crit")).otherwise(pl.col("on_critical_path")),
    ).drop("_hidden", "g_start", "g_end_us", "g_self_ms", "g_error", "g_slow", "g_crit")


def waterfall_rows(trace_spans: pl.DataFrame, *, max_rows: int = 300, sibling_bound: int = 5) -> pl.DataFrame:
    """One row per span in depth-first order, children by start time.

    Runs of more than ``sibling_bound`` calls to the same service/operation under one parent
    become one row with ``count`` = the number of calls (offset = first start, duration = until
    the last end, ``self_ms`` summed, flags OR-ed); the bound tightens until the rows fit in
    ``max_rows``, and as a last resort the deepest rows off the critical path are dropped.
    Columns: ``WATERFALL_COLUMNS`` (``offset_ms`` from the trace start; ``label`` for display).
    """
    if trace_spans.is_empty():
        return pl.DataFrame(schema={c: pl.String for c in WATERFALL_COLUMNS}).head(0)
    crit = critical_path(trace_spans).select("trace_id", "span_id", on_critical_path=pl.lit(True))
    rows = (
        with_tree(_flags(self_time(trace_spans)))
        .join(crit, on=["trace_id", "span_id"], how="left")
        .with_columns(pl.col("on_critical_path").fill_null(False))
    )
    out = _collapse(rows, sibling_bound)
    bound = sibling_bound
    while out.height > max_rows and bound > 1:
        bound = max(1, bound // 2)
        out = _collapse(rows, bound)
    if out.height > max_rows:
        keep = out.sort(["on_critical_path", "depth", "order_key"], descending=[True, False, False]).head(max_rows)
        out = keep
    t0 = pl.col("start").min().over("trace_id")
    return (
        out.sort("order_key")
        .with_columns(
            row=pl.int_range(0, pl.len()),
            offset_ms=(pl.col("start") - t0).dt.total_microseconds() / 1000.0,
            label=pl.concat_str(
                [
                    pl.col("service"), pl.lit(": "), pl.col("operation"),
                    pl.when(pl.col("count") > 1).then(pl.format(" ×{}", pl.col("count"))).otherwise(pl.lit("")),
                ]
            ),
        )
        .select(WATERFALL_COLUMNS)
    )
