"""analysis.pools: saturation, saturated periods and the exhaustion chain, with known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analysis.pools import exhaustion_chain, saturation, saturation_periods
from model.schemas import POOL_HOLDERS, POOLS
from model.validate import validate

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def pools(
    active: list[int], pending: list[int], timeouts: list[int], *, max_: int | None = 10, source: str = "pgb"
) -> pl.DataFrame:
    n = len(active)
    return validate(pl.DataFrame({
        "ts": [at(i * 10) for i in range(n)], "source": [source] * n, "pool": ["app/postgres"] * n,
        "instance": ["pgb:6432"] * n, "active": active, "idle": [(max_ or 10) - a for a in active], "pending": pending,
        "max": [max_] * n, "timeouts": timeouts,
        "acquire_p99_ms": [float(p * 100) for p in pending],
    }, schema=POOLS), "pools")


INCIDENT = dict(active=[3, 10, 10, 3], pending=[0, 4, 6, 0], timeouts=[0, 0, 3, 3])


def test_saturation_per_sample() -> None:
    sat = saturation(pools(**INCIDENT))
    assert sat["saturation"].to_list() == [0.3, 1.0, 1.0, 0.3]
    assert sat["saturated"].to_list() == [False, True, True, False]
    assert sat["waiters"].to_list() == [0, 4, 6, 0] and sat["timeouts_delta"].to_list() == [0, 0, 3, 0]


def test_waiters_without_known_max_still_saturate() -> None:
    frame = pools(active=[2, 2], pending=[0, 3], timeouts=[0, 0], max_=None)
    frame = frame.with_columns(pl.lit(0, pl.Int64).alias("idle"))
    sat = saturation(frame)
    assert sat["saturation"].to_list() == [None, None] and sat["saturated"].to_list() == [False, True]


def test_saturation_periods() -> None:
    [row] = saturation_periods(pools(**INCIDENT)).rows(named=True)
    fields = (row["start"], row["end"], row["peak_waiters"], row["timeouts"], row["peak_acquire_ms"])
    assert fields == (at(10), at(30), 6, 3, 600.0)


def holders(rows: list[tuple[float, int, float, float, str]], source: str = "pgb") -> pl.DataFrame:
    return validate(pl.DataFrame([
        {"ts": at(ts), "source": source, "pid": pid, "state": "active", "query": query, "query_start": at(qs),
         "xact_start": at(xs), "wait_event_type": None, "application_name": "api", "client_addr": "10.0.0.1"}
        for ts, pid, qs, xs, query in rows
    ], schema=POOL_HOLDERS), "pool_holders")


def spans() -> pl.DataFrame:
    rows = []

    def trace(tid: int, region: str, user: str, child_op: str, child_start: float, child_ms: float) -> None:
        trace_id = f"{tid:032x}"
        root, child = f"{tid:016x}", f"{tid + 100:016x}"
        root_start = at(child_start - 1)
        rows.append((trace_id, root, None, "api", "GET /orders", root_start, child_ms + 100, True, region, user))
        rows.append((trace_id, child, root, "api", child_op, at(child_start), child_ms, False, None, None))

    trace(1, "eu", "u1", "HikariPool.getConnection", 15, 900)   # stuck acquiring
    trace(2, "eu", "u2", "SELECT orders", 12, 2000)             # slow db call in the period
    trace(3, "us", "u3", "SELECT orders", 15, 20)               # fast: not stuck
    trace(4, "us", "u4", "HikariPool.getConnection", 100, 5)    # acquire outside the period
    schema = {"trace_id": pl.String, "span_id": pl.String, "parent_span_id": pl.String, "service": pl.String,
              "operation": pl.String, "start": pl.Datetime("us", "UTC"), "duration_ms": pl.Float64,
              "is_root": pl.Boolean, "attr.region": pl.String, "attr.user_id": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_exhaustion_chain_links_waiters_to_holders_spans_and_users() -> None:
    held = pl.concat([
        holders([(10, 101, -30, -40, "select pg_sleep(?)"), (20, 101, -30, -40, "select pg_sleep(?)"),
                 (20, 102, 5, 5, "update t"), (200, 999, 190, 190, "select 1")]),
        holders([(20, 555, 0, 0, "other")], source="elsewhere"),
    ])
    chain = exhaustion_chain(pools(**INCIDENT), held, spans())
    assert chain.found and chain.periods.height == 1
    assert chain.holders["pid"].to_list() == [101, 102]  # longest transaction first; other source and later pid dropped
    top = chain.holders.row(0, named=True)
    assert top["xact_ms"] == pytest.approx(60_000.0) and top["running_ms"] == pytest.approx(50_000.0)
    assert top["ts"] == at(20)
    assert sorted(chain.stuck_spans["operation"].to_list()) == ["HikariPool.getConnection", "SELECT orders"]
    assert chain.stuck_spans.filter(pl.col("acquire"))["trace_id"].to_list() == [f"{1:032x}"]
    region = chain.cohort.filter(pl.col("attribute") == "region").row(0, named=True)
    fields = (region["value"], region["requests"], region["share"], region["baseline_share"], region["lift"])
    assert fields == ("eu", 2, 1.0, 0.5, 2.0)
    assert chain.cohort.filter(pl.col("attribute") == "user_id").height == 0  # ids are counted, not offered as cohorts
    assert (chain.affected_requests, chain.affected_users) == (2, 2)


def test_holders_from_another_source_are_used_when_none_match() -> None:
    chain = exhaustion_chain(pools(**INCIDENT, source="prom"), holders([(20, 7, 0, 0, "q")]), spans())
    assert chain.holders["pid"].to_list() == [7]


def test_no_saturation_no_chain() -> None:
    chain = exhaustion_chain(pools([3, 3], [0, 0], [0, 0]), holders([(0, 1, 0, 0, "q")]), spans())
    assert not chain.found and chain.holders.height == 0 and chain.stuck_spans.height == 0 and chain.cohort.height == 0
