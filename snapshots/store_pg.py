"""The shared snapshot store in PostgreSQL: the same contract as the directory store, safe across hosts.

Chosen with ``FAULTLINE_SNAPSHOT_STORE=postgresql://user@host:5432/db`` (same value on every replica;
put the password in ``~/.pgpass`` or ``PGPASSWORD``, not in the URL). Tables (created on first use,
under an advisory lock so replicas starting together do not race)::

    faultline_snapshots        id (32 hex, 128 random bits), idempotency (unique), manifest, size, created_at
    faultline_snapshot_files   (snapshot_id, path) -> data; the manifest's file set, cascade-deleted
    faultline_snapshot_opens   (snapshot_id, at, who, remote_addr); the "opened by" list, cascade-deleted
    faultline_snapshot_meta    name -> value; the shared redaction key unless one is configured

A snapshot is inserted with its files in one transaction, so readers see all of it or nothing. The
idempotency key is unique: two clicks on two hosts race on ``INSERT … ON CONFLICT DO NOTHING`` and both
get the one id that won.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from connectors.runtime.log import redact as scrub_secrets
from model.validate import validate
from snapshots.archive import is_safe_member
from snapshots.audit import MAX_OPENS_LISTED, OpenRecord
from snapshots.bundle import (
    MANIFEST,
    CorruptSnapshotError,
    Snapshot,
    SnapshotError,
    SnapshotVersionError,
    migrate,
    read_manifest,
    to_files,
)
from snapshots.redact import RedactionConfig
from snapshots.store import SnapshotInfo, SnapshotNotFound, SnapshotStore, new_id, validate_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS faultline_snapshots (
    id          text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
    idempotency text NOT NULL UNIQUE,
    created_at  text,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    manifest    bytea NOT NULL,
    size_bytes  bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS faultline_snapshot_files (
    snapshot_id text NOT NULL REFERENCES faultline_snapshots(id) ON DELETE CASCADE,
    path        text NOT NULL,
    data        bytea NOT NULL,
    PRIMARY KEY (snapshot_id, path)
);
CREATE TABLE IF NOT EXISTS faultline_snapshot_opens (
    snapshot_id text NOT NULL REFERENCES faultline_snapshots(id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    who         text,
    remote_addr text
);
CREATE INDEX IF NOT EXISTS faultline_snapshot_opens_by_id ON faultline_snapshot_opens (snapshot_id, at);
CREATE TABLE IF NOT EXISTS faultline_snapshot_meta (name text PRIMARY KEY, value text NOT NULL);
"""
_SCHEMA_LOCK = 0x66_6C_73_6E  # any fixed 64-bit number: "flsn"
_ready: set[str] = set()
_ready_lock = threading.Lock()


class SnapshotStoreUnavailable(SnapshotError, OSError):
    """The shared store cannot be reached or refused the operation (the message says which; no secrets)."""


