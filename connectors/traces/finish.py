"""Turn a :class:`SpanRows` accumulator into a SPANS frame with polars expressions (no per-row Python).

Steps, in order (each depends on the previous):
1. ids: lower-case hex left-padded to 32/16, base64 decoded, anything else hashed (notice);
2. attributes: resource then span (span wins), aliases, ``http_status`` pulled out, caps, pivot to ``attr.*``;
3. exact duplicate spans dropped (Jaeger's dedupe adjuster does the same);
4. Zipkin-style shared ids: a SERVER span reusing its CLIENT's id gets a derived id and the client as parent,
   and the children of that id move under the server (Zipkin's SpanNode and Jaeger's SpanIDDeduper);
5. ``is_root`` = no parent.
"""

from __future__ import annotations

import polars as pl

from connectors.traces.frame import (
    ALIASES,
    CONSUMED_KEYS,
    HTTP_STATUS_KEYS,
    MAX_ATTR_COLUMNS,
    MAX_VALUE_CHARS,
    Converted,
    SpanRows,
    empty_converted,
    hash_id,
    short,
)
from model.schemas import ATTR_PREFIX, SPANS, TS

_BASE_SCHEMA = {
    "trace_id": pl.String, "span_id": pl.String, "parent_span_id": pl.String, "service": pl.String,
    "operation": pl.String, "kind": pl.String, "start_us": pl.Int64, "duration_ms": pl.Float64,
    "status": pl.String, "_res": pl.Int64,
}
_LONG_SCHEMA = {"_row": pl.Int64, "key": pl.String, "value": pl.String}


def finish(rows: SpanRows) -> Converted:
    """Build the SPANS frame (explicit schema) and the notices of one conversion."""
    fmt = rows.fmt
    notices = list(rows.notices)
    if not rows.cols["span_id"]:
        return empty_converted(notices + _count_notices(rows))
    base = pl.DataFrame(rows.cols, schema=_BASE_SCHEMA).with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    base, id_notices = _normalize_ids(base, fmt)
    notices += id_notices
    missing = base.filter(pl.col("trace_id").is_null() | pl.col("span_id").is_null()).height
    if missing:
        notices.append(f"{fmt}: dropped {missing} spans without a trace id or span id")
        base = base.filter(pl.col("trace_id").is_not_null() & pl.col("span_id").is_not_null())
    wide, http, attr_notices = _attributes(rows, base)
    notices += attr_notices
    frame = (base.join(http, on="_row", how="left", maintain_order="left")
             .join(wide, on="_row", how="left", coalesce=True, maintain_order="left"))
    attr_cols = sorted(c for c in frame.columns if c.startswith(ATTR_PREFIX))
    frame = frame.select(
        *[c for c in SPANS if c not in ("start", "http_status", "is_root")],
        pl.col("start_us").cast(TS).alias("start"),  # µs since the epoch -> Datetime(us, UTC)
        pl.col("http_status").cast(pl.Int32),
        *attr_cols,
    )
    before = frame.height
    frame = frame.unique(maintain_order=True)
    if frame.height < before:
        notices.append(f"{fmt}: dropped {before - frame.height} exact duplicate spans")
    frame, shared_notices = _split_shared_ids(frame, fmt)
    notices += shared_notices
    frame = frame.with_columns(is_root=pl.col("parent_span_id").is_null())
    frame = frame.select(*SPANS.names(), *attr_cols)
    return Converted(frame, tuple(notices + _count_notices(rows)))


def _count_notices(rows: SpanRows) -> list[str]:
    return [f"{rows.fmt}: {n} {what}" for what, n in sorted(rows.counts.items())]


def _id_expr(name: str, hex_len: int) -> pl.Expr:
    raw = pl.col(name).str.strip_chars()
    decoded = raw.str.decode("base64", strict=False).bin.encode("hex")
    return (
        pl.when(raw.is_null() | (raw == "")).then(None)
        .when(raw.str.contains(f"^[0-9a-fA-F]{{1,{hex_len}}}$")).then(raw.str.to_lowercase().str.pad_start(hex_len, "0"))
        .when(decoded.str.len_chars().is_between(1, hex_len)).then(decoded.str.pad_start(hex_len, "0"))
        .otherwise(None)
    )


def _normalize_ids(base: pl.DataFrame, fmt: str) -> tuple[pl.DataFrame, list[str]]:
    widths = {"trace_id": 32, "span_id": 16, "parent_span_id": 16}
    normed = base.with_columns(**{f"_n_{c}": _id_expr(c, w) for c, w in widths.items()})
    bad: list[str] = []
    exprs = []
    for col, width in widths.items():
        unresolved = normed.filter(pl.col(f"_n_{col}").is_null() & (pl.col(col).str.strip_chars() != ""))
        raws = unresolved.get_column(col).unique(maintain_order=True).to_list()
        bad += raws
        mapping = {raw: hash_id(raw, width) for raw in raws}
        expr = pl.col(f"_n_{col}")
        if mapping:
            expr = expr.fill_null(pl.col(col).replace_strict(mapping, default=None, return_dtype=pl.String))
        exprs.append(expr.alias(col))
    out = normed.with_columns(exprs).drop([f"_n_{c}" for c in widths])
    # Jaeger writes an all-zero parent for "no parent"; OTLP an empty string (handled above).
    out = out.with_columns(pl.when(pl.col("parent_span_id").str.contains("^0+$")).then(None)
                           .otherwise(pl.col("parent_span_id")).alias("parent_span_id"))
    notices = []
    if bad:
        notices.append(f"{fmt}: {len(bad)} ids are neither hex nor base64 (e.g. {short(bad[0])}); "
                       "replaced by stable hashes so the trace tree stays intact")
    return out, notices


