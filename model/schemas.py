"""Frame schemas shared by every connector, analysis function and snapshot.

Each frame kind has one ``pl.Schema``. Connectors build frames with ``strict=True`` against
these and call :func:`model.validate.validate` before returning. Conventions:

* columns are snake_case with the unit in the name (``duration_ms``, ``acquire_p99_ms``);
* every time column is ``Datetime("us", "UTC")``;
* spans carry one ``String`` column per attribute, named ``attr.<key>`` (resource and span
  attributes flattened, the span's value wins). Those columns are open-ended: the schema lists
  only the fixed columns, and validation accepts any extra ``attr.*`` column of type ``String``.

``SCHEMA_VERSION`` is written into every snapshot manifest; bump it on any incompatible change
and teach ``snapshots`` to migrate the old version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from collections.abc import Mapping

    from polars._typing import PolarsDataType

SCHEMA_VERSION = 1

TS = pl.Datetime("us", "UTC")
ATTR_PREFIX = "attr."
MISSING = "(missing)"  # the value of a cohort attribute a request does not carry


def _schema(columns: Mapping[str, PolarsDataType]) -> pl.Schema:
    # One typed parameter, so a literal mixing dtype classes (pl.String) and instances (TS) type-checks.
    return pl.Schema(columns)


SPANS = _schema(
    {
        "trace_id": pl.String,  # 32 lowercase hex
        "span_id": pl.String,  # 16 lowercase hex
        "parent_span_id": pl.String,  # null for roots
        "service": pl.String,
        "operation": pl.String,
        "kind": pl.String,  # server|client|producer|consumer|internal|unspecified
        "start": TS,
        "duration_ms": pl.Float64,
        "status": pl.String,  # ok|error|unset
        "http_status": pl.Int32,
        "is_root": pl.Boolean,
    }
)

BREAKERS = _schema(
    {
        "ts": TS,
        "source": pl.String,
        "breaker": pl.String,
        "instance": pl.String,
        "state": pl.String,  # closed|open|half_open|forced_open|disabled
        "failure_rate": pl.Float64,  # 0..1, null when unknown
        "slow_call_rate": pl.Float64,  # 0..1, null when unknown
        "calls": pl.Int64,  # cumulative counter
        "not_permitted_calls": pl.Int64,  # cumulative counter
    }
)

POOLS = _schema(
    {
        "ts": TS,
        "source": pl.String,
        "pool": pl.String,
        "instance": pl.String,
        "active": pl.Int64,
        "idle": pl.Int64,
        "pending": pl.Int64,
        "max": pl.Int64,
        "timeouts": pl.Int64,  # cumulative counter
        "acquire_p99_ms": pl.Float64,
    }
)

POOL_HOLDERS = _schema(
    {
        "ts": TS,
        "source": pl.String,
        "pid": pl.Int64,
        "state": pl.String,
        "query": pl.String,  # redactable
        "query_start": TS,
        "xact_start": TS,
        "wait_event_type": pl.String,
        "application_name": pl.String,
        "client_addr": pl.String,
    }
)

EVENTS = _schema(
    {
        "ts": TS,
        "kind": pl.String,  # deploy|leader_election|flag_change|config_change|breaker_transition|...
        "service": pl.String,
        "description": pl.String,
        "attrs": pl.String,  # JSON object
    }
)

SCHEMAS: dict[str, pl.Schema] = {
    "spans": SPANS,
    "breakers": BREAKERS,
    "pools": POOLS,
    "pool_holders": POOL_HOLDERS,
    "events": EVENTS,
}

BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "disabled")
SPAN_STATUSES = ("ok", "error", "unset")


def empty_frame(kind: str) -> pl.DataFrame:
    """An empty frame with the full schema of ``kind``."""
    return pl.DataFrame(schema=SCHEMAS[kind])


def attr_columns(frame: pl.DataFrame) -> list[str]:
    """The ``attr.*`` columns of a spans frame, in frame order."""
    return [c for c in frame.columns if c.startswith(ATTR_PREFIX)]