class PgSnapshotStore(SnapshotStore):
    """Create / open / list / delete snapshots in PostgreSQL; every method keeps :class:`SnapshotStore`'s contract."""

    def __init__(
        self,
        dsn: str,
        *,
        redaction: RedactionConfig | None = None,
        redaction_key: bytes | str | None = None,
        secret_values: Iterable[str] = (),
        connect_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(redaction=redaction or RedactionConfig(), redaction_key=redaction_key,
                         secret_values=secret_values)
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s

    @property
    def location(self) -> str:
        return scrub_secrets(self.dsn)

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            # prepare_threshold=None: no server-side prepared statements, so pgbouncer's transaction mode works
            with psycopg.connect(self.dsn, connect_timeout=max(1, round(self.connect_timeout_s)),
                                 prepare_threshold=None, autocommit=True) as conn:
                self._ensure_schema(conn)
                yield conn
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SnapshotStoreUnavailable(f"the shared snapshot store ({self.location}) failed: "
                                           f"{scrub_secrets(reason)}") from None

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self.dsn in _ready:
            return
        with _ready_lock, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute(_SCHEMA)  # several statements: allowed because no parameters are passed
        _ready.add(self.dsn)

    # --- create -------------------------------------------------------------------------------
    def redact(self, snapshot: Snapshot) -> Snapshot:
        if self._key is None and self.redaction.enabled:
            self._key = self._shared_key()
        return super().redact(snapshot)

    def _shared_key(self) -> bytes:
        """One redaction key for every replica, so the same user hashes the same in every snapshot."""
        with self._conn() as conn:
            conn.execute("INSERT INTO faultline_snapshot_meta (name, value) VALUES ('redaction_key', %s) "
                         "ON CONFLICT (name) DO NOTHING", (secrets.token_hex(32),))
            row = conn.execute("SELECT value FROM faultline_snapshot_meta WHERE name = 'redaction_key'").fetchone()
        return bytes.fromhex(str(row[0])) if row else b""

    def create(self, snapshot: Snapshot, idempotency_key: str) -> str:
        """Redact and store ``snapshot`` in one transaction; the same key always yields the same id."""
        key_hash = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
        existing = self._find_hash(key_hash)
        if existing:
            return existing
        redacted = self.redact(snapshot)
        for kind, frame in redacted.frames.items():
            validate(frame, kind)
        sid = new_id()
        manifest = dataclasses.replace(redacted.manifest, snapshot_id=sid, idempotency=key_hash)
        files = to_files(dataclasses.replace(redacted, manifest=manifest))
        with self._conn() as conn, conn.transaction():
            won = conn.execute(
                "INSERT INTO faultline_snapshots (id, idempotency, created_at, manifest, size_bytes) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (idempotency) DO NOTHING RETURNING id",
                (sid, key_hash, manifest.created_at, files[MANIFEST], sum(len(b) for b in files.values())),
            ).fetchone()
            if won is None:  # another request with the same key committed first: its snapshot is the one
                row = conn.execute("SELECT id FROM faultline_snapshots WHERE idempotency = %s", (key_hash,)).fetchone()
                if row is None:
                    raise SnapshotError("another request for the same snapshot was deleted meanwhile; retry")
                return str(row[0])
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO faultline_snapshot_files (snapshot_id, path, data) VALUES (%s, %s, %s)",
                                [(sid, rel, data) for rel, data in files.items() if rel != MANIFEST])
        return sid

    def find(self, idempotency_key: str) -> str | None:
        return self._find_hash(hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest())

    def _find_hash(self, key_hash: str) -> str | None:
        with self._conn() as conn:
            row = conn.execute("SELECT id FROM faultline_snapshots WHERE idempotency = %s", (key_hash,)).fetchone()
        return str(row[0]) if row else None

    # --- read ---------------------------------------------------------------------------------
    def read_files(self, snapshot_id: object) -> dict[str, bytes]:
        sid = validate_id(snapshot_id)
        with self._conn() as conn:
            row = conn.execute("SELECT manifest FROM faultline_snapshots WHERE id = %s", (sid,)).fetchone()
            if row is None:
                raise SnapshotNotFound(f"snapshot {sid} does not exist (deleted, expired, or never created)")
            stored = {str(p): bytes(d) for p, d in
                      conn.execute("SELECT path, data FROM faultline_snapshot_files WHERE snapshot_id = %s", (sid,))}
        manifest_bytes = bytes(row[0])
        raw = read_manifest(manifest_bytes)
        files = {MANIFEST: manifest_bytes}
        for rel in raw.get("files") or {}:
            if not isinstance(rel, str) or not is_safe_member(rel) or rel == MANIFEST:
                raise CorruptSnapshotError(f"manifest lists an unexpected path {str(rel)[:80]!r}")
            if rel not in stored:
                raise CorruptSnapshotError(f"{rel} is missing")
            files[rel] = stored[rel]
        return files

    def list(self) -> list[SnapshotInfo]:
        """Every snapshot, newest first; damaged ones are listed with status ``corrupt`` and the reason."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT s.id, s.manifest, s.size_bytes, s.stored_at, "
                "COALESCE((SELECT json_object_agg(f.path, octet_length(f.data)) FROM faultline_snapshot_files f "
                "          WHERE f.snapshot_id = s.id), '{}'::json) "
                "FROM faultline_snapshots s"
            ).fetchall()
        infos = [_info(str(r[0]), bytes(r[1]), int(r[2]), r[3].isoformat(), r[4]) for r in rows]
        return sorted(infos, key=lambda i: (i.created_at or "", i.id), reverse=True)

    # --- delete -------------------------------------------------------------------------------
    def delete(self, snapshot_id: object) -> bool:
        """Remove a snapshot, its files and its opens (its idempotency key goes with it); False when absent."""
        sid = validate_id(snapshot_id)
        with self._conn() as conn:
            return conn.execute("DELETE FROM faultline_snapshots WHERE id = %s", (sid,)).rowcount > 0

    def _sweep(self) -> None:
        """Nothing to sweep: a crashed writer's transaction is rolled back by the server."""

    # --- who opened it ------------------------------------------------------------------------
    def record_open(self, snapshot_id: object, who: str | None, remote_addr: str | None) -> None:
        sid = validate_id(snapshot_id)
        with self._conn() as conn:
            inserted = conn.execute(
                "INSERT INTO faultline_snapshot_opens (snapshot_id, who, remote_addr) "
                "SELECT id, %s, %s FROM faultline_snapshots WHERE id = %s", (who, remote_addr, sid)).rowcount
        if not inserted:
            raise SnapshotNotFound(f"snapshot {sid} does not exist (deleted, expired, or never created)")

    def opened_by(self, snapshot_id: object) -> builtins.list[OpenRecord]:
        sid = validate_id(snapshot_id)
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT at, who, remote_addr FROM faultline_snapshot_opens WHERE snapshot_id = %s "
                "ORDER BY at DESC LIMIT %s", (sid, MAX_OPENS_LISTED)).fetchall()
        return [OpenRecord(at=r[0].isoformat(timespec="milliseconds"), who=r[1], remote_addr=r[2]) for r in rows]


def _info(sid: str, manifest_bytes: bytes, size: int, stored_at: str, sizes: object) -> SnapshotInfo:
    """One list row, checked like a directory entry: manifest readable, every listed file present and whole."""
    raw: dict[str, Any] = {}
    sizes = json.loads(sizes) if isinstance(sizes, str) else sizes
    stored = sizes if isinstance(sizes, dict) else {}
    try:
        raw = read_manifest(manifest_bytes)
        for rel, meta in (raw.get("files") or {}).items():
            if not is_safe_member(rel):
                raise CorruptSnapshotError(f"manifest lists an unexpected path {rel[:80]!r}")
            if stored.get(rel) != (meta or {}).get("bytes"):
                raise CorruptSnapshotError(f"{rel} is missing or truncated")
        if raw.get("snapshot_id") not in (None, sid):
            raise CorruptSnapshotError("the manifest belongs to a different snapshot id")
        migrate({"schema_version": raw["schema_version"]}, {})
        status, error = "ok", None
    except SnapshotVersionError as exc:
        status, error = "unsupported", str(exc)
    except Exception as exc:  # a listing must survive any damage; the reason is shown per row
        status, error = "corrupt", str(exc) or type(exc).__name__
    return SnapshotInfo(
        id=sid,
        title=str(raw.get("title") or "(unreadable)"),
        created_at=raw.get("created_at") or stored_at,
        author=raw.get("author"),
        page=str(raw.get("page") or ""),
        size_bytes=size,
        status=status,
        error=error,
    )
