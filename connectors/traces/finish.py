"""Turn :class:`SpanRows` accumulators into a SPANS frame with polars expressions (no per-row Python).

A conversion is one or more batches: each batch of rows becomes a compact :class:`Part` (the fixed columns,
span attributes pivoted per span, resource attributes pivoted per resource) as soon as it is full, so a big
file never holds more than one batch as Python objects. :func:`finish_parts` then runs, in order (each step
depends on the previous):

1. ids: lower-case hex left-padded to 32/16, base64 decoded, anything else hashed (notice);
2. attributes: resource then span (span wins), ``http_status`` pulled out, caps, one ``attr.<key>`` column per
   key as the data names it (no aliases: the analysis resolves concepts by name);
3. exact duplicate spans dropped (Jaeger's dedupe adjuster does the same);
4. Zipkin-style shared ids: a SERVER span reusing its CLIENT's id gets a derived id and the client as parent,
   and the children of that id move under the server (Zipkin's SpanNode and Jaeger's SpanIDDeduper);
5. ``is_root`` = no parent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from connectors.traces.frame import (
    CONSUMED_KEYS,
    HTTP_STATUS_KEYS,
    MAX_ATTR_COLUMNS,
    MAX_ATTRS_PER_SPAN,
    MAX_KEY_CHARS,
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
_RES_PREFIX = "\x00res."  # resource attribute columns until they are merged with the span's (never a key's prefix)


@dataclass(frozen=True)
class Part:
    """One batch of converted rows: fixed columns by ``_row``, span attributes by ``_row``, resource ones by ``_res``."""

    base: pl.DataFrame
    span_attrs: pl.DataFrame
    res_attrs: pl.DataFrame


def finish(rows: SpanRows) -> Converted:
    """Build the SPANS frame (explicit schema) and the notices of a conversion held in one accumulator."""
    return finish_parts(rows.fmt, [to_part(rows)], rows.notices, rows.counts)


def to_part(rows: SpanRows, row_offset: int = 0, res_offset: int = 0) -> Part:
    """The accumulated rows as a :class:`Part` (``_row``/``_res`` shifted by the offsets); counts go to ``rows.counts``."""
    base = pl.DataFrame(rows.cols, schema=_BASE_SCHEMA).with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + row_offset).alias("_row"), pl.col("_res") + res_offset)
    spans = _wide(rows, pl.DataFrame({"_row": rows.attr_row, "key": rows.attr_key, "value": rows.attr_val},
                                     schema={"_row": pl.Int64, "key": pl.String, "value": pl.String}),
                  "_row", row_offset, ATTR_PREFIX)
    res = _wide(rows, pl.DataFrame({"_res": rows.res_idx, "key": rows.res_key, "value": rows.res_val},
                                   schema={"_res": pl.Int64, "key": pl.String, "value": pl.String}),
                "_res", res_offset, _RES_PREFIX)
    return Part(base, spans, res)


def _wide(rows: SpanRows, long: pl.DataFrame, index: str, offset: int, prefix: str) -> pl.DataFrame:
    """Checked, capped, de-duplicated (last wins) ``(index, key, value)`` rows pivoted to one column per key."""
    long = long.drop_nulls("value")
    bad_key = pl.col("key").is_null() | (pl.col("key") == "") | (pl.col("key").str.len_chars() > MAX_KEY_CHARS)
    bad = long.select(bad_key.sum()).item()
    if bad:
        rows.counts[f"attributes with an empty or over-{MAX_KEY_CHARS}-character key skipped"] += bad
        long = long.filter(~bad_key)
    over = pl.int_range(pl.len()).over(index) >= MAX_ATTRS_PER_SPAN
    capped = long.select(over.sum()).item() if long.height > MAX_ATTRS_PER_SPAN else 0
    if capped:
        rows.counts[f"attributes over the cap of {MAX_ATTRS_PER_SPAN} per span dropped"] += capped
        long = long.filter(~over)
    long = long.unique([index, "key"], keep="last", maintain_order=True)
    if long.height == 0:
        return pl.DataFrame(schema={index: pl.Int64})
    # Column names are the keys verbatim (they are data, never evaluated), prefixed.
    return long.select(pl.col(index) + offset, (pl.lit(prefix) + pl.col("key")).alias("key"), "value").pivot(
        on="key", index=index, values="value")


def finish_parts(fmt: str, parts: Sequence[Part], notices_in: Sequence[str] = (),
                 counts: Counter[str] | None = None) -> Converted:
    """Merge the parts of one conversion into the SPANS frame and its notices (steps 1-5 of the module docstring)."""
    notices = list(notices_in)
    count_notices = [f"{fmt}: {n} {what}" for what, n in sorted((counts or Counter()).items())]
    res_attrs = pl.concat([p.res_attrs for p in parts], how="diagonal") if parts else None
    parts = [p for p in parts if p.base.height]
    if not parts or res_attrs is None:
        return empty_converted(notices + count_notices)
    base = pl.concat([p.base for p in parts], rechunk=False)
    base, id_notices = _normalize_ids(base, fmt)
    notices += id_notices
    missing = base.filter(pl.col("trace_id").is_null() | pl.col("span_id").is_null()).height
    if missing:
        notices.append(f"{fmt}: dropped {missing} spans without a trace id or span id")
        base = base.filter(pl.col("trace_id").is_not_null() & pl.col("span_id").is_not_null())
    span_attrs = pl.concat([p.span_attrs for p in parts], how="diagonal")
    # Only the attribute columns are gathered into base's row order (joining base itself would copy it twice).
    by_span = base.select("_row").join(span_attrs, on="_row", how="left", maintain_order="left").drop("_row")
    by_res = base.select("_res").join(res_attrs, on="_res", how="left", maintain_order="left").drop("_res")
    del span_attrs, res_attrs
    frame, attr_notices = _attributes(base, by_span, by_res, fmt)
    del base, by_span, by_res
    notices += attr_notices
    attr_cols = sorted(c for c in frame.columns if c.startswith(ATTR_PREFIX))
    frame = frame.select(
        *[c for c in SPANS if c not in ("start", "http_status", "is_root")],
        pl.col("start_us").cast(TS).alias("start"),  # µs since the epoch -> Datetime(us, UTC)
        pl.col("http_status").cast(pl.Int32),
        *attr_cols,
    )
    # Steps 3 and 4 only concern spans whose (trace_id, span_id) repeats: usually none in OTLP, so skip the work.
    repeated = frame.select(pl.struct("trace_id", "span_id").is_duplicated()).to_series()
    if repeated.any():
        frame, dropped = _drop_exact_duplicates(frame, repeated)
        if dropped:
            notices.append(f"{fmt}: dropped {dropped} exact duplicate spans")
        frame, shared_notices = _split_shared_ids(frame, fmt)
        notices += shared_notices
    frame = frame.with_columns(is_root=pl.col("parent_span_id").is_null())
    frame = frame.select(*SPANS.names(), *attr_cols)
    return Converted(frame, tuple(notices + count_notices))


def _drop_exact_duplicates(frame: pl.DataFrame, repeated: pl.Series) -> tuple[pl.DataFrame, int]:
    """``frame.unique(maintain_order=True)``, comparing whole rows only where (trace_id, span_id) repeats.

    Hashing every whole row of a big frame costs about its size again in memory; exact duplicates always
    share their ids, so only those few rows need the full comparison.
    """
    indexed = frame.with_row_index("_i")
    candidates = indexed.filter(repeated).unique([c for c in frame.columns], keep="first", maintain_order=True)
    kept = pl.concat([indexed.filter(~repeated), candidates]).sort("_i").drop("_i")
    return kept, frame.height - kept.height


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


def _attributes(base: pl.DataFrame, by_span: pl.DataFrame, by_res: pl.DataFrame,
                fmt: str) -> tuple[pl.DataFrame, list[str]]:
    """Span attributes over resource ones, ``http_status`` pulled out, consumed keys dropped, caps; plus notices."""
    span_keys = {c.removeprefix(ATTR_PREFIX) for c in by_span.columns}
    res_keys = {c.removeprefix(_RES_PREFIX) for c in by_res.columns}

    def merged(key: str) -> pl.Series:
        cols = [frame[p + key] for p, keys, frame in ((ATTR_PREFIX, span_keys, by_span), (_RES_PREFIX, res_keys, by_res))
                if key in keys]
        if len(cols) == 2:
            return cols[0].zip_with(cols[0].is_not_null(), cols[1])
        return cols[0] if cols else pl.Series(values=[None] * base.height, dtype=pl.String)

    http = pl.DataFrame([merged(k).str.strip_chars().cast(pl.Int32, strict=False) for k in HTTP_STATUS_KEYS])
    keys = sorted((span_keys | res_keys) - set(CONSUMED_KEYS))
    frame = base.with_columns(http.select(pl.coalesce(http.columns).alias("http_status")).to_series(),
                              *[merged(k).alias(ATTR_PREFIX + k) for k in keys])
    notices: list[str] = []
    cols = [ATTR_PREFIX + k for k in keys]
    if not cols:
        return frame, notices
    stats = frame.select(pl.col(cols).count().name.suffix("\x00n"),
                         (pl.col(cols).str.len_chars() > MAX_VALUE_CHARS).sum().name.suffix("\x00long")).row(0, named=True)
    present = [c for c in cols if stats[c + "\x00n"]]
    frame = frame.drop([c for c in cols if not stats[c + "\x00n"]])
    too_long = sum(stats[c + "\x00long"] for c in present)
    if too_long:
        notices.append(f"{fmt}: {too_long} attribute values longer than {MAX_VALUE_CHARS} characters were cut")
        frame = frame.with_columns(pl.col(present).str.slice(0, MAX_VALUE_CHARS))
    if len(present) > MAX_ATTR_COLUMNS:
        ranked = sorted(present, key=lambda c: (-stats[c + "\x00n"], c))
        dropped = [c.removeprefix(ATTR_PREFIX) for c in ranked[MAX_ATTR_COLUMNS:]]
        notices.append(f"{fmt}: {len(present)} distinct attribute keys; kept the {MAX_ATTR_COLUMNS} most frequent, "
                       f"dropped {len(dropped)} (e.g. {short(dropped[0])})")
        frame = frame.drop(ranked[MAX_ATTR_COLUMNS:])
    return frame, notices


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
