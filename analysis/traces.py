"""Trace analysis entry points: critical path, waterfall, cohort-vs-baseline diff, retry
amplification and id lookup. Tree helpers live in ``trace_tree``; the bounded waterfall in
``waterfall``; service-level views in ``service_map``.
"""

from __future__ import annotations

import re

import polars as pl

from analysis.outcome import is_error_expr
from analysis.trace_tree import PATH_SEP, critical_path, self_time, with_keys, with_tree
from analysis.waterfall import WATERFALL_COLUMNS, waterfall_rows
from model.schemas import ATTR_PREFIX, attr_columns

PEER_SERVICE, IDEMPOTENCY_KEY, RETRY_ATTEMPT = (ATTR_PREFIX + k for k in ("peer.service", "idempotency_key", "retry_attempt"))

__all__ = [
    "PATH_SEP", "WATERFALL_COLUMNS", "bad_vs_good_diff", "critical_path", "duration_text", "format_duration_ms",
    "lookup_ids", "readable_traces", "retry_amplification", "sample_traces", "search_traces", "self_time",
    "service_names", "trace_count", "trace_diff", "waterfall_rows", "with_tree",
]


def duration_text(duration_ms: pl.Expr) -> pl.Expr:
    """Durations as people read them: ``"0.42 ms"``, ``"412 ms"``, ``"16.1 s"``, ``"2 min 05 s"``; ``"–"``
    when unknown. Thresholds sit on the rounded value, so 999.7 ms reads "1.0 s", not "1000 ms"."""
    total_s = (duration_ms / 1000).round(0).cast(pl.Int64, strict=False)
    return (
        pl.when(duration_ms.is_null() | duration_ms.is_nan()).then(pl.lit("–"))
        .when(duration_ms == 0).then(pl.lit("0 ms"))
        .when(duration_ms < 0.995).then(pl.format("{} ms", duration_ms.round(2).cast(pl.String)))
        .when(duration_ms < 999.5).then(pl.format("{} ms", duration_ms.round(0).cast(pl.Int64, strict=False)))
        .when(duration_ms < 59_950).then(pl.format("{} s", (duration_ms / 1000).round(1).cast(pl.String)))
        .otherwise(pl.format("{} min {} s", total_s // 60, (total_s % 60).cast(pl.String).str.zfill(2)))
    )


def format_duration_ms(duration_ms: float | None) -> str:
    """One duration through :func:`duration_text` (one rule for tables, labels and exports)."""
    value = pl.select(duration_text(pl.lit(duration_ms, dtype=pl.Float64))).item()
    return str(value)


def readable_traces(traces: pl.DataFrame) -> pl.DataFrame:
    """A ``search_traces``/``lookup_ids`` result for people: start as ``HH:MM:SS`` UTC, the duration as
    text (:func:`duration_text`), same row order; other columns kept."""
    return traces.with_columns(
        pl.col("start").dt.strftime("%H:%M:%S").alias("start"),
        duration_text(pl.col("duration_ms").cast(pl.Float64)).alias("duration"),
    ).select(
        "trace_id", *[c for c in ("matched_by",) if c in traces.columns], "root_service", "root_operation", "start",
        "duration", "spans", *[c for c in ("is_bad",) if c in traces.columns],
    )


def _per_path(spans: pl.DataFrame, prefix: str) -> pl.DataFrame:
    n_traces = max(spans["trace_id"].n_unique(), 1)
    return (
        with_tree(self_time(spans))
        .group_by("path")
        .agg(
            service=pl.col("service").first(),
            operation=pl.col("operation").first(),
            depth=pl.col("depth").first(),
            calls=pl.len(),
            self_ms=pl.col("self_ms").sum(),
        )
        .select(
            "path", "service", "operation", "depth",
            (pl.col("calls") / n_traces).alias(f"{prefix}_calls_per_trace"),
            (pl.col("self_ms") / n_traces).alias(f"{prefix}_self_ms_per_trace"),
        )
    )


def trace_diff(selection_spans: pl.DataFrame, baseline_spans: pl.DataFrame) -> pl.DataFrame:
    """Where the extra time goes: both cohorts merged into service/operation trees keyed by
    ``path`` (root→node ``service:operation`` chain) with, per node and per trace, the call count
    and summed self time in each cohort and their differences. Sorted by ``extra_self_ms_per_trace``
    (selection − baseline), largest first; ``share_of_extra`` is the node's part of the total
    positive extra."""
    sel = _per_path(selection_spans, "sel")
    base = _per_path(baseline_spans, "base")
    merged = sel.join(base, on="path", how="full", coalesce=True, suffix="_b").with_columns(
        service=pl.coalesce("service", "service_b"),
        operation=pl.coalesce("operation", "operation_b"),
        depth=pl.coalesce("depth", "depth_b"),
    ).drop("service_b", "operation_b", "depth_b")
    merged = merged.with_columns(
        pl.col("sel_calls_per_trace", "base_calls_per_trace", "sel_self_ms_per_trace", "base_self_ms_per_trace")
        .fill_null(0.0)
    ).with_columns(
        calls_delta_per_trace=pl.col("sel_calls_per_trace") - pl.col("base_calls_per_trace"),
        extra_self_ms_per_trace=pl.col("sel_self_ms_per_trace") - pl.col("base_self_ms_per_trace"),
    )
    total_extra = pl.col("extra_self_ms_per_trace").clip(lower_bound=0.0).sum()
    return merged.with_columns(
        share_of_extra=pl.when(total_extra > 0)
        .then(pl.col("extra_self_ms_per_trace").clip(lower_bound=0.0) / total_extra)
        .otherwise(0.0)
    ).sort(["extra_self_ms_per_trace", "path"], descending=[True, False])


CLIENTS = "(clients)"  # caller of root spans: the users' clients


def _call_spans(spans: pl.DataFrame) -> pl.DataFrame:
    """Spans that are calls, with ``caller`` and ``callee``. A client-side span (kind ``client``, or
    kind unknown with all children in another service) is the call; otherwise a span whose parent
    lives in another service is; a root span is a call from ``(clients)``."""
    keyed = with_keys(spans)
    parents = keyed.select(pl.col("_sid").alias("_pid"), pl.col("service").alias("parent_service")).unique("_pid")
    kids = (
        keyed.filter(pl.col("_pid").is_not_null())
        .group_by(pl.col("_pid").alias("_sid"))
        .agg(child_services=pl.col("service").unique(maintain_order=True))
    )
    peer = pl.col(PEER_SERVICE) if PEER_SERVICE in spans.columns else pl.lit(None, pl.String)
    frame = keyed.join(parents, on="_pid", how="left").join(kids, on="_sid", how="left")
    remote_child = pl.col("child_services").list.set_difference(pl.concat_list(pl.col("service"))).list.first()
    unknown_kind = pl.col("kind").is_null() | pl.col("kind").is_in(["unspecified", "internal", ""])
    is_client = (pl.col("kind") == "client") | (
        unknown_kind
        & pl.col("parent_service").is_not_null()
        & pl.col("child_services").is_not_null()
        & ~pl.col("child_services").list.contains(pl.col("service"))
    )
    client_ids = frame.filter(is_client).select(pl.col("_sid").alias("_pid"), parent_is_client=pl.lit(True))
    frame = frame.join(client_ids.unique("_pid"), on="_pid", how="left")
    as_server = (
        ~is_client
        & pl.col("parent_service").is_not_null()
        & (pl.col("parent_service") != pl.col("service"))
        & pl.col("parent_is_client").is_null()
    )
    is_entry = pl.col("parent_service").is_null()
    return frame.with_columns(
        caller=pl.when(is_client)
        .then(pl.col("service"))
        .when(as_server)
        .then(pl.col("parent_service"))
        .when(is_entry)
        .then(pl.lit(CLIENTS)),
        callee=pl.when(is_client)
        .then(pl.coalesce(remote_child, peer, pl.col("operation")))
        .when(as_server | is_entry)
        .then(pl.col("service")),
    ).filter(pl.col("caller").is_not_null())


def retry_amplification(spans: pl.DataFrame, by: str = "1m") -> pl.DataFrame:
    """Attempts per logical request per edge (caller → callee) and time bucket.

    A call is a retry when ``attr.retry_attempt`` ≥ 1 (the number of earlier attempts; null or 0 is
    the original call), else when an earlier call under the same parent carried the same ``attr.idempotency_key``, else
    when it repeats the previous identical sibling call (same parent, callee and operation) and that
    one errored. Repeats without an error are fan-out (e.g. one lookup per item), not retries.
    Columns: ``bucket, caller, callee, calls, retries, logical_requests, attempts_per_request,
    retries_without_key, retries_without_idempotency`` (flag), sorted by ``attempts_per_request``.
    """
    calls = _call_spans(spans)
    key = pl.col(IDEMPOTENCY_KEY) if IDEMPOTENCY_KEY in calls.columns else pl.lit(None, pl.String)
    attempt = (
        pl.col(RETRY_ATTEMPT).cast(pl.String).cast(pl.Int64, strict=False)
        if RETRY_ATTEMPT in calls.columns
        else pl.lit(None, pl.Int64)
    )
    # identical sibling calls share _sib; sorted runs + shift replace per-group windows (much faster)
    parent_or_self = pl.coalesce("_pid", "_sid").cast(pl.String)  # roots: their own id, never shared
    sib = pl.concat_str([parent_or_self, "caller", "callee", "operation"], separator="|").hash(7)
    same = pl.col("_sib") == pl.col("_sib").shift(1)
    calls = (
        calls.with_columns(_key=key, _attempt=attempt, _err=is_error_expr().fill_null(False), _sib=sib)
        .sort("_sib", "_key", "start", nulls_last=True)
        .with_columns(_key_dup=same & (pl.col("_key") == pl.col("_key").shift(1)).fill_null(False))
        .sort("_sib", "start")
        .with_columns(_prev_err=same & pl.col("_err").shift(1).fill_null(False))
    )
    is_retry = (
        pl.when(pl.col("_attempt").is_not_null())
        .then(pl.col("_attempt") >= 1)
        .when(pl.col("_key").is_not_null())
        .then(pl.col("_key_dup"))
        .otherwise(pl.col("_prev_err").fill_null(False))
    )
    return (
        calls.with_columns(_retry=is_retry, bucket=pl.col("start").dt.truncate(by))
        .group_by("bucket", "caller", "callee")
        .agg(
            calls=pl.len(),
            retries=pl.col("_retry").sum(),
            retries_without_key=(pl.col("_retry") & pl.col("_key").is_null()).sum(),
        )
        .with_columns(logical_requests=pl.col("calls") - pl.col("retries"))
        .with_columns(
            attempts_per_request=pl.col("calls") / pl.max_horizontal(pl.col("logical_requests"), pl.lit(1)),
            retries_without_idempotency=pl.col("retries_without_key") > 0,
        )
        .sort(["attempts_per_request", "bucket", "caller", "callee"], descending=[True, False, False, False])
    )


_HEX = re.compile(r"[0-9a-f]{1,32}")
_CORRELATION_KEYS = ("correlation_id", "correlationid", "request_id", "requestid")


def _normalise_key(column: str) -> str:
    return re.sub(r"[-.]", "_", column.removeprefix(ATTR_PREFIX).lower())


def lookup_ids(spans: pl.DataFrame, needle: str) -> pl.DataFrame:
    """Traces matching ``needle`` as a trace id (case-insensitive; a 16-hex id matches its
    zero-padded 32-hex form and the low half of a 128-bit id; 6+ hex chars match as a prefix) or
    as a correlation id in any ``attr.*correlation_id`` / ``attr.*request_id`` column.
    One row per trace: ``trace_id, matched_by, root_service, root_operation, start, duration_ms,
    spans``, newest first."""
    text = needle.strip().lower()
    hexed = text.removeprefix("0x")
    conditions: list[tuple[str, pl.Expr]] = []
    if _HEX.fullmatch(hexed):
        by_id = pl.col("trace_id") == hexed.zfill(32)
        if len(hexed) >= 6:
            by_id = by_id | pl.col("trace_id").str.starts_with(hexed)
        if len(hexed) == 16:
            by_id = by_id | pl.col("trace_id").str.ends_with(hexed)
        conditions.append(("trace_id", by_id))
    for column in attr_columns(spans):
        if _normalise_key(column).endswith(_CORRELATION_KEYS) and text:
            conditions.append((column, pl.col(column).cast(pl.String).str.to_lowercase().str.strip_chars() == text))
    schema = {"trace_id": pl.String, "matched_by": pl.String}
    if not conditions:
        hits = pl.DataFrame(schema=schema)
    else:
        hits = pl.concat(
            [spans.filter(cond).select("trace_id", matched_by=pl.lit(name)) for name, cond in conditions]
        ).unique(subset=["trace_id"], keep="first", maintain_order=True)
    matched = spans.join(hits, on="trace_id", how="inner")
    # root = the is_root span, else the earliest span of a partial trace
    first = pl.col("is_root").not_().cast(pl.Int8)
    summary = matched.sort([first, "start"]).group_by("trace_id").agg(
        matched_by=pl.col("matched_by").first(),
        root_service=pl.col("service").first(),
        root_operation=pl.col("operation").first(),
        start=pl.col("start").min(),
        duration_ms=pl.col("duration_ms").first(),
        spans=pl.len(),
    )
    return summary.sort("start", descending=True)


def sample_traces(spans: pl.DataFrame, max_traces: int) -> pl.DataFrame:
    """All spans of at most ``max_traces`` traces, chosen by a hash of the trace id (deterministic,
    unbiased by time or outcome); the frame itself when it has no more traces than that."""
    ids = spans.select(pl.col("trace_id").unique())
    if ids.height <= max_traces:
        return spans
    keep = ids.sort(pl.col("trace_id").hash(11)).head(max_traces)
    return spans.join(keep, on="trace_id", how="semi")


def _and(cond: pl.Expr | None, more: pl.Expr) -> pl.Expr:
    return more if cond is None else cond & more


def search_traces(
    spans: pl.DataFrame,
    *,
    service: str | None = None,
    operation: str | None = None,
    attrs: tuple[tuple[str, str], ...] = (),
    min_duration_ms: float | None = None,
    outcome: str | None = None,
    limit: int = 200,
) -> pl.DataFrame:
    """Traces with a span matching every span condition (service exact; operation substring,
    case-insensitive; duration ≥; ``outcome`` one of ``bad|error|slow``) and, for each
    ``(key, value)`` in ``attrs``, some span with ``attr.<key> == value``. One row per trace, slowest first: ``trace_id, root_service,
    root_operation, start, duration_ms, spans, is_bad`` (the root's outcome, when known)."""
    cond: pl.Expr | None = None
    if service:
        cond = _and(cond, pl.col("service") == service)
    if operation:
        cond = _and(cond, pl.col("operation").cast(pl.String).str.to_lowercase().str.contains(operation.lower(), literal=True))
    if min_duration_ms is not None:
        cond = _and(cond, pl.col("duration_ms") >= min_duration_ms)
    if outcome in ("bad", "error", "slow"):
        column = f"is_{outcome}"
        cond = _and(cond, pl.col(column).fill_null(False) if column in spans.columns else is_error_expr())
    # no span condition: every trace matches, and the (million-row) id set and semi join are skipped
    hits = spans.filter(cond).select("trace_id").unique() if cond is not None else None
    for key, value in attrs:  # attributes match anywhere in the trace (they usually sit on the root)
        column = key if key.startswith(ATTR_PREFIX) else ATTR_PREFIX + key
        having = (spans.filter(pl.col(column) == value) if column in spans.columns else spans.head(0)).select("trace_id")
        hits = having.unique() if hits is None else hits.join(having, on="trace_id", how="semi")
    matched = spans if hits is None else spans.join(hits, on="trace_id", how="semi")
    matched = matched.select("trace_id", "is_root", "start", "service", "operation", "duration_ms",
                             *(c for c in ("is_bad", "status", "http_status") if c in spans.columns))
    heads = _trace_heads(matched)
    if heads.height > limit:  # every head as slow as the limit-th one, so ties at the cut are broken by id
        cut = heads.get_column("duration_ms").top_k(limit).min()
        heads = heads.filter(pl.col("duration_ms") >= cut) if cut is not None else heads
    top = heads.sort(["duration_ms", "trace_id"], descending=[True, False], nulls_last=True).head(limit)
    whole = (matched.filter(pl.col("trace_id").is_in(top.get_column("trace_id").implode()))
             .group_by("trace_id").agg(start=pl.col("start").min(), spans=pl.len()))
    bad = pl.col("is_bad") if "is_bad" in spans.columns else is_error_expr()
    return top.join(whole, on="trace_id", how="left", maintain_order="left").select(
        "trace_id", pl.col("service").alias("root_service"), pl.col("operation").alias("root_operation"),
        "start", "duration_ms", "spans", bad.alias("is_bad"))


def _trace_heads(spans: pl.DataFrame) -> pl.DataFrame:
    """One span per trace: its root (the earliest, if several), else its earliest span.

    Reads the roots, plus the earliest span of each trace without one (a time window cuts some traces'
    roots off), when no trace has several roots (the usual case): sorting and grouping every span by a
    string id costs most of a second, and a copy of them all, at a million requests.
    """
    roots = spans.filter(pl.col("is_root"))
    # by the ids' 64-bit hashes (as _distinct): a join on the strings held a hash table of a million of them
    rooted = roots.get_column("trace_id").hash()
    if rooted.n_unique() == roots.height:
        rootless = spans.filter(~pl.col("trace_id").hash().is_in(rooted.implode()))
        if rootless.height == 0:
            return roots
        return pl.concat([roots, rootless.sort("start").unique("trace_id", keep="first", maintain_order=True)])
    first = pl.col("is_root").not_().cast(pl.Int8)
    return spans.sort([first, "start"]).unique("trace_id", keep="first", maintain_order=True)


def _distinct(ids: pl.Series) -> int:
    """How many distinct ids: counted over 64-bit hashes, 4x faster than over the strings (a collision among a
    million ids has a chance of about 3e-8)."""
    return int(ids.hash().n_unique())


def trace_count(spans: pl.DataFrame) -> int:
    """How many distinct traces ``spans`` holds."""
    return _distinct(spans.get_column("trace_id"))


def service_names(spans: pl.DataFrame) -> list[str]:
    """The services of ``spans``, sorted (no null)."""
    return sorted(spans.get_column("service").unique().drop_nulls().to_list())


def bad_vs_good_diff(spans: pl.DataFrame, max_traces: int) -> tuple[pl.DataFrame | None, int, int]:
    """``(trace_diff of bad against good requests, bad requests, good requests)``, each side sampled to
    at most ``max_traces`` traces; the diff is None when either side is empty."""
    bad = spans.filter(pl.col("is_root") & pl.col("is_bad")).select("trace_id")
    good = spans.filter(pl.col("is_root") & ~pl.col("is_bad")).select("trace_id")
    if bad.height == 0 or good.height == 0:
        return None, bad.height, good.height
    selection = sample_traces(spans.join(bad, on="trace_id", how="semi"), max_traces)
    baseline = sample_traces(spans.join(good, on="trace_id", how="semi"), max_traces)
    return trace_diff(selection, baseline), bad.height, good.height
