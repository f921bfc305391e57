"""Frames of all five kinds for snapshot tests, generated here (no reference data needed).

Raw user ids, client IPs and query literals are recognisable so the redaction scans can look for them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl

from model.schemas import SCHEMAS
from model.validate import validate

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
REGIONS = ("eu-west", "us-east", "ap-south")
VERSIONS = ("5.1.0", "5.2.0")


def user_id(i: int) -> str:
    return f"usr-{i:05d}-zq"


def client_ip(i: int) -> str:
    return f"203.0.113.{i % 250 + 1}"


SECRET_QUERY = "SELECT * FROM accounts WHERE email = 'victim@example.com' AND balance > 123456 FOR UPDATE"


def spans(n_traces: int = 400, seed: int = 0) -> pl.DataFrame:
    """Root + one child span per trace; eu-west on 5.2.0 is slow."""
    idx = pl.int_range(0, n_traces, eager=True)
    rows = pl.DataFrame({"i": idx}).with_columns(
        trace_id=pl.format("{}", pl.col("i").cast(pl.String).str.zfill(8)).str.pad_start(32, "a"),
        region=pl.col("i").map_elements(lambda i: REGIONS[(i * 7 + seed) % 3], return_dtype=pl.String),
        version=pl.col("i").map_elements(lambda i: VERSIONS[(i * 3 + seed) % 2], return_dtype=pl.String),
        user=pl.col("i").map_elements(lambda i: user_id(i % 97), return_dtype=pl.String),
        ip=pl.col("i").map_elements(client_ip, return_dtype=pl.String),
    )
    slow = (pl.col("region") == "eu-west") & (pl.col("version") == "5.2.0")
    base = rows.with_columns(
        start=pl.lit(T0) + pl.duration(seconds=pl.col("i") * 3),
        duration_ms=pl.when(slow).then(4000.0 + pl.col("i")).otherwise(100.0 + pl.col("i") % 50).cast(pl.Float64),
        status=pl.when(pl.col("i") % 17 == 0).then(pl.lit("error")).otherwise(pl.lit("ok")),
    )
    root = base.select(
        "trace_id",
        span_id=pl.col("i").cast(pl.String).str.zfill(16),
        parent_span_id=pl.lit(None, dtype=pl.String),
        service=pl.lit("gateway"),
        operation=pl.lit("POST /checkout"),
        kind=pl.lit("server"),
        start=pl.col("start").cast(SCHEMAS["spans"]["start"]),
        duration_ms="duration_ms",
        status="status",
        http_status=pl.when(pl.col("status") == "error").then(503).otherwise(200).cast(pl.Int32),
        is_root=pl.lit(True),
        **{
            "attr.region": "region",
            "attr.client_version": "version",
            "attr.user_id": "user",
            "attr.http.client_ip": "ip",
            "attr.tenant": pl.format("tenant-{}", pl.col("i") % 5),
        },
    )
    child = root.with_columns(
        parent_span_id=pl.col("span_id"),
        span_id=pl.col("span_id").str.replace(r"^0", "f"),
        service=pl.lit("payments"),
        operation=pl.lit("charge"),
        kind=pl.lit("client"),
        duration_ms=pl.col("duration_ms") * 0.8,
        is_root=pl.lit(False),
    )
    return validate(pl.concat([root, child]), "spans")


def breakers() -> pl.DataFrame:
    ts = [T0 + timedelta(seconds=15 * i) for i in range(40)]
    return validate(
        pl.DataFrame(
            {
                "ts": ts,
                "source": ["prom"] * 40,
                "breaker": ["payments"] * 40,
                "instance": ["gw-1"] * 40,
                "state": ["closed"] * 20 + ["open"] * 5 + ["closed"] * 15,
                "failure_rate": [0.01 * i for i in range(40)],
                "slow_call_rate": [None] * 40,
                "calls": list(range(0, 4000, 100)),
                "not_permitted_calls": [0] * 40,
            },
            schema=SCHEMAS["breakers"],
        ),
        "breakers",
    )


def pools() -> pl.DataFrame:
    ts = [T0 + timedelta(seconds=15 * i) for i in range(40)]
    return validate(
        pl.DataFrame(
            {
                "ts": ts, "source": ["prom"] * 40, "pool": ["main"] * 40, "instance": ["db-1"] * 40,
                "active": [min(i, 20) for i in range(40)], "idle": [max(20 - i, 0) for i in range(40)],
                "pending": [max(i - 20, 0) for i in range(40)], "max": [20] * 40, "timeouts": list(range(40)),
                "acquire_p99_ms": [float(i * 10) for i in range(40)],
            },
            schema=SCHEMAS["pools"],
        ),
        "pools",
    )


def pool_holders() -> pl.DataFrame:
    return validate(
        pl.DataFrame(
            {
                "ts": [T0, T0], "source": ["pg", "pg"], "pid": [4242, 4243], "state": ["active", "idle in transaction"],
                "query": [SECRET_QUERY, "UPDATE carts SET total = 99.5 WHERE user_id = 'usr-00001-zq'"],
                "query_start": [T0, T0], "xact_start": [T0, T0], "wait_event_type": ["Lock", None],
                "application_name": ["checkout", "checkout"], "client_addr": ["198.51.100.77", "198.51.100.78"],
            },
            schema=SCHEMAS["pool_holders"],
        ),
        "pool_holders",
    )


def events() -> pl.DataFrame:
    return validate(
        pl.DataFrame(
            {
                "ts": [T0 + timedelta(minutes=5)], "kind": ["deploy"], "service": ["gateway"],
                "description": ["deploy 5.2.0; canary user usr-00003-zq from 203.0.113.4"],
                "attrs": [json.dumps({"user": user_id(3), "ip": client_ip(3)})],
            },
            schema=SCHEMAS["events"],
        ),
        "events",
    )


def all_frames(n_traces: int = 400) -> dict[str, pl.DataFrame]:
    return {
        "spans": spans(n_traces), "breakers": breakers(), "pools": pools(), "pool_holders": pool_holders(),
        "events": events(),
    }
