"""A snapshot in memory (frames + results + manifest) and its on-disk file set.

Files of one snapshot (paths relative to its directory or zip)::

    manifest.json               Manifest as JSON; lists every other file with its size and sha256
    frames/<kind>.parquet       one validated frame per kind (spans keep their attr.* columns)
    tables/t<n>.parquet         result tables as shown (cohort ranking, blast radius rows, ...)
    figures/f<n>.json           plotly figures as shown (plotly JSON)

``to_files`` / ``from_files`` convert between a :class:`Snapshot` and that file set; the store
writes it atomically and the export packs it into a zip. ``from_files`` checks the format, the
schema version (migrating older versions through ``MIGRATIONS``), every checksum, and re-validates
every frame, so a truncated or tampered snapshot raises :class:`CorruptSnapshotError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from model.schemas import SCHEMA_VERSION, SCHEMAS
from model.validate import SchemaError, validate

FORMAT = "faultline-snapshot"
MANIFEST = "manifest.json"


class SnapshotError(ValueError):
    """Base of every snapshot problem; the message is fit for the UI."""


class CorruptSnapshotError(SnapshotError):
    """The files are missing, truncated, tampered with or unreadable."""


class SnapshotVersionError(SnapshotError):
    """The snapshot was written with a schema version this Faultline cannot read or migrate."""


@dataclass(frozen=True)
class Manifest:
    """Everything about a snapshot except the frame data. Times are ISO 8601 UTC strings."""

    title: str
    created_at: str
    page: str = ""
    notes: str = ""
    author: str | None = None
    filter: dict[str, Any] = field(default_factory=dict)
    page_state: dict[str, Any] = field(default_factory=dict)
    time_range: tuple[str | None, str | None] = (None, None)
    queries: list[dict[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # JSON results as shown (blast radius numbers, ...)
    tables: dict[str, str] = field(default_factory=dict)  # result name -> file
    figures: dict[str, str] = field(default_factory=dict)  # result name -> file
    sampling: dict[str, Any] = field(default_factory=dict)
    redaction: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> {bytes, sha256, rows?}
    snapshot_id: str | None = None
    idempotency: str | None = None  # sha256 of the idempotency key
    origin: dict[str, Any] = field(default_factory=dict)  # set on import: original id and creator
    schema_version: int = SCHEMA_VERSION
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Manifest:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in raw.items() if k in names}
        if "time_range" in kwargs:
            kwargs["time_range"] = tuple(kwargs["time_range"])
        return cls(**kwargs)


@dataclass(frozen=True)
class Snapshot:
    """A snapshot: its manifest, frames by kind, result tables and figures by name."""

    manifest: Manifest
    frames: dict[str, pl.DataFrame]
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> str | None:
        return self.manifest.snapshot_id

    def frame(self, kind: str) -> pl.DataFrame:
        """The frame of ``kind``; an empty frame with the full schema when the snapshot has none."""
        return self.frames[kind] if kind in self.frames else pl.DataFrame(schema=SCHEMAS[kind])

    def result(self, name: str) -> Any:
        """A result as shown: a table (DataFrame), a figure (plotly JSON dict) or a JSON value."""
        for source in (self.tables, self.figures, self.manifest.values):
            if name in source:
                return source[name]
        raise KeyError(name)


# Migrations: MIGRATIONS[v] turns a manifest + frames of version v into version v + 1.
Migration = Callable[[dict[str, Any], dict[str, pl.DataFrame]], tuple[dict[str, Any], dict[str, pl.DataFrame]]]
MIGRATIONS: dict[int, Migration] = {}


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=False)
    return buf.getvalue()


def to_files(snapshot: Snapshot) -> dict[str, bytes]:
    """The snapshot's file set; the manifest (last key) lists every other file with its checksum."""
    files: dict[str, bytes] = {}
    rows: dict[str, int] = {}
    for kind, frame in snapshot.frames.items():
        files[f"frames/{kind}.parquet"] = _parquet_bytes(frame)
        rows[f"frames/{kind}.parquet"] = frame.height
    table_files, figure_files = {}, {}
    for i, (name, frame) in enumerate(snapshot.tables.items()):
        table_files[name] = f"tables/t{i}.parquet"
        files[table_files[name]] = _parquet_bytes(frame)
        rows[table_files[name]] = frame.height
    for i, (name, fig) in enumerate(snapshot.figures.items()):
        figure_files[name] = f"figures/f{i}.json"
        files[figure_files[name]] = json.dumps(fig, separators=(",", ":"), allow_nan=False).encode("utf-8")
    listing: dict[str, dict[str, Any]] = {}
    for path, data in files.items():
        listing[path] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        if path in rows:
            listing[path]["rows"] = rows[path]
    manifest = dataclasses.replace(snapshot.manifest, tables=table_files, figures=figure_files, files=listing)
    files[MANIFEST] = json.dumps(manifest.to_json(), indent=1, allow_nan=False, sort_keys=True).encode("utf-8")
    return files


