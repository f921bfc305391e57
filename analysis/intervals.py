"""Interval helpers shared by the breaker, pool and timeline analyses (pure polars)."""

from __future__ import annotations

import polars as pl


def runs(frame: pl.DataFrame, keys: list[str], flag: pl.Expr, ts: str = "ts") -> pl.DataFrame:
    """Maximal runs where ``flag`` holds, per ``keys``, in ``ts`` order.

    Returns ``keys, start, end, ongoing``: ``start`` is the first row of the run, ``end`` the first
    row after it (null while the run lasts to the last row, then ``ongoing`` is true).
    """
    columns: dict[str, pl.DataType] = {k: frame.schema[k] for k in keys}
    schema = pl.Schema({**columns, "start": frame.schema[ts], "end": frame.schema[ts], "ongoing": pl.Boolean()})
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    marked = frame.sort([*keys, ts]).with_columns(flag.fill_null(False).alias("__flag"))
    change = (pl.col("__flag") != pl.col("__flag").shift(1)).fill_null(True)
    marked = marked.with_columns(change.cast(pl.Int64).cum_sum().over(keys).alias("__run"))
    spans = marked.group_by([*keys, "__run"]).agg(pl.col(ts).min().alias("start"), pl.col("__flag").first().alias("__flag"))
    spans = spans.sort([*keys, "__run"]).with_columns(pl.col("start").shift(-1).over(keys).alias("end"))
    return spans.filter(pl.col("__flag")).select(*keys, "start", "end", pl.col("end").is_null().alias("ongoing")).cast(schema)


def merge_intervals(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Merge overlapping ``[start, end)`` intervals per ``keys`` (null end = open-ended; touching ones stay apart).

    Keeps ``ongoing`` (any) and joins the distinct ``evidence`` values with ``+`` when present.
    """
    far = pl.lit(9_999_999_999_999_999).cast(pl.Datetime("us", "UTC"))
    work = frame.sort([*keys, "start"]).with_columns(pl.col("end").fill_null(far).alias("__end"))
    reach = pl.col("__end").cum_max().shift(1).over(keys)
    work = work.with_columns((pl.col("start") >= reach).fill_null(True).cast(pl.Int64).cum_sum().over(keys).alias("__grp"))
    aggs = [pl.col("start").min(), pl.col("__end").max(), pl.col("ongoing").any()]
    if "evidence" in frame.columns:
        aggs.append(pl.col("evidence").unique().sort().str.join("+").alias("evidence"))
    out = work.group_by([*keys, "__grp"]).agg(aggs)
    return out.with_columns(pl.when(pl.col("__end") == far).then(None).otherwise(pl.col("__end")).alias("end")).drop("__end", "__grp")
