"""Read Nezha (FSE'23) span CSVs into our spans frame (bench only; the data stays in ../shared)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from model.schemas import SPANS


def spans_from_nezha_csv(path: Path) -> pl.DataFrame:
    """One Nezha minute file → spans frame. ``Duration`` is µs; service = pod name minus the two
    replica suffixes; the pod goes to ``attr.pod``."""
    raw = pl.read_csv(
        path,
        schema_overrides={
            "TraceID": pl.String, "SpanID": pl.String, "ParentID": pl.String, "PodName": pl.String,
            "OperationName": pl.String, "StartTimeUnixNano": pl.Int64, "EndTimeUnixNano": pl.Int64,
            "Duration": pl.Float64,
        },
    )
    is_root = pl.col("ParentID") == "root"
    frame = raw.select(
        trace_id=pl.col("TraceID").str.to_lowercase().str.zfill(32),
        span_id=pl.col("SpanID").str.to_lowercase().str.zfill(16),
        parent_span_id=pl.when(is_root).then(None).otherwise(pl.col("ParentID").str.to_lowercase().str.zfill(16)),
        service=pl.col("PodName").str.replace(r"-[^-]+-[^-]+$", ""),
        operation=pl.col("OperationName"),
        kind=pl.lit("unspecified"),
        start=pl.from_epoch(pl.col("StartTimeUnixNano") // 1000, time_unit="us").dt.replace_time_zone("UTC"),
        duration_ms=pl.col("Duration") / 1000.0,
        status=pl.lit("unset"),
        http_status=pl.lit(None, dtype=pl.Int32),
        is_root=is_root,
        **{"attr.pod": pl.col("PodName")},
    )
    return frame.cast({k: v for k, v in SPANS.items()})


def read_minutes(paths: list[Path]) -> pl.DataFrame:
    frames = [spans_from_nezha_csv(p) for p in paths if p.exists()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema=SPANS)
