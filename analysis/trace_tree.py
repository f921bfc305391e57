"""Span trees: self time, depth/paths and the critical path (the bounded waterfall is in ``waterfall``).

All functions take a spans frame (``model.schemas.SPANS`` plus optional ``attr.*`` and outcome
columns). Spans whose parent is absent from the frame are treated as roots of their trace, so a
partially sampled or truncated trace still renders.
"""

from __future__ import annotations

import polars as pl

_KEY = ["trace_id", "span_id"]
PATH_SEP = " > "


def _with_interval(spans: pl.DataFrame) -> pl.DataFrame:
    start_us = pl.col("start").dt.epoch("us")
    return spans.with_columns(
        start_us=start_us,
        end_us=start_us + (pl.col("duration_ms") * 1000.0).round(0).cast(pl.Int64),
    )


def with_parent_present(spans: pl.DataFrame) -> pl.DataFrame:
    """Add ``has_parent``: the span's parent is in the frame (orphans count as roots)."""
    parents = spans.select(
        pl.col("trace_id"), pl.col("span_id").alias("parent_span_id"), pl.lit(True).alias("has_parent")
    ).unique(subset=["trace_id", "parent_span_id"])
    return spans.join(parents, on=["trace_id", "parent_span_id"], how="left").with_columns(
        pl.col("has_parent").fill_null(False)
    )


def with_keys(spans: pl.DataFrame) -> pl.DataFrame:
    """Add ``_sid`` / ``_pid``: 64-bit hashes of (trace_id, span_id) and (trace_id, parent_span_id),
    null for roots. Joins on them are several times faster than on the id strings (a collision
    among a million spans has odds of about 1 in 30 million)."""
    # each id hashed on its own and the two combined: no (trace, span) string is built per row (two columns of
    # them were the biggest allocation of every join on these keys); different seeds, so equal ids don't cancel
    trace = pl.col("trace_id").hash(7)
    return spans.with_columns(
        _sid=trace.xor(pl.col("span_id").hash(11)),
        _pid=pl.when(pl.col("parent_span_id").is_null()).then(None).otherwise(trace.xor(pl.col("parent_span_id").hash(11))),
    )


def with_parent_service(spans: pl.DataFrame) -> pl.DataFrame:
    """Add ``parent_service`` and ``parent_operation`` (null for roots and orphans)."""
    keyed = with_keys(spans)
    parents = keyed.select(
        pl.col("_sid").alias("_pid"),
        pl.col("service").alias("parent_service"),
        pl.col("operation").alias("parent_operation"),
    ).filter(pl.col("_pid").is_first_distinct())  # as unique(keep="first"), without its copy of every row
    # only the key goes through the join, and its answer (one row per span, in order) joins the spans as columns:
    # a join of the spans themselves would copy every column of them
    found = keyed.select("_pid").join(parents, on="_pid", how="left", maintain_order="left")
    return spans.with_columns(found.get_column("parent_service"), found.get_column("parent_operation"))