def _attributes(rows: SpanRows, base: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Wide ``attr.*`` columns and ``http_status`` per ``_row``, plus notices."""
    fmt = rows.fmt
    spans = pl.DataFrame({"_row": rows.attr_row, "key": rows.attr_key, "value": rows.attr_val}, schema=_LONG_SCHEMA)
    res = pl.DataFrame({"_res": rows.res_idx, "key": rows.res_key, "value": rows.res_val},
                       schema={"_res": pl.Int64, "key": pl.String, "value": pl.String})
    res = base.select("_row", "_res").join(res, on="_res", how="inner").select("_row", "key", "value")
    long = pl.concat([res.with_columns(_prio=pl.lit(1)), spans.with_columns(_prio=pl.lit(2))])
    long = long.join(base.select("_row"), on="_row", how="semi")
    aliases = long.filter(pl.col("key").is_in(list(ALIASES))).with_columns(
        pl.col("key").replace_strict(ALIASES, return_dtype=pl.String), _prio=pl.lit(0))
    long = (pl.concat([aliases, long]).sort("_row", "key", "_prio", maintain_order=True)
            .unique(["_row", "key"], keep="last", maintain_order=True))
    http = (long.filter(pl.col("key").is_in(HTTP_STATUS_KEYS))
            .with_columns(code=pl.col("value").str.strip_chars().cast(pl.Int32, strict=False),
                          _order=pl.col("key").replace_strict(
                              {k: i for i, k in enumerate(HTTP_STATUS_KEYS)}, return_dtype=pl.Int32))
            .drop_nulls("code").sort("_row", "_order")
            .group_by("_row", maintain_order=True).agg(http_status=pl.col("code").first()))
    long = long.filter(~pl.col("key").is_in(CONSUMED_KEYS))
    notices = []
    too_long = long.filter(pl.col("value").str.len_chars() > MAX_VALUE_CHARS).height
    if too_long:
        notices.append(f"{fmt}: {too_long} attribute values longer than {MAX_VALUE_CHARS} characters were cut")
        long = long.with_columns(pl.col("value").str.slice(0, MAX_VALUE_CHARS))
    counts = long.group_by("key").len().sort(["len", "key"], descending=[True, False])
    if counts.height > MAX_ATTR_COLUMNS:
        dropped = counts.slice(MAX_ATTR_COLUMNS).get_column("key").to_list()
        notices.append(f"{fmt}: {counts.height} distinct attribute keys; kept the {MAX_ATTR_COLUMNS} most frequent, "
                       f"dropped {len(dropped)} (e.g. {short(dropped[0])})")
        long = long.filter(pl.col("key").is_in(counts.head(MAX_ATTR_COLUMNS).get_column("key").implode()))
    if long.height == 0:
        wide = pl.DataFrame(schema={"_row": pl.Int64})
    else:
        # Column names are the keys verbatim (they are data, never evaluated), prefixed with attr.
        wide = long.select("_row", (pl.lit(ATTR_PREFIX) + pl.col("key")).alias("key"), "value").pivot(
            on="key", index="_row", values="value")
    return wide, http, notices


def _split_shared_ids(frame: pl.DataFrame, fmt: str) -> tuple[pl.DataFrame, list[str]]:
    ids = ["trace_id", "span_id"]
    flags = frame.with_columns(
        _n=pl.len().over(ids),
        _client=(pl.col("kind") == "client").any().over(ids),
    ).with_columns(_moved=(pl.col("_n") > 1) & pl.col("_client") & (pl.col("kind") == "server"))
    moved = flags.filter(pl.col("_moved"))
    notices = []
    if moved.height:
        moved = moved.with_columns(_k=pl.int_range(pl.len()).over(ids))
        new_ids = [hash_id(f"{t}/{s}/server/{k}", 16) for t, s, k in moved.select(*ids, "_k").iter_rows()]
        remap = moved.select("trace_id", _old=pl.col("span_id"), _new=pl.Series(new_ids), _k="_k")
        first = remap.filter(pl.col("_k") == 0).select("trace_id", "_old", _child_parent="_new")
        flags = flags.with_columns(_k=pl.int_range(pl.len()).over(*ids, "_moved"))
        flags = flags.join(first, left_on=["trace_id", "parent_span_id"], right_on=["trace_id", "_old"], how="left",
                           maintain_order="left")
        flags = flags.join(remap.select("trace_id", "_old", "_k", "_new"), left_on=["trace_id", "span_id", "_k"],
                           right_on=["trace_id", "_old", "_k"], how="left", maintain_order="left")
        flags = flags.with_columns(
            parent_span_id=pl.when(pl.col("_moved")).then(pl.col("span_id"))
            .otherwise(pl.coalesce("_child_parent", "parent_span_id")),
            span_id=pl.when(pl.col("_moved")).then(pl.col("_new")).otherwise(pl.col("span_id")),
        )
        notices.append(f"{fmt}: {moved.height} server spans shared their client's span id (Zipkin style); "
                       "they got a derived span id with the client span as parent")
    out = flags.drop([c for c in flags.columns if c.startswith("_")])
    dupes = out.filter(pl.len().over(ids) > 1).height
    if dupes:
        notices.append(f"{fmt}: {dupes} spans share a span id with another span of the same trace")
    return out, notices
