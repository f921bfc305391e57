"""Crash-safe file-system steps for the snapshot store (POSIX: fsync, rename, flock)."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the timeout."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_tree_atomically(root: Path, name: str, files: dict[str, bytes]) -> None:
    """Make ``root/name`` appear with exactly ``files`` (relative paths), or not at all.

    Written under ``root/.tmp/``, every file and directory fsynced, then renamed in one step and the
    parent fsynced. A crash leaves at most a stray ``.tmp`` entry, which :func:`sweep` removes.
    """
    tmp_root = root / ".tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = tmp_root / f"{name}.{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        dirs = {tmp}
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(exist_ok=True)
            dirs.add(path.parent)
            with open(path, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(d)
        os.rename(tmp, root / name)
        fsync_dir(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def locked(path: Path, timeout_s: float) -> Iterator[int]:
    """An exclusive flock on ``path`` (created 0600); the kernel releases it if the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(str(path)) from None
                time.sleep(0.005)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def read_small(fd: int, limit: int = 64) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, limit).decode("ascii", "replace").strip()


def overwrite_small(fd: int, text: str) -> None:
    """Replace the content of a locked file in place (a torn write is detected by the reader's check)."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    if text:
        os.write(fd, text.encode("ascii"))
    os.fsync(fd)


def move_aside(path: Path, trash: Path) -> Path | None:
    """Atomically take ``path`` out of sight into ``trash``; None when it was already gone."""
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / f"{path.name}.{secrets.token_hex(4)}"
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    fsync_dir(path.parent)
    return target


def sweep(directory: Path, older_than_s: float) -> None:
    """Remove entries of ``directory`` not modified for ``older_than_s`` seconds (crashed writers' leftovers)."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        try:
            if time.time() - entry.stat().st_mtime > older_than_s:
                shutil.rmtree(entry, ignore_errors=True)
        except FileNotFoundError:
            pass