def self_time(spans: pl.DataFrame) -> pl.DataFrame:
    """Add ``self_ms``: duration minus the union of the children's intervals (clipped to the
    parent's interval), never below 0.

    Vectorised without per-group windows: children sorted by (parent, start) get times offset by
    ``parent ordinal × M`` (M > any parent's length), so one global running max of end times
    restarts by itself at each parent and ``end − max(start, previous max end)`` is each child's
    new contribution to the union."""
    iv = with_keys(_with_interval(spans))
    parents = iv.select(
        pl.col("_sid").alias("_pid"), pl.col("start_us").alias("p_start_us"), pl.col("end_us").alias("p_end_us")
    ).unique(subset=["_pid"])
    kids = (
        iv.select("_pid", "start_us", "end_us")
        .join(parents, on="_pid", how="inner")
        .with_columns(
            rel_start=pl.max_horizontal("start_us", "p_start_us") - pl.col("p_start_us"),
            rel_end=pl.min_horizontal("end_us", "p_end_us") - pl.col("p_start_us"),
        )
        .filter(pl.col("rel_end") > pl.col("rel_start"))
        .sort("_pid", "rel_start")
    )
    if kids.is_empty():
        return spans.with_columns(self_ms=pl.col("duration_ms").clip(lower_bound=0.0))
    span_us = int(kids.select(pl.col("rel_end").max()).item()) + 1
    groups = kids.select(pl.col("_pid").n_unique()).item()
    if groups * span_us < 2**62:
        offset = (pl.col("_pid") != pl.col("_pid").shift(1)).fill_null(True).cum_sum().cast(pl.Int64) * span_us
        pieces = kids.with_columns(v_start=pl.col("rel_start") + offset, v_end=pl.col("rel_end") + offset).with_columns(
            prev=pl.col("v_end").cum_max().shift(1).fill_null(0)
        )
        pieces = pieces.with_columns(piece_us=(pl.col("v_end") - pl.max_horizontal("v_start", "prev")).clip(0))
    else:  # absurd spans (years long): per-parent windows, slower but exact
        pieces = kids.with_columns(prev=pl.col("rel_end").cum_max().shift(1).over("_pid").fill_null(0)).with_columns(
            piece_us=(pl.col("rel_end") - pl.max_horizontal("rel_start", "prev")).clip(0)
        )
    covered = pieces.group_by("_pid").agg(covered_us=pl.col("piece_us").sum()).rename({"_pid": "_sid"})
    return (
        with_keys(spans)
        .join(covered, on="_sid", how="left")
        .with_columns(
            self_ms=(pl.col("duration_ms") - pl.col("covered_us").fill_null(0) / 1000.0).clip(lower_bound=0.0)
        )
        .drop("covered_us", "_sid", "_pid")
    )


def with_tree(spans: pl.DataFrame) -> pl.DataFrame:
    """Add ``depth`` (0 at roots), ``path`` (root→node ``service:operation`` chain),
    ``order_key`` (sorting by it gives depth-first order, children by start) and ``ancestors``
    (list of ancestor span ids). Iterates once per tree level, never per span."""
    base = with_parent_present(_with_interval(spans))
    trace_start = base.group_by("trace_id").agg(t0_us=pl.col("start_us").min())
    base = base.join(trace_start, on="trace_id").with_columns(
        node=pl.concat_str([pl.col("service").fill_null("?"), pl.col("operation").fill_null("?")], separator=":"),
        key_part=pl.concat_str(
            [(pl.col("start_us") - pl.col("t0_us")).cast(pl.String).str.zfill(15), pl.col("span_id")]
        ),
    )
    level = base.filter(~pl.col("has_parent")).select(
        *_KEY,
        depth=pl.lit(0, dtype=pl.Int32),
        path=pl.col("node"),
        order_key=pl.col("key_part"),
        ancestors=pl.lit([], dtype=pl.List(pl.String)),
    )
    done = [level]
    pending = base.filter(pl.col("has_parent")).select(*_KEY, "parent_span_id", "node", "key_part")
    while level.height and pending.height:
        nxt = pending.join(
            level.rename({"span_id": "parent_span_id"}), on=["trace_id", "parent_span_id"], how="inner"
        ).select(
            *_KEY,
            depth=pl.col("depth") + 1,
            path=pl.concat_str([pl.col("path"), pl.col("node")], separator=PATH_SEP),
            order_key=pl.concat_str([pl.col("order_key"), pl.col("key_part")], separator="/"),
            ancestors=pl.col("ancestors").list.concat(pl.concat_list(pl.col("parent_span_id"))),
        )
        pending = pending.join(nxt.select(_KEY), on=_KEY, how="anti")
        done.append(nxt)
        level = nxt
    # whatever is left sits in a parent cycle: show it at depth 0 rather than drop it
    if pending.height:
        done.append(
            pending.select(
                *_KEY,
                depth=pl.lit(0, dtype=pl.Int32),
                path=pl.col("node"),
                order_key=pl.col("key_part"),
                ancestors=pl.lit([], dtype=pl.List(pl.String)),
            )
        )
    tree = pl.concat(done, how="vertical_relaxed").unique(subset=_KEY, keep="first")
    return spans.join(tree, on=_KEY, how="left")


