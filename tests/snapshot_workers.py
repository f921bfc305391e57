"""Process entry points for the snapshot crash and concurrency tests (run in forkserver children)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

KEY = b"k" * 32  # fixed redaction key so children do not race on generating one (that race is tested separately)


def context() -> mp.context.BaseContext:
    """A forkserver context with polars and the snapshot code preloaded: a child starts in milliseconds."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["polars", "snapshots.store", "snapshots.bundle", "snapshots.capture", "tests.snapshot_data"]
    )
    return ctx


def small_snapshot(tag: str, n_traces: int = 300):
    from snapshots.capture import build_snapshot
    from tests import snapshot_data as sd

    frames = sd.all_frames(n_traces)
    cohort = frames["spans"].group_by("attr.region").len().sort("attr.region")
    return build_snapshot(
        frames, title=f"snap {tag}", page="overview", notes=f"notes {tag}", results={"cohort": cohort}
    )


def crash_writer(root: str, first_key: int, current, ready, snap) -> None:
    """Create snapshots with keys first_key, first_key+1, ... forever; the parent SIGKILLs us."""
    from snapshots.bundle import to_files
    from snapshots.store import SnapshotStore

    store = SnapshotStore(Path(root), redaction_key=KEY)
    to_files(store.redact(snap))  # warm up (regex compilation, thread pool) so kills land in real writes
    ready.set()
    i = first_key
    while True:
        current.value = i
        store.create(snap, f"key-{i}")
        i += 1


def parallel_create(root: str, key: str, barrier, out) -> None:
    """Wait for every sibling, then create one snapshot with ``key``; report the id."""
    from snapshots.store import SnapshotStore

    store = SnapshotStore(Path(root))  # generated key file: exercises that race too
    snap = small_snapshot(key, n_traces=100)
    barrier.wait(timeout=240)  # generous: CI machines can be heavily loaded
    out.put(store.create(snap, key))
