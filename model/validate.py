"""Check a frame against its schema; a mismatch raises SchemaError with every problem listed."""

from __future__ import annotations

import polars as pl

from model.schemas import ATTR_PREFIX, BREAKER_STATES, SCHEMAS, SPAN_STATUSES


class SchemaError(ValueError):
    """A frame does not match its schema. The message names every offending column."""


def problems(frame: pl.DataFrame, kind: str) -> list[str]:
    """Every way ``frame`` differs from the schema of ``kind`` (empty when it conforms)."""
    if kind not in SCHEMAS:
        return [f"unknown frame kind {kind!r}; expected one of {sorted(SCHEMAS)}"]
    schema = SCHEMAS[kind]
    found: list[str] = []
    for name, dtype in schema.items():
        if name not in frame.schema:
            found.append(f"missing column {name!r} ({dtype})")
        elif _text(frame.schema[name]) != dtype:
            found.append(f"column {name!r} is {frame.schema[name]}, expected {dtype}")
    for name, dtype in frame.schema.items():
        if name in schema:
            continue
        if kind == "spans" and name.startswith(ATTR_PREFIX):
            if _text(dtype) != pl.String:
                found.append(f"attribute column {name!r} is {dtype}, expected String")
        else:
            found.append(f"unexpected column {name!r}")
    if found or frame.height == 0:
        return found
    if kind == "spans":
        found += _bad_values(frame, "status", SPAN_STATUSES)
        bad_ids = frame.filter(~pl.col("trace_id").str.contains(r"^[0-9a-f]{32}$")).height
        if bad_ids:
            found.append(f"{bad_ids} rows have a trace_id that is not 32 lowercase hex digits")
    if kind == "breakers":
        found += _bad_values(frame, "state", BREAKER_STATES)
    return found


def _text(dtype: pl.DataType) -> pl.DataType:
    """Categorical is how a String column is held in memory (model.encoding): the same column to the schema."""
    return pl.String() if dtype == pl.Categorical else dtype


def _bad_values(frame: pl.DataFrame, column: str, allowed: tuple[str, ...]) -> list[str]:
    bad = frame.filter(~pl.col(column).is_in(allowed) & pl.col(column).is_not_null())
    if bad.height == 0:
        return []
    sample = bad.get_column(column).unique().head(3).to_list()
    return [f"{bad.height} rows have {column} outside {allowed}: e.g. {sample}"]


def validate(frame: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Return ``frame`` unchanged when it matches the schema of ``kind``; raise SchemaError otherwise."""
    found = problems(frame, kind)
    if found:
        raise SchemaError(f"{kind} frame does not match schema: " + "; ".join(found))
    return frame
