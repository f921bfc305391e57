"""Hand-built span frames for the trace analysis tests (times in ms from a fixed epoch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from model.schemas import SPANS
from model.validate import validate

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def span(
    trace: str,
    span_id: str,
    parent: str | None,
    service: str,
    operation: str,
    start_ms: float,
    duration_ms: float,
    *,
    status: str = "ok",
    kind: str = "server",
    http_status: int | None = None,
    **attrs: str | None,
) -> dict[str, Any]:
    """One span row; ``trace``/``span_id`` are zero-padded to 32/16 hex; attrs become ``attr.<key>``
    (use ``__`` for ``.`` and ``_dash_`` for ``-`` in keyword names)."""
    row: dict[str, Any] = {
        "trace_id": trace.zfill(32),
        "span_id": span_id.zfill(16),
        "parent_span_id": parent.zfill(16) if parent else None,
        "service": service,
        "operation": operation,
        "kind": kind,
        "start": T0 + timedelta(milliseconds=start_ms),
        "duration_ms": float(duration_ms),
        "status": status,
        "http_status": http_status,
        "is_root": parent is None,
    }
    for key, value in attrs.items():
        row["attr." + key.replace("__", ".").replace("_dash_", "-")] = value
    return row


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    attr_keys = sorted({k for r in rows for k in r if k.startswith("attr.")})
    schema = dict(SPANS) | {k: pl.String for k in attr_keys}
    out = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")
    validate(out, "spans")
    return out
