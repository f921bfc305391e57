"""A directory of snapshots: atomic, idempotent, unguessable ids, redacted on the way in.

Layout under ``root`` (``$FAULTLINE_SNAPSHOT_DIR``, default ``./snapshots-data``)::

    <id>/manifest.json, frames/, tables/, figures/   one complete snapshot (id = 128 random bits, hex)
    .keys/<sha256 of idempotency key>                the id made for that key; flock'ed while creating
    .tmp/<id>.<nonce>/                               a snapshot being written (renamed into place when done)
    .trash/                                          snapshots being deleted
    .redaction_key                                   0600, generated unless a key is given

A snapshot is written under ``.tmp``, every file and directory fsynced, then renamed to ``<id>``
in one step, so a crash leaves either nothing or a complete snapshot. The idempotency key file is
written (under an exclusive flock, released by the kernel if the process dies) *before* the data,
so a retry after a crash reuses the same id instead of making a second snapshot.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from model.validate import validate
from snapshots.archive import ImportLimits, is_safe_member, pack, unpack
from snapshots.audit import MAX_OPENS_LISTED, OpenRecord, now_iso, open_record
from snapshots.bundle import (
    MANIFEST,
    CorruptSnapshotError,
    Snapshot,
    SnapshotError,
    SnapshotVersionError,
    from_files,
    migrate,
    read_manifest,
    to_files,
)
from snapshots.capture import jsonable
from snapshots.fsio import LockTimeout, locked, move_aside, overwrite_small, read_small, sweep, write_tree_atomically
from snapshots.redact import RedactionConfig, Redactor, load_or_create_key

DEFAULT_DIR = "snapshots-data"  # ./snapshots is the Python package itself
ENV_DIR = "FAULTLINE_SNAPSHOT_DIR"
ENV_STORE = "FAULTLINE_SNAPSHOT_STORE"  # postgresql://… for a store shared across hosts; else a directory
_ID_RE = re.compile(r"[0-9a-f]{32}")
_STALE_TMP_S = 3600.0


class InvalidSnapshotId(SnapshotError):
    """The id is not a snapshot id (wrong shape); nothing on disk was touched."""


class SnapshotNotFound(SnapshotError):
    """No snapshot with this id (never made, deleted, or removed by retention)."""


@dataclass(frozen=True)
class SnapshotInfo:
    """One row of the snapshot list; ``status`` is ``ok``, ``corrupt`` or ``unsupported``."""

    id: str
    title: str
    created_at: str | None
    author: str | None
    page: str
    size_bytes: int
    status: str
    error: str | None = None


def default_root() -> Path:
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def new_id() -> str:
    return secrets.token_hex(16)  # 128 random bits


def validate_id(raw: object) -> str:
    """Return ``raw`` when it is a well-formed id; raise InvalidSnapshotId otherwise (before any I/O)."""
    if not isinstance(raw, str) or _ID_RE.fullmatch(raw) is None:
        shown = repr(raw)[:48]
        raise InvalidSnapshotId(f"{shown} is not a snapshot id (expected 32 lowercase hex characters)")
    return raw


def idempotency_key(*parts: object) -> str:
    """A stable key from the view state and the request (any JSON-able parts)."""
    blob = json.dumps(jsonable(list(parts)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class SnapshotStore:
    """Create / open / list / delete snapshots in one directory. Safe across threads and processes."""

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        redaction: RedactionConfig = RedactionConfig(),
        redaction_key: bytes | str | None = None,
        secret_values: Iterable[str] = (),
        lock_timeout_s: float = 30.0,
    ) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.redaction = redaction
        self._key = redaction_key.encode("utf-8") if isinstance(redaction_key, str) else redaction_key
        self._secrets = tuple(secret_values)
        self.lock_timeout_s = lock_timeout_s

    # --- create -------------------------------------------------------------------------------
    def create(self, snapshot: Snapshot, idempotency_key: str) -> str:
        """Redact and store ``snapshot``; the same key always yields the same id (one snapshot)."""
        key_hash = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
        redacted = self.redact(snapshot)
        for kind, frame in redacted.frames.items():
            validate(frame, kind)
        with self._key_file(key_hash) as fd:
            existing = _read_key_file(fd)
            if existing and (self.root / existing).is_dir():
                return existing
            sid = existing or new_id()
            if not existing:
                _write_key_file(fd, sid)
            manifest = dataclasses.replace(redacted.manifest, snapshot_id=sid, idempotency=key_hash)
            write_tree_atomically(self.root, sid, to_files(dataclasses.replace(redacted, manifest=manifest)))
            return sid

    def find(self, idempotency_key: str) -> str | None:
        """The id already made for this key, if its snapshot exists (a cheap check before building one)."""
        path = self.root / ".keys" / hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text if _ID_RE.fullmatch(text) and (self.root / text).is_dir() else None

    def redact(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot as it would be stored: redacted per config, secrets scrubbed."""
        key = self._key if self._key is not None else (load_or_create_key(self.root) if self.redaction.enabled else b"")
        red = Redactor(self.redaction, key, self._secrets)
        frames = red.frames(snapshot.frames)
        tables = {red.text(name): red.table(frame) for name, frame in snapshot.tables.items()}
        figures = {red.text(name): red.tree(fig) for name, fig in snapshot.figures.items()}
        m = snapshot.manifest
        manifest = dataclasses.replace(
            m,
            title=red.text(m.title),
            notes=red.text(m.notes),
            filter=red.tree(m.filter),
            page_state=red.tree(m.page_state),
            queries=red.tree(m.queries),
            notices=red.tree(m.notices),
            values=red.tree(m.values),
            origin=red.tree(m.origin),
            redaction=red.summary(),
        )
        return Snapshot(manifest=manifest, frames=frames, tables=tables, figures=figures)

    @contextmanager
    def _key_file(self, key_hash: str) -> Iterator[int]:
        try:
            with locked(self.root / ".keys" / key_hash, self.lock_timeout_s) as fd:
                yield fd
        except LockTimeout:
            raise SnapshotError("another request for the same snapshot is still being written; retry") from None

    # --- read ---------------------------------------------------------------------------------
    def _dir(self, snapshot_id: object) -> Path:
        sid = validate_id(snapshot_id)
        path = self.root / sid
        if not path.is_dir():
            raise SnapshotNotFound(f"snapshot {sid} does not exist (deleted, expired, or never created)")
        return path

    def read_files(self, snapshot_id: object) -> dict[str, bytes]:
        """The raw file set of a stored snapshot (paths checked against the snapshot layout)."""
        path = self._dir(snapshot_id)
        try:
            manifest_bytes = (path / MANIFEST).read_bytes()
        except FileNotFoundError as exc:
            raise CorruptSnapshotError("manifest.json is missing") from exc
        raw = read_manifest(manifest_bytes)
        files = {MANIFEST: manifest_bytes}
        for rel in raw.get("files") or {}:
            if not isinstance(rel, str) or not is_safe_member(rel) or rel == MANIFEST:
                raise CorruptSnapshotError(f"manifest lists an unexpected path {str(rel)[:80]!r}")
            try:
                files[rel] = (path / rel).read_bytes()
            except (FileNotFoundError, IsADirectoryError) as exc:
                raise CorruptSnapshotError(f"{rel} is missing") from exc
        return files

    def open(self, snapshot_id: object) -> Snapshot:
        """The stored snapshot, verified; raises InvalidSnapshotId / SnapshotNotFound / CorruptSnapshotError /
        SnapshotVersionError with a message fit for the UI."""
        files = self.read_files(snapshot_id)
        snap = from_files(files)
        if snap.manifest.snapshot_id != snapshot_id:
            raise CorruptSnapshotError("the manifest belongs to a different snapshot id")
        return snap

    def list(self) -> list[SnapshotInfo]:
        """Every snapshot, newest first; damaged ones are listed with status ``corrupt`` and the reason."""
        if not self.root.is_dir():
            return []
        self._sweep()
        found = [self._info(p) for p in self.root.iterdir() if _ID_RE.fullmatch(p.name) and p.is_dir()]
        infos = [i for i in found if i is not None]
        return sorted(infos, key=lambda i: (i.created_at or "", i.id), reverse=True)

    def _info(self, path: Path) -> SnapshotInfo | None:
        raw: dict[str, Any] = {}
        size = 0
        try:
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            raw = read_manifest((path / MANIFEST).read_bytes())
            for rel, meta in (raw.get("files") or {}).items():
                if not is_safe_member(rel):
                    raise CorruptSnapshotError(f"manifest lists an unexpected path {rel[:80]!r}")
                member = path / rel
                if not member.is_file() or member.stat().st_size != meta.get("bytes"):
                    raise CorruptSnapshotError(f"{rel} is missing or truncated")
            migrate({"schema_version": raw["schema_version"]}, {})
            status, error = "ok", None
        except SnapshotVersionError as exc:
            status, error = "unsupported", str(exc)
        except Exception as exc:  # a listing must survive any damage; the reason is shown per row
            if not path.is_dir():
                return None  # deleted while we were listing
            status = "corrupt"
            error = "manifest.json is missing" if isinstance(exc, FileNotFoundError) else str(exc) or type(exc).__name__
        return SnapshotInfo(
            id=path.name,
            title=str(raw.get("title") or "(unreadable)"),
            created_at=raw.get("created_at") or _mtime_iso(path),
            author=raw.get("author"),
            page=str(raw.get("page") or ""),
            size_bytes=size,
            status=status,
            error=error,
        )

    # --- delete / retention -------------------------------------------------------------------
    def delete(self, snapshot_id: object) -> bool:
        """Remove a snapshot (and forget its idempotency key); False when it did not exist."""
        try:
            path = self._dir(snapshot_id)
        except SnapshotNotFound:
            return False
        key_hash = None
        try:
            key_hash = json.loads((path / MANIFEST).read_bytes()).get("idempotency")
        except (OSError, ValueError, AttributeError):
            pass
        target = move_aside(path, self.root / ".trash")
        if target is None:
            return False  # deleted concurrently
        (self.root / ".opens" / f"{path.name}.jsonl").unlink(missing_ok=True)
        if isinstance(key_hash, str) and re.fullmatch(r"[0-9a-f]{64}", key_hash):
            with self._key_file(key_hash) as fd:
                if _read_key_file(fd) == path.name:
                    overwrite_small(fd, "")
        shutil.rmtree(target, ignore_errors=True)
        return True

    def apply_retention(
        self, *, max_age_days: float | None = None, max_count: int | None = None, now: datetime | None = None
    ) -> builtins.list[str]:
        """Delete snapshots older than ``max_age_days`` and beyond the newest ``max_count``; return their ids."""
        now = now or datetime.now(timezone.utc)
        infos = self.list()
        doomed: builtins.list[str] = []
        if max_age_days is not None:
            cutoff = now - timedelta(days=max_age_days)
            doomed += [i.id for i in infos if _parse_time(i.created_at) < cutoff]
        if max_count is not None:
            kept = [i for i in infos if i.id not in doomed]
            doomed += [i.id for i in kept[max(max_count, 0) :]]
        return [sid for sid in doomed if self.delete(sid)]

    def _sweep(self) -> None:
        """Remove leftovers of crashed writers (after an hour, so live writers are safe) and of deletes."""
        sweep(self.root / ".tmp", _STALE_TMP_S)
        sweep(self.root / ".trash", 0.0)

    # --- portable file ------------------------------------------------------------------------
    def export_file(self, snapshot_id: object) -> bytes:
        """The snapshot as one portable file (zip) another Faultline can import."""
        files = self.read_files(snapshot_id)
        from_files(files)  # refuse to export a damaged snapshot
        return pack(files)

    def import_file(self, data: bytes, limits: ImportLimits = ImportLimits()) -> str:
        """Import an uploaded snapshot file as a new snapshot (re-redacted); same bytes twice → same id."""
        snap = from_files(unpack(data, limits))
        origin = {"snapshot_id": snap.manifest.snapshot_id, "imported_at": datetime.now(timezone.utc).isoformat()}
        manifest = dataclasses.replace(snap.manifest, origin={**snap.manifest.origin, **origin})
        key = "import:" + hashlib.sha256(data).hexdigest()
        return self.create(dataclasses.replace(snap, manifest=manifest), key)

    # --- who opened it ------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """Where the snapshots live, fit to show on a page."""
        return str(self.root)

    def record_open(self, snapshot_id: object, who: str | None, remote_addr: str | None) -> None:
        """Remember one opening beside the snapshot (``.opens/<id>.jsonl``, one appended line)."""
        sid = self._dir(snapshot_id).name
        line = json.dumps({"at": now_iso(), "who": who, "remote_addr": remote_addr}, ensure_ascii=False) + "\n"
        opens = self.root / ".opens"
        opens.mkdir(exist_ok=True)
        # one O_APPEND write per line: concurrent openers (threads or processes) never interleave
        fd = os.open(opens / f"{sid}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def opened_by(self, snapshot_id: object) -> builtins.list[OpenRecord]:
        """Who opened the snapshot, newest first (at most MAX_OPENS_LISTED; damaged lines skipped)."""
        sid = validate_id(snapshot_id)
        try:
            lines = (self.root / ".opens" / f"{sid}.jsonl").read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        records = []
        for text in lines[-MAX_OPENS_LISTED:]:
            try:
                record = open_record(json.loads(text))
            except ValueError:
                record = None  # a line torn by a crash
            if record is not None:
                records.append(record)
        return records[::-1]


def open_store(
    spec: str | None = None,
    *,
    redaction: RedactionConfig = RedactionConfig(),
    redaction_key: bytes | str | None = None,
    secret_values: Iterable[str] = (),
) -> SnapshotStore:
    """The configured store: ``spec`` (else ``$FAULTLINE_SNAPSHOT_STORE``) is a ``postgresql://`` URL for the
    shared PostgreSQL store, or a directory; without either, ``$FAULTLINE_SNAPSHOT_DIR`` / ``./snapshots-data``."""
    spec = (spec if spec is not None else os.environ.get(ENV_STORE, "")).strip()
    if spec.startswith(("postgresql://", "postgres://")):
        from snapshots.store_pg import PgSnapshotStore  # psycopg is only loaded when the shared store is used

        return PgSnapshotStore(spec, redaction=redaction, redaction_key=redaction_key, secret_values=secret_values)
    return SnapshotStore(spec or None, redaction=redaction, redaction_key=redaction_key, secret_values=secret_values)


def _read_key_file(fd: int) -> str | None:
    text = read_small(fd)
    return text if _ID_RE.fullmatch(text) else None  # a torn write reads as "no id yet"


def _write_key_file(fd: int, sid: str) -> None:
    overwrite_small(fd, sid)


def _mtime_iso(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat()
    except OSError:
        return None


def _parse_time(value: str | None) -> datetime:
    try:
        parsed = datetime.fromisoformat(value or "")
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
