"""Rows of :data:`connectors.clickhouse.span_sql.SPAN_COLUMNS` (Parquet) -> a SPANS frame, in polars expressions.

The SQL already normalised kind, status, ids, ``http_status`` and the attribute map (resource then span,
under the data's own names, consumed keys removed); here the ``attributes`` list of ``{key, value}`` pairs becomes one
``attr.<key>`` column per key and ``start`` gets its µs/UTC type.
"""

from __future__ import annotations

import polars as pl

from connectors.traces.frame import MAX_ATTR_COLUMNS
from model.schemas import ATTR_PREFIX, SPANS, TS


def spans_from_clickhouse(rows: pl.DataFrame) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """The SPANS frame of ``rows`` and notices (attribute columns over the cap)."""
    if rows.height == 0:
        return pl.DataFrame(schema=SPANS), ()
    base = rows.with_row_index("_row").select(
        "_row",
        *[pl.col(c).cast(SPANS[c]) for c in ("trace_id", "span_id", "parent_span_id", "service", "operation", "kind")],
        pl.col("start").cast(TS),
        pl.col("duration_ms").cast(pl.Float64),
        pl.col("status").cast(pl.String),
        pl.col("http_status").cast(pl.Int32),
        is_root=pl.col("parent_span_id").is_null(),
    )
    long = (rows.with_row_index("_row").select("_row", "attributes").explode("attributes")
            .drop_nulls("attributes").unnest("attributes"))
    notices: tuple[str, ...] = ()
    keys = long.group_by("key").len().sort(["len", "key"], descending=[True, False])
    if keys.height > MAX_ATTR_COLUMNS:
        dropped = keys.height - MAX_ATTR_COLUMNS
        notices = (f"clickhouse: {dropped} rare attribute keys dropped (cap of {MAX_ATTR_COLUMNS} columns)",)
        long = long.join(keys.head(MAX_ATTR_COLUMNS).select("key"), on="key", how="semi")
    frame = base
    if long.height:
        wide = long.with_columns(pl.concat_str(pl.lit(ATTR_PREFIX), pl.col("key")).alias("key")).pivot(
            on="key", index="_row", values="value", aggregate_function="first")
        frame = base.join(wide, on="_row", how="left", maintain_order="left")
    attr_cols = sorted(c for c in frame.columns if c.startswith(ATTR_PREFIX))
    return frame.select(*SPANS.names(), *[pl.col(c).cast(pl.String) for c in attr_cols]), notices