def critical_path(trace_spans: pl.DataFrame) -> pl.DataFrame:
    """Spans on the critical path of one trace (or of each trace in the frame).

    Backward walk (as Jaeger does it): inside a span, the child that ends last is critical, then the
    child that ended latest before that one started, and so on; recursively into each critical child.
    The predecessor of each child is found with one as-of join; only the walk itself follows pointers.
    Returns ``trace_id, span_id, service, operation, start, duration_ms, self_on_path_ms`` in start
    order; ``self_on_path_ms`` (time on the path not covered by a critical child, children clipped
    to their parent's window) sums to the root's duration.
    """
    iv = with_parent_present(_with_interval(trace_spans)).unique(subset=_KEY, keep="first")
    parents = iv.select(
        "trace_id", pl.col("span_id").alias("parent_span_id"), pl.col("start_us").alias("p_start_us"),
        pl.col("end_us").alias("p_end_us"),
    )
    kids = (
        iv.filter(pl.col("has_parent"))
        .select(*_KEY, "parent_span_id", "start_us", "end_us")
        .join(parents, on=["trace_id", "parent_span_id"])
        .with_columns(
            c_start=pl.max_horizontal("start_us", "p_start_us"), c_end=pl.min_horizontal("end_us", "p_end_us")
        )
        .filter(pl.col("c_end") >= pl.col("c_start"))
        .with_columns(grp=pl.concat_str(["trace_id", "parent_span_id"], separator="/"))
    )
    # predecessor: the sibling with the latest end at or before this child's start
    by_end = kids.select("grp", pred=pl.col("span_id"), pred_end=pl.col("c_end"), pred_start=pl.col("c_start"))
    by_end = by_end.sort("grp", "pred_end", "pred_start")
    kids = kids.sort("grp", "c_start").join_asof(
        by_end, left_on="c_start", right_on="pred_end", by="grp", strategy="backward", check_sortedness=False
    )
    # no self-loops: a zero-length span could match itself
    kids = kids.with_columns(pred=pl.when(pl.col("pred") == pl.col("span_id")).then(None).otherwise(pl.col("pred")))
    heads = kids.sort("c_end", "c_start").group_by("grp").agg(head=pl.col("span_id").last())
    pred_of = dict(zip(kids["grp"] + "|" + kids["span_id"], kids["pred"], strict=True))
    head_of = dict(zip(heads["grp"], heads["head"], strict=True))
    span_len = dict(zip(kids["grp"] + "|" + kids["span_id"], kids["c_end"] - kids["c_start"], strict=True))

    on_path: list[tuple[str, str]] = []
    own_us: dict[tuple[str, str], int] = {}  # length inside the parent's window
    child_us: dict[tuple[str, str], int] = {}
    roots = iv.filter(~pl.col("has_parent")).select(*_KEY, len_us=pl.col("end_us") - pl.col("start_us"))
    stack = [(t, s) for t, s, _ in roots.iter_rows()]
    own_us.update({(t, s): n for t, s, n in roots.iter_rows()})
    while stack:  # walks the critical path only: O(path length), not O(spans)
        trace_id, span_id = stack.pop()
        on_path.append((trace_id, span_id))
        grp = f"{trace_id}/{span_id}"
        cur = head_of.get(grp)
        seen: set[str] = set()
        while cur is not None and cur not in seen:
            seen.add(cur)
            length = span_len[f"{grp}|{cur}"]
            child_us[(trace_id, span_id)] = child_us.get((trace_id, span_id), 0) + length
            own_us[(trace_id, cur)] = length
            stack.append((trace_id, cur))
            cur = pred_of.get(f"{grp}|{cur}")
    if not on_path:
        return iv.select(*_KEY, "service", "operation", "start", "duration_ms").head(0).with_columns(
            self_on_path_ms=pl.lit(0.0)
        )
    path = pl.DataFrame(
        {
            "trace_id": [t for t, _ in on_path],
            "span_id": [s for _, s in on_path],
            "child_on_path_us": [child_us.get(k, 0) for k in on_path],
            "own_on_path_us": [own_us.get(k, 0) for k in on_path],
        },
        schema={"trace_id": pl.String, "span_id": pl.String, "child_on_path_us": pl.Int64, "own_on_path_us": pl.Int64},
    )
    return (
        path.join(iv, on=_KEY, how="left")
        .with_columns(
            self_on_path_ms=((pl.col("own_on_path_us") - pl.col("child_on_path_us")) / 1000.0).clip(lower_bound=0.0)
        )
        .sort("trace_id", "start_us", "end_us", descending=[False, False, True])
        .select(*_KEY, "service", "operation", "start", "duration_ms", "self_on_path_ms")
    )
