"""Every connector's output validates; a wrong frame fails with a message naming the problem."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from model.schemas import SCHEMAS, empty_frame
from model.validate import SchemaError, problems, validate


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_empty_frames_validate(kind: str) -> None:
    assert validate(empty_frame(kind), kind).height == 0


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_demo_frames_validate(kind: str, demo_frames_small: dict[str, pl.DataFrame]) -> None:
    frame = demo_frames_small[kind]
    assert frame.height > 0
    validate(frame, kind)


def test_missing_column_is_named() -> None:
    frame = empty_frame("pools").drop("pending")
    with pytest.raises(SchemaError, match="missing column 'pending'"):
        validate(frame, "pools")


def test_wrong_dtype_is_named() -> None:
    frame = empty_frame("breakers").with_columns(pl.col("calls").cast(pl.Float64))
    with pytest.raises(SchemaError, match="column 'calls' is Float64, expected Int64"):
        validate(frame, "breakers")


def test_naive_timestamps_are_rejected() -> None:
    frame = empty_frame("events").with_columns(pl.col("ts").dt.replace_time_zone(None))
    assert any("'ts'" in p for p in problems(frame, "events"))


def test_attribute_columns_must_be_strings() -> None:
    frame = empty_frame("spans").with_columns(pl.lit(None, dtype=pl.Int64).alias("attr.retry_attempt"))
    with pytest.raises(SchemaError, match="attribute column 'attr.retry_attempt' is Int64"):
        validate(frame, "spans")


def test_unexpected_column_outside_spans_is_rejected() -> None:
    frame = empty_frame("pools").with_columns(pl.lit("x").alias("attr.host"))
    with pytest.raises(SchemaError, match="unexpected column 'attr.host'"):
        validate(frame, "pools")


def test_bad_values_are_counted() -> None:
    row = {"ts": datetime(2026, 1, 1, tzinfo=UTC), "source": "s", "breaker": "b", "instance": "i", "state": "OPEN",
           "failure_rate": 0.1, "slow_call_rate": 0.0, "calls": 1, "not_permitted_calls": 0}
    frame = pl.DataFrame([row], schema=SCHEMAS["breakers"])
    with pytest.raises(SchemaError, match="1 rows have state outside"):
        validate(frame, "breakers")


def test_trace_ids_must_be_padded_lowercase_hex(demo_frames_small: dict[str, pl.DataFrame]) -> None:
    spans = demo_frames_small["spans"].head(3).with_columns(pl.col("trace_id").str.to_uppercase())
    with pytest.raises(SchemaError, match="trace_id"):
        validate(spans, "spans")
