"""The PostgreSQL snapshot store against a real server (tests.services.pg_pool): the directory store's contract,
across processes that share nothing but the database."""

from __future__ import annotations

import multiprocessing as mp
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal

from snapshots.audit import Actor, opened
from snapshots.bundle import CorruptSnapshotError
from snapshots.store import InvalidSnapshotId, SnapshotNotFound, open_store
from snapshots.store_pg import PgSnapshotStore, SnapshotStoreUnavailable
from tests.services import PgPool, pg_pool  # noqa: F401 (a fixture)
from tests.snapshot_workers import small_snapshot

pytestmark = pytest.mark.services


@pytest.fixture()
def pg_url(pg_pool: PgPool) -> Iterator[str]:  # noqa: F811
    """A fresh database per test, so tests share the server but no rows."""
    name = f"snap_{secrets.token_hex(4)}"
    admin = f"postgresql://postgres@127.0.0.1:{pg_pool.pg_port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:{pg_pool.pg_port}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_round_trip_idempotent_and_shared_redaction(pg_url: str) -> None:
    store = open_store(pg_url)
    assert isinstance(store, PgSnapshotStore)
    snap = small_snapshot("a", n_traces=50)
    sid = store.create(snap, "key-a")
    assert store.create(snap, "key-a") == sid  # double click
    assert store.find("key-a") == sid and store.find("key-b") is None
    assert len(sid) == 32 and int(sid, 16) >= 0
    got = store.open(sid)
    assert got.manifest.title == "snap a" and got.id == sid
    for kind in ("breakers", "pools", "events"):
        assert_frame_equal(got.frames[kind], store.redact(snap).frames[kind])
    users = got.frames["spans"].get_column("attr.user_id").drop_nulls()
    assert users.len() > 0 and users.str.starts_with("h:").all()
    # another "host" (a new store object, no key configured) hashes the same user the same way
    again = PgSnapshotStore(pg_url).open(PgSnapshotStore(pg_url).create(snap, "key-b"))
    assert_frame_equal(again.frames["spans"], got.frames["spans"])
    assert again.id != sid
    assert {(i.id, i.status) for i in store.list()} == {(sid, "ok"), (again.id, "ok")}


def test_ids_are_checked_before_any_query_and_missing_is_not_found(pg_url: str) -> None:
    store = PgSnapshotStore(pg_url)
    for bad in ("../x", "A" * 32, "' OR 1=1 --", 42):
        with pytest.raises(InvalidSnapshotId):
            store.open(bad)
    with pytest.raises(SnapshotNotFound):
        store.open("0" * 32)
    assert store.delete("0" * 32) is False


def test_list_survives_corrupt_entries(pg_url: str) -> None:
    store = PgSnapshotStore(pg_url)
    ok = store.create(small_snapshot("ok", n_traces=20), "ok")
    torn = store.create(small_snapshot("torn", n_traces=20), "torn")
    garbled = store.create(small_snapshot("garbled", n_traces=20), "garbled")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE faultline_snapshot_files SET data = substring(data from 1 for 10) "
                     "WHERE snapshot_id = %s AND path LIKE 'frames/spans%%'", (torn,))
        conn.execute("UPDATE faultline_snapshots SET manifest = 'not json' WHERE id = %s", (garbled,))
    by_id = {i.id: i for i in store.list()}
    assert by_id[ok].status == "ok"
    assert by_id[torn].status == "corrupt" and "truncated" in (by_id[torn].error or "")
    assert by_id[garbled].status == "corrupt"
    with pytest.raises(CorruptSnapshotError):
        store.open(garbled)
    assert store.open(ok).manifest.title == "snap ok"


def test_delete_opens_and_retention(pg_url: str) -> None:
    store = PgSnapshotStore(pg_url)
    old = store.create(small_snapshot("old", n_traces=10), "old")
    new = store.create(small_snapshot("new", n_traces=10), "new")
    opened(store, new, Actor("ana@example.com", "10.0.0.7"))
    opened(store, new, Actor(None, "10.0.0.8"))
    assert [(o.who, o.remote_addr) for o in store.opened_by(new)] == [(None, "10.0.0.8"),
                                                                       ("ana@example.com", "10.0.0.7")]
    with psycopg.connect(pg_url, autocommit=True) as conn:  # make "old" look 10 days old
        then = (datetime.now(UTC) - timedelta(days=10)).isoformat()
        conn.execute("UPDATE faultline_snapshots SET manifest = convert_to(jsonb_set(convert_from(manifest, 'UTF8')"
                     "::jsonb, '{created_at}', to_jsonb(%s::text))::text, 'UTF8') WHERE id = %s", (then, old))
    assert store.apply_retention(max_age_days=5) == [old]
    assert store.delete(new) is True and store.delete(new) is False
    assert store.opened_by(new) == [] and store.list() == []
    assert store.create(small_snapshot("new", n_traces=10), "new") != new  # the key was freed with it


def _writer(url: str, keys: list[str], barrier: Any, out: Any) -> None:
    store = PgSnapshotStore(url)
    snaps = {k: small_snapshot(k, n_traces=30) for k in keys}
    barrier.wait(timeout=120)
    for k in keys:
        out.put((k, store.create(snaps[k], k)))


def test_two_processes_writing_at_once(pg_url: str) -> None:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    # both write the same "double-clicked" keys and a few of their own, in a different order
    shared = [f"shared-{i}" for i in range(4)]
    plans = [shared + ["own-a-0", "own-a-1"], shared[::-1] + ["own-b-0"]]
    procs = [ctx.Process(target=_writer, args=(pg_url, plan, barrier, out)) for plan in plans]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in range(sum(len(p) for p in plans))]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ids_by_key: dict[str, set[str]] = {}
    for key, sid in results:
        ids_by_key.setdefault(key, set()).add(sid)
    assert all(len(ids) == 1 for ids in ids_by_key.values()), ids_by_key  # one snapshot per key
    listed = PgSnapshotStore(pg_url).list()
    assert len(listed) == len(ids_by_key) == 7
    assert {i.status for i in listed} == {"ok"}


def test_through_pgbouncer_transaction_pooling(pg_pool: PgPool) -> None:  # noqa: F811
    url = f"postgresql://postgres@127.0.0.1:{pg_pool.bouncer_port}/app"
    store = PgSnapshotStore(url)
    sid = store.create(small_snapshot("bouncer", n_traces=10), f"bouncer-{secrets.token_hex(4)}")
    try:
        assert store.open(sid).manifest.title == "snap bouncer"
    finally:
        assert store.delete(sid)


def test_unreachable_store_is_a_clear_error_without_the_password() -> None:
    store = open_store("postgresql://faultline:hunter2@127.0.0.1:1/nowhere")
    with pytest.raises(SnapshotStoreUnavailable) as info:
        store.list()
    assert isinstance(info.value, OSError)  # pages that catch OSError for the directory store catch this too
    assert "hunter2" not in str(info.value) and "hunter2" not in store.location
    assert "shared snapshot store" in str(info.value)


def test_frames_unchanged_by_polars_types(pg_url: str) -> None:
    store = PgSnapshotStore(pg_url, redaction_key=b"k" * 32)
    snap = small_snapshot("types", n_traces=25)
    got = store.open(store.create(snap, "types"))
    want = store.redact(snap)
    for kind, frame in want.frames.items():
        assert got.frames[kind].schema == frame.schema, kind
        assert got.frames[kind].height == frame.height
    assert isinstance(got.tables["cohort"], pl.DataFrame)
