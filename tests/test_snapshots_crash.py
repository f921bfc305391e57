"""Crash consistency and concurrency of the snapshot store, with real processes and SIGKILL.

The crash loop runs 200 SIGKILLs (about a minute); FAULTLINE_FULL=1 makes it a 1000-kill soak. Set
FAULTLINE_CRASH_ITERATIONS to force a count.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import types
from collections import Counter
from pathlib import Path

import pytest

from snapshots.store import SnapshotStore
from tests import snapshot_workers as w

FULL = os.environ.get("FAULTLINE_FULL") == "1"
ITERATIONS = int(os.environ.get("FAULTLINE_CRASH_ITERATIONS") or (1000 if FULL else 200))


@pytest.fixture(autouse=True)
def _neutral_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest leaves ``sys.modules["__main__"]`` pointing at the last app script it ran, and every
    multiprocessing child would then re-run that script as ``__mp_main__`` (20x slower). A bare
    ``__main__`` makes children import only what they need."""
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))


def _check_all_complete(store: SnapshotStore) -> list[str]:
    infos = store.list()
    bad = [(i.id, i.error) for i in infos if i.status != "ok"]
    assert not bad, f"half-written snapshots visible after a crash: {bad}"
    return [i.id for i in infos]


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~40 s normally; generous for an overloaded CI machine
def test_sigkill_during_writes_leaves_only_complete_snapshots(tmp_path: Path) -> None:
    ctx = w.context()
    rng = random.Random(1234)
    store = SnapshotStore(tmp_path, redaction_key=w.KEY)
    snap = w.small_snapshot("crash")  # built once here, pickled to each writer
    current = ctx.RawValue("q", 0)  # no lock: a killed writer must not leave it held
    key = 0
    mid_write = 0
    leftovers: set[str] = set()
    started = time.monotonic()
    for _ in range(ITERATIONS):
        ready = ctx.Event()
        proc = ctx.Process(target=w.crash_writer, args=(str(tmp_path), key, current, ready, snap),
                           daemon=True)
        proc.start()
        assert ready.wait(120), "writer process did not start"
        time.sleep(rng.uniform(0.0, 0.08))
        proc.kill()  # SIGKILL: no cleanup handlers, no flush
        proc.join(10)
        assert proc.exitcode == -9
        key = current.value  # the next writer retries the key that may have been interrupted
        tmp_dir = tmp_path / ".tmp"
        now_left = set(os.listdir(tmp_dir)) if tmp_dir.is_dir() else set()
        mid_write += bool(now_left - leftovers)  # this kill interrupted a write in progress
        leftovers = now_left
        _check_all_complete(store)
    elapsed = time.monotonic() - started

    ids = _check_all_complete(store)
    assert ids, "the writers never completed a snapshot"
    for sid in ids:
        snap = store.open(sid)  # verifies every checksum and re-validates every frame
        assert snap.frames["spans"].height == 600
        assert snap.tables["cohort"].height == 3
    keys = Counter(json.loads((tmp_path / sid / "manifest.json").read_bytes())["idempotency"] for sid in ids)
    assert max(keys.values()) == 1, "a retried key produced two snapshots"
    assert mid_write > 0, "no kill landed in the middle of a write; the test proves nothing"
    print(f"\ncrash loop: {ITERATIONS} SIGKILLs in {elapsed:.1f}s, {len(ids)} complete snapshots, "
          f"{mid_write} kills left a partial write behind")


@pytest.mark.timeout(600)
def test_parallel_creates_same_key_make_one_snapshot(tmp_path: Path) -> None:
    ids = _run_parallel(tmp_path, ["same-request"] * 10)
    assert len(set(ids)) == 1
    assert [i.id for i in SnapshotStore(tmp_path).list()] == ids[:1]


@pytest.mark.timeout(600)
def test_parallel_creates_different_keys_make_one_each(tmp_path: Path) -> None:
    keys = [f"request-{i}" for i in range(8)] + ["dup", "dup", "dup"]
    ids = _run_parallel(tmp_path, keys)
    assert len(set(ids)) == 9
    store = SnapshotStore(tmp_path)
    listed = store.list()
    assert sorted(i.id for i in listed) == sorted(set(ids))
    assert all(i.status == "ok" for i in listed)
    key_file = (tmp_path / ".redaction_key")
    assert key_file.stat().st_mode & 0o777 == 0o600
    titles = {store.open(sid).manifest.title for sid in set(ids)}
    assert titles == {f"snap {k}" for k in set(keys)}


def _run_parallel(root: Path, keys: list[str]) -> list[str]:
    ctx = w.context()
    barrier = ctx.Barrier(len(keys))
    out = ctx.Queue()
    procs = [ctx.Process(target=w.parallel_create, args=(str(root), key, barrier, out)) for key in keys]
    for p in procs:
        p.start()
    ids_by_order = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    by_key: dict[str, set[str]] = {}
    # the queue does not say which key produced which id; map back through the manifests
    for sid in ids_by_order:
        title = SnapshotStore(root).open(sid).manifest.title
        by_key.setdefault(title.removeprefix("snap "), set()).add(sid)
    assert all(len(v) == 1 for v in by_key.values()), by_key
    return [next(iter(by_key[k])) for k in keys]