def read_manifest(data: bytes) -> dict[str, Any]:
    """Parse manifest bytes and check the format marker (not the version)."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptSnapshotError(f"manifest.json is not valid JSON ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CorruptSnapshotError("manifest.json is not a Faultline snapshot manifest")
    if not isinstance(raw.get("schema_version"), int):
        raise CorruptSnapshotError("manifest.json has no integer schema_version")
    return raw


def from_files(files: Mapping[str, bytes]) -> Snapshot:
    """Rebuild a Snapshot from its file set, verifying checksums, version and every frame."""
    if MANIFEST not in files:
        raise CorruptSnapshotError("manifest.json is missing")
    raw = read_manifest(files[MANIFEST])
    listing = raw.get("files")
    if not isinstance(listing, dict):
        raise CorruptSnapshotError("manifest.json has no file list")
    for path, info in listing.items():
        data = files.get(path)
        if data is None:
            raise CorruptSnapshotError(f"{path} is missing")
        if len(data) != info.get("bytes") or hashlib.sha256(data).hexdigest() != info.get("sha256"):
            raise CorruptSnapshotError(
                f"{path} is truncated or altered ({len(data)} bytes, expected {info.get('bytes')})"
            )
    frames: dict[str, pl.DataFrame] = {}
    for path in listing:
        if path.startswith("frames/"):
            kind = path.removeprefix("frames/").removesuffix(".parquet")
            frames[kind] = _read_parquet(files[path], path)
    raw, frames = migrate(raw, frames)
    try:
        manifest = Manifest.from_json(raw)
    except TypeError as exc:
        raise CorruptSnapshotError(f"manifest.json has an unexpected shape: {exc}") from exc
    for kind, frame in frames.items():
        if kind not in SCHEMAS:
            raise CorruptSnapshotError(f"unknown frame kind {kind!r} in snapshot")
        try:
            validate(frame, kind)
        except SchemaError as exc:
            raise CorruptSnapshotError(str(exc)) from exc
    tables = {name: _read_parquet(_member(files, path), path) for name, path in manifest.tables.items()}
    figures = {}
    for name, path in manifest.figures.items():
        try:
            figures[name] = json.loads(_member(files, path).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptSnapshotError(f"{path} is not valid JSON") from exc
    return Snapshot(manifest=manifest, frames=frames, tables=tables, figures=figures)


def migrate(raw: dict[str, Any], frames: dict[str, pl.DataFrame]) -> tuple[dict[str, Any], dict[str, pl.DataFrame]]:
    """Bring a manifest + frames up to SCHEMA_VERSION, or refuse with a clear message."""
    version = raw["schema_version"]
    if version > SCHEMA_VERSION:
        raise SnapshotVersionError(
            f"this snapshot was written by a newer Faultline (schema v{version}); this one reads up to "
            f"v{SCHEMA_VERSION}. Upgrade Faultline to open it."
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise SnapshotVersionError(
                f"this snapshot uses schema v{version}, which this Faultline (v{SCHEMA_VERSION}) can no longer "
                "migrate; open it with an older Faultline or re-create it."
            )
        raw, frames = step(dict(raw), dict(frames))
        version += 1
        raw["schema_version"] = version
    return raw, frames


def _member(files: Mapping[str, bytes], path: str) -> bytes:
    if path not in files:
        raise CorruptSnapshotError(f"{path} is missing")
    return files[path]


def _read_parquet(data: bytes, path: str) -> pl.DataFrame:
    try:
        return pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # polars raises several unrelated types for a damaged file
        raise CorruptSnapshotError(f"{path} is not a readable Parquet file ({exc.__class__.__name__})") from exc
