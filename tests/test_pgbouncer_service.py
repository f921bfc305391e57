"""pgbouncer + PostgreSQL, for real: slow transactions hold the pool, a client waits, the connector says who."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl
import pytest

from config import SourceConfig
from connectors.base import Query
from connectors.postgres import PgBouncerConnector
from tests.services import TIMINGS, PgPool, pg_pool  # noqa: F401  (session fixture)

pytestmark = pytest.mark.services
SLEEP_S = 3.0


def _connector(pool: PgPool, redact: str = "normalise", with_pg: bool = True) -> PgBouncerConnector:
    options = {"admin_dsn": pool.admin_dsn(), "redact_queries": redact}
    if with_pg:
        options["postgres_dsn"] = pool.pg_dsn()
    return PgBouncerConnector(SourceConfig(name="bouncer", type="pgbouncer", options=options, timeout_s=5))


def _admin_rows(pool: PgPool, command: str) -> list[dict]:
    return _connector(pool)._admin([command])[0]


@pytest.fixture(scope="module")
def exhausted(pg_pool: PgPool) -> Iterator[dict]:  # noqa: F811
    """Two transactions sleep on both pooled connections; a third client waits; yields the holders' pids."""
    import psycopg

    pids: list[int] = []
    errors: list[BaseException] = []
    ready = threading.Barrier(3)

    def hold() -> None:
        try:
            with psycopg.connect(pg_pool.app_dsn(), prepare_threshold=None) as conn:
                pids.append(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
                ready.wait(timeout=10)
                conn.execute(f"SELECT pg_sleep({SLEEP_S}), 'card-4111' AS secret")
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)

    def wait() -> None:
        try:
            with psycopg.connect(pg_pool.app_dsn(), prepare_threshold=None) as conn:
                conn.execute("SELECT 1")
        except BaseException as exc:
            errors.append(exc)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    ready.wait(timeout=10)
    time.sleep(0.3)
    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(int(r["cl_waiting"]) > 0 for r in _admin_rows(pg_pool, "SHOW POOLS") if r["database"] == "app"):
            break
        time.sleep(0.05)
    started = datetime.now(UTC)
    yield {"pids": sorted(pids), "errors": errors, "started": started, "pool": pg_pool}
    for t in [*holders, waiter]:
        t.join(timeout=SLEEP_S * 3)


def test_pools_show_waiters_and_saturation(exhausted: dict) -> None:
    pool = exhausted["pool"]
    [result] = _connector(pool).query([Query("A", "pools", exhausted["started"], exhausted["started"])])
    assert result.error is None, result.error.describe()
    row = result.frame.filter(pl.col("pool") == "app/postgres").row(0, named=True)
    assert row["active"] == 2 and row["max"] == 2 and row["idle"] == 0
    assert row["pending"] >= 1
    assert row["acquire_p99_ms"] >= 0.0
    assert row["instance"] == f"127.0.0.1:{pool.bouncer_port}"
    print(f"pg_pool fixture start: {TIMINGS.get('pg_pool', 0):.2f}s")


def test_holders_are_the_sleeping_backends(exhausted: dict) -> None:
    pool = exhausted["pool"]
    [result] = _connector(pool).query([Query("A", "pool_holders", exhausted["started"], exhausted["started"])])
    assert result.error is None, result.error.describe()
    frame = result.frame
    assert sorted(frame["pid"].to_list()) == exhausted["pids"]
    assert set(frame["state"].to_list()) == {"active"}
    assert all("pg_sleep(?)" in q and "card-4111" not in q for q in frame["query"].to_list())
    pairs = zip(frame["ts"].to_list(), frame["query_start"].to_list(), strict=True)
    running_s = [(ts - qs).total_seconds() for ts, qs in pairs]
    assert all(0.0 < r < SLEEP_S + 1 for r in running_s)
    assert frame["application_name"].to_list()[0] is not None


def test_holders_query_text_kept_or_dropped(exhausted: dict) -> None:
    pool = exhausted["pool"]
    now = exhausted["started"]
    [kept] = _connector(pool, "keep").query([Query("A", "pool_holders", now, now)])
    [dropped] = _connector(pool, "drop").query([Query("A", "pool_holders", now, now)])
    assert all("'card-4111'" in q for q in kept.frame["query"].to_list())
    assert dropped.frame.height == 2 and dropped.frame["query"].null_count() == 2


def test_holders_without_postgres_have_pids_and_a_notice(exhausted: dict) -> None:
    pool = exhausted["pool"]
    now = exhausted["started"]
    [result] = _connector(pool, with_pg=False).query([Query("A", "pool_holders", now, now)])
    assert sorted(result.frame["pid"].to_list()) == exhausted["pids"]
    assert any("postgres_dsn" in n for n in result.notices)


def test_no_errors_in_the_load_threads(exhausted: dict) -> None:
    for t in threading.enumerate():
        if t is not threading.current_thread() and t.daemon is False and t.name.startswith("Thread"):
            t.join(timeout=SLEEP_S * 3)
    assert exhausted["errors"] == []


def test_unreachable_pgbouncer_is_unavailable() -> None:
    from tests.services import free_port

    dsn = f"host=127.0.0.1 port={free_port()} dbname=pgbouncer user=x"
    conn = PgBouncerConnector(SourceConfig(name="b", type="pgbouncer", timeout_s=2, options={"admin_dsn": dsn}))
    now = datetime.now(UTC)
    [result] = conn.query([Query("A", "pools", now, now)])
    assert type(result.error).__name__ == "SourceUnavailable"
    assert conn.check_health().status == "down"


def test_lock_blocker_outside_the_pool_is_reported(pg_pool: PgPool, exhausted: dict) -> None:  # noqa: F811
    """A session holding a lock (not even through pgbouncer) is listed next to the pooled backend it blocks."""
    import psycopg

    deadline = time.monotonic() + SLEEP_S * 3
    while time.monotonic() < deadline:  # wait until the sleepers of the other tests are gone
        rows = [r for r in _admin_rows(pg_pool, "SHOW POOLS") if r["database"] == "app"]
        if rows and int(rows[0]["sv_active"]) == 0 and int(rows[0]["cl_waiting"]) == 0:
            break
        time.sleep(0.1)
    with psycopg.connect(pg_pool.pg_dsn(), autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS ledger (id int)")
    blocker = psycopg.connect(pg_pool.pg_dsn())
    blocker.execute("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE")
    blocker_pid = blocker.info.backend_pid
    waiter_pid: list[int] = []

    def blocked() -> None:
        with psycopg.connect(pg_pool.app_dsn(), prepare_threshold=None) as conn:
            waiter_pid.append(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            conn.execute("SELECT count(*) FROM ledger")

    thread = threading.Thread(target=blocked)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        with psycopg.connect(pg_pool.pg_dsn(), autocommit=True) as probe:
            waiting = "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%ledger%'"
            while time.monotonic() < deadline and not probe.execute(waiting).fetchone():
                time.sleep(0.05)
        now = datetime.now(UTC)
        [result] = _connector(pg_pool, "keep").query([Query("A", "pool_holders", now, now)])
        frame = result.frame
        by_pid = {row["pid"]: row for row in frame.rows(named=True)}
        assert set(by_pid) == {waiter_pid[0], blocker_pid}
        assert by_pid[waiter_pid[0]]["wait_event_type"] == "Lock" and "ledger" in by_pid[waiter_pid[0]]["query"]
        assert by_pid[blocker_pid]["state"] == "idle in transaction" and "LOCK TABLE" in by_pid[blocker_pid]["query"]
    finally:
        blocker.rollback()
        blocker.close()
        thread.join(timeout=10)
