"""Capturing the current view as a Snapshot: conform and validate frames, sample spans, classify results.

Results given by a page are stored by type: polars DataFrames as tables (Parquet), plotly figures
as plotly JSON, anything else through :func:`jsonable` into the manifest.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any

import polars as pl

from model.encoding import decoded
from model.schemas import ATTR_PREFIX, SCHEMAS
from model.validate import validate
from snapshots.bundle import Manifest, Snapshot, SnapshotError

DEFAULT_SPAN_BOUND = 250_000
SAMPLING_SEED = 20260601


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: datetimes to ISO strings, dataclasses and tuples to dicts/lists, NaN to null."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, pl.Series):
        return jsonable(value.to_list())
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return jsonable(value.item())
    return str(value)


def conform(frame: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Keep the schema columns (plus attr.* for spans) in schema order; drop derived ones (is_bad, ...)."""
    fixed = list(SCHEMAS[kind])
    extra = [c for c in frame.columns if kind == "spans" and c.startswith(ATTR_PREFIX)]
    return decoded(frame.select([c for c in fixed if c in frame.columns] + extra))


def sample_spans(spans: pl.DataFrame, bound: int,
                 preferred: pl.DataFrame | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """At most ``bound`` spans, whole traces only. When every root span fits, all roots are kept (so
    request-level figures — blast radius, cohorts — stay exact) and the rest of the budget goes to the
    child spans of whole traces; otherwise whole traces are sampled. Traces in ``preferred`` (a frame
    with a ``trace_id`` column: the traces behind the view) go first; within each group traces are
    chosen by a seeded hash of trace_id, so the same view samples the same way."""
    total = spans.height
    if total <= bound:
        return spans, {"applied": False, "bound": bound, "rows_before": total, "rows_kept": total}
    roots = spans.filter(pl.col("is_root"))
    keep_roots = roots.height <= bound
    pool = spans.filter(~pl.col("is_root")) if keep_roots else spans
    budget = bound - roots.height if keep_roots else bound
    wanted = preferred.get_column("trace_id") if preferred is not None else pl.Series("trace_id", [], pl.String)
    per_trace = (
        pool.group_by("trace_id")
        .len()
        .with_columns(h=pl.col("trace_id").hash(seed=SAMPLING_SEED),
                      later=~pl.col("trace_id").is_in(wanted.implode()))
        .sort("later", "h", "trace_id")
        .filter(pl.col("len").cum_sum() <= budget)
    )
    chosen = pool.join(per_trace.select("trace_id"), on="trace_id", how="semi")
    kept = pl.concat([roots, chosen]) if keep_roots else chosen
    method = ("every root span (request) kept; child spans of whole traces" if keep_roots else "whole traces")
    info = {
        "applied": True,
        "bound": bound,
        "method": f"{method}, the view's traces first, then by a seeded hash of trace_id, until the bound",
        "all_requests_kept": keep_roots,
        "rows_before": total,
        "rows_kept": kept.height,
        "traces_before": spans.get_column("trace_id").n_unique(),
        "traces_kept": per_trace.height,
    }
    return kept, info


def build_snapshot(
    frames: Mapping[str, pl.DataFrame],
    *,
    title: str,
    page: str = "",
    notes: str = "",
    author: str | None = None,
    filter: Any = None,
    page_state: Mapping[str, Any] | None = None,
    queries: list[Any] | None = None,
    notices: list[str] | None = None,
    results: Mapping[str, Any] | None = None,
    span_bound: int = DEFAULT_SPAN_BOUND,
    created_at: datetime | None = None,
    preferred_traces: pl.DataFrame | None = None,
) -> Snapshot:
    """Assemble a snapshot of the current view. Frames are conformed, validated and spans sampled.

    ``results`` values may be polars DataFrames (stored as tables), plotly figures (stored as
    plotly JSON) or anything :func:`jsonable` accepts (stored in the manifest). ``preferred_traces``
    (a ``trace_id`` frame) are kept first when spans must be sampled.
    """
    kept: dict[str, pl.DataFrame] = {}
    sampling: dict[str, Any] = {}
    for kind, frame in frames.items():
        if kind not in SCHEMAS:
            raise SnapshotError(f"unknown frame kind {kind!r}; expected one of {sorted(SCHEMAS)}")
        frame = validate(conform(frame, kind), kind)
        if kind == "spans":
            frame, sampling["spans"] = sample_spans(frame, span_bound, preferred_traces)
        kept[kind] = frame
    tables, figures, values = {}, {}, {}
    for name, value in (results or {}).items():
        if isinstance(value, pl.LazyFrame):
            value = value.collect()
        if isinstance(value, pl.DataFrame):
            tables[str(name)] = value
        elif hasattr(value, "to_plotly_json") and hasattr(value, "to_json"):
            figures[str(name)] = json.loads(value.to_json())
        else:
            values[str(name)] = jsonable(value)
    filt = jsonable(filter) if filter is not None else {}
    start, end = _time_range(filt, kept.get("spans"))
    manifest = Manifest(
        title=title.strip() or "Untitled snapshot",
        created_at=(created_at or datetime.now(timezone.utc)).isoformat(),
        page=page,
        notes=notes,
        author=author,
        filter=filt if isinstance(filt, dict) else {"value": filt},
        page_state=jsonable(dict(page_state or {})),
        time_range=(start, end),
        queries=[jsonable(q) for q in (queries or [])],
        notices=[str(n) for n in (notices or [])],
        values=values,
        sampling=sampling,
    )
    return Snapshot(manifest=manifest, frames=kept, tables=tables, figures=figures)


def _time_range(filt: Any, spans: pl.DataFrame | None) -> tuple[str | None, str | None]:
    if isinstance(filt, dict) and (filt.get("start") or filt.get("end")):
        return filt.get("start"), filt.get("end")
    if spans is None or spans.height == 0:
        return None, None
    lo, hi = spans.get_column("start").min(), spans.get_column("start").max()
    return jsonable(lo), jsonable(hi)
