"""Trace files: OTLP/JSON (and collector JSON lines), Jaeger JSON or Zipkin v2 JSON, from disk or an upload.

``sources.yaml``::

    - name: captured
      type: trace_files
      options: {path: ./traces, format: auto, recursive: false}

Every ``*.json``, ``*.jsonl``, ``*.ndjson``, ``*.txt`` (optionally ``.gz``) file in ``path`` is read, up to
``options.max_file_bytes`` each (default 2 GiB; memory is about 3× the file while it loads); a file that
cannot be read is skipped with a notice. JSON-lines OTLP (the collector's file exporter) is streamed a few
MiB at a time, and a malformed line is skipped and counted, not a failure of the file.

A spans query with ``purpose="window"`` returns every span that starts in ``[start, end)`` with
``Coverage(method="all")``; ``purpose="search"`` searches the loaded spans like a backend
(:func:`connectors.traces.query.filter_traces`). Loaded files are cached by path, size and mtime; while a
load runs, :meth:`TraceFilesConnector.progress` says how many bytes of how many have been read.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from config import SourceConfig
from connectors.base import LOCAL, Coverage, Health, Progress, Query, Result, run_query
from connectors.errors import ConfigError, ConnectorError, PayloadError
from connectors.traces.chunks import bytes_blocks, file_blocks
from connectors.traces.convert_jaeger import convert_jaeger
from connectors.traces.convert_otlp import convert_otlp, convert_otlp_document, convert_otlp_lines
from connectors.traces.convert_zipkin import convert_zipkin
from connectors.traces.frame import Converted, load_json, short
from connectors.traces.query import SpanSearch, drop_empty_attrs, filter_traces, merge, utc

FORMATS = ("otlp", "jaeger", "zipkin")
CONVERTERS: dict[str, Callable[[object], Converted]] = {
    "otlp": convert_otlp, "jaeger": convert_jaeger, "zipkin": convert_zipkin}
SUFFIXES = (".json", ".jsonl", ".ndjson", ".txt")
DEFAULT_MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # = server.maxUploadSize in .streamlit/config.toml
_OTLP_KEYS = ("resourceSpans", "batches", "result", "trace")
_PROBE_LINES = 10  # lines looked at to tell JSON lines from one (pretty-printed) document


def sniff_format(data: bytes) -> str:
    """``"otlp"``, ``"jaeger"`` or ``"zipkin"`` from the JSON shape; PayloadError when it is none of them."""
    return _sniff(load_json(_inflate(data, DEFAULT_MAX_FILE_BYTES, "the data"), "trace"), "the data")


def spans_from_file(path: str | Path, fmt: str = "auto") -> pl.DataFrame:
    """Read one trace file (format sniffed unless given) -> SPANS frame."""
    return convert_file(path, fmt).frame


def spans_from_upload(data: bytes, name: str, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> pl.DataFrame:
    """An uploaded trace file -> SPANS frame; over ``max_bytes`` or unreadable -> PayloadError, nothing kept."""
    return convert_upload(data, name, max_bytes).frame


def convert_file(path: str | Path, fmt: str = "auto", max_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 on_read: Callable[[int], None] | None = None) -> Converted:
    """Like :func:`spans_from_file`, with notices; ``on_read`` is told the bytes read so far."""
    _check_format(fmt)
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise PayloadError(f"{file.name} is {size} bytes, over the {max_bytes} byte limit for trace files",
                               hint="options.max_file_bytes")
        return _convert_blocks(file_blocks(file, max_bytes, on_read), fmt, file.name)
    except OSError as exc:
        raise ConfigError(f"cannot read trace file {file}: {exc.strerror or exc}", hint="options.path") from exc


def convert_upload(data: bytes, name: str, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> Converted:
    """Like :func:`spans_from_upload`, with notices."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PayloadError(f"upload {short(name)} must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise PayloadError(f"upload {short(name)} is {len(data)} bytes; the limit is {max_bytes} bytes",
                           hint="split the file or raise the upload limit")
    return convert_bytes(bytes(data), "auto", name, max_bytes)


def convert_bytes(data: bytes, fmt: str, name: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Converted:
    """Decode (gzip allowed), sniff when ``fmt`` is ``auto``, convert. Errors name the file."""
    _check_format(fmt)
    return _convert_blocks(bytes_blocks(data, name, max_bytes), fmt, name)


def _convert_blocks(blocks: Iterator[bytes], fmt: str, name: str) -> Converted:
    """Stream OTLP JSON lines; read anything else whole and convert it as one document."""
    label = short(name, 80)
    try:
        first = next(blocks, b"")
        if _is_otlp_lines(first, fmt):
            converted = convert_otlp_lines(chain([first], blocks))
        else:
            data = b"".join(chain([first], blocks))
            typed = convert_otlp_document(data) if fmt in ("auto", "otlp") else None
            if typed is not None:
                converted = typed
            else:
                doc = load_json(data, fmt if fmt != "auto" else "trace")
                chosen = _sniff(doc, name) if fmt == "auto" else fmt
                converted = CONVERTERS[chosen](doc)
    except PayloadError as exc:
        raise PayloadError(f"{label}: {exc.message}", hint=exc.hint) from exc
    return Converted(converted.frame, tuple(f"{label}: {n}" for n in converted.notices))


class _Probe(msgspec.Struct):
    """The top-level keys that say "OTLP"; their values are skipped, not parsed (``Raw``)."""

    resourceSpans: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    batches: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    trace: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_PROBE = msgspec.json.Decoder(_Probe)


def _is_otlp_lines(block: bytes, fmt: str) -> bool:
    """True when the first JSON document found on one of the first lines is an OTLP object (so: JSON lines)."""
    if fmt not in ("auto", "otlp"):
        return False
    for line in block.split(b"\n", _PROBE_LINES)[:_PROBE_LINES]:
        try:
            probe = _PROBE.decode(line.removeprefix(b"\xef\xbb\xbf"))
        except msgspec.ValidationError:  # JSON, but not an object: Jaeger or Zipkin lists
            return False
        except (msgspec.DecodeError, RecursionError):  # not one document per line: the whole-document path
            continue
        return any(v is not msgspec.UNSET for v in (probe.resourceSpans, probe.batches, probe.result, probe.trace))
    return False


def _check_format(fmt: str) -> None:
    if fmt != "auto" and fmt not in FORMATS:
        raise ConfigError(f"unknown trace format {short(fmt)}; expected auto, {', '.join(FORMATS)}", hint="options.format")


def _inflate(data: bytes, max_bytes: int, name: str) -> bytes:
    """Gunzip when gzip-compressed, refusing to inflate past ``max_bytes`` (a zip bomb stays small)."""
    if data[:2] != b"\x1f\x8b":
        if data[:1] == b"\x00":  # the file exporter's uint32 length prefix: protobuf or zstd records
            raise PayloadError(f"{short(name)} looks like binary OTLP/protobuf; export JSON instead (format: json)")
        return data
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise PayloadError(f"{short(name)} is not valid gzip: {exc}") from exc
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PayloadError(f"{short(name)} inflates to more than {max_bytes} bytes")
    return out


def _sniff(doc: object, name: str) -> str:
    sample = doc
    while isinstance(sample, list) and sample:
        if isinstance(sample[0], list):
            return "zipkin"  # [[Span]]: a Zipkin search result
        sample = sample[0]
    if sample == []:
        return "zipkin"  # an empty search result; every converter turns it into an empty frame
    if isinstance(sample, dict):
        if any(k in sample for k in _OTLP_KEYS):
            return "otlp"
        if "traceId" in sample and "id" in sample:
            return "zipkin"
        if isinstance(sample.get("data"), list) or sample.get("data") is None and "errors" in sample:
            return "jaeger"
        if "spans" in sample or "spanID" in sample or "traceID" in sample:
            return "jaeger"
    keys = ", ".join(short(k, 30) for k in list(sample)[:5]) if isinstance(sample, dict) else type(sample).__name__
    raise PayloadError(f"{short(name, 80)} is not OTLP, Jaeger or Zipkin trace JSON (found {keys})",
                       hint="that the file is a trace export")


class TraceFilesConnector:
    """A directory of trace files; files are re-read only when their size or mtime changes."""

    capabilities = frozenset({"spans", "trace_by_id", "search", LOCAL})

    def __init__(self, source: SourceConfig, *, strict: bool = False) -> None:
        self.name = source.name
        raw_path = source.options.get("path")
        if not isinstance(raw_path, str) or not raw_path.strip():
            raise ConfigError(f"source {source.name!r}: options.path (a directory of trace files) is required",
                              source=source.name, hint="sources.yaml")
        self.path = Path(raw_path).expanduser()
        self.fmt = str(source.options.get("format", "auto"))
        _check_format(self.fmt)
        self.recursive = source.options.get("recursive", False)
        self.max_file_bytes = source.options.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES)
        if not isinstance(self.recursive, bool):
            raise ConfigError(f"source {source.name!r}: options.recursive must be true or false", source=source.name)
        if isinstance(self.max_file_bytes, bool) or not isinstance(self.max_file_bytes, int) or self.max_file_bytes < 1:
            raise ConfigError(f"source {source.name!r}: options.max_file_bytes must be a positive integer",
                              source=source.name)
        self.strict = strict
        self._cache: dict[Path, tuple[tuple[int, int], Converted]] = {}
        self._merged: tuple[tuple[tuple[Path, int, int], ...], Converted] | None = None
        self._lock = threading.Lock()  # the caches
        self._load_lock = threading.Lock()  # one load at a time; a second caller waits and gets the cache
        self._progress_lock = threading.Lock()
        self._progress: Progress | None = None

    def files(self) -> list[Path]:
        if not self.path.is_dir():
            raise ConfigError(f"trace directory {self.path} does not exist or is not a directory",
                              source=self.name, hint="options.path in sources.yaml")
        pattern = self.path.rglob("*") if self.recursive else self.path.glob("*")
        return sorted(p for p in pattern if p.is_file() and p.name.lower().removesuffix(".gz").endswith(SUFFIXES))

    def progress(self) -> Progress | None:
        """Bytes read of the bytes to read while a load is running; None when none is. Safe from any thread."""
        with self._progress_lock:
            return self._progress

    def load(self) -> Converted:
        """Every readable file, converted and merged; unreadable files become notices."""
        with self._load_lock:
            try:
                return self._load()
            finally:
                with self._progress_lock:
                    self._progress = None

    def _load(self) -> Converted:
        stats: dict[Path, os.stat_result] = {}
        for file in self.files():
            try:
                stats[file] = file.stat()
            except OSError:  # removed since it was listed (a rotating exporter): not there to read
                continue
        files = list(stats)
        key = tuple((file, st.st_size, st.st_mtime_ns) for file, st in stats.items())
        with self._lock:
            if self._merged is not None and self._merged[0] == key:
                return self._merged[1]
            stale = [f for f in files if (hit := self._cache.get(f)) is None
                     or hit[0] != (stats[f].st_size, stats[f].st_mtime_ns)]
        total = sum(stats[f].st_size for f in stale)
        done_before = 0
        self._set_progress(0, total)
        parts: list[Converted] = []
        skipped: list[str] = []
        errors: list[ConnectorError] = []
        for file in files:
            base = done_before

            def on_read(done: int, base: int = base) -> None:
                self._set_progress(min(base + done, total), total)
            try:
                parts.append(self._convert_cached(file, on_read if file in stale else None))
            except ConnectorError as exc:
                errors.append(exc)
                skipped.append(f"{self.name}: skipped {file.name}: {exc.message}")
            if file in stale:
                done_before += stats[file].st_size
                self._set_progress(done_before, total)
        if files and len(errors) == len(files):
            raise errors[0]
        merged = merge(parts)
        extra = () if files else (f"{self.name}: no trace files in {self.path}",)
        loaded = Converted(merged.frame, merged.notices + tuple(skipped) + extra)
        with self._lock:
            self._merged = (key, loaded)
        return loaded

    def _set_progress(self, done: int, total: int) -> None:
        with self._progress_lock:
            self._progress = Progress(done, total, "bytes")

    def _convert_cached(self, file: Path, on_read: Callable[[int], None] | None = None) -> Converted:
        stat = file.stat()
        key = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(file)
        if hit and hit[0] == key:
            return hit[1]
        converted = convert_file(file, self.fmt, self.max_file_bytes, on_read)
        with self._lock:
            self._cache[file] = (key, converted)
        return converted

    def query(self, queries: Sequence[Query]) -> list[Result]:
        results = []
        for q in queries:
            result = run_query(self.name, q, self._fetch, strict=self.strict)
            if result.ok and result.frame is not None and q.kind == "spans" and q.purpose == "window":
                n = result.frame["trace_id"].n_unique()
                result = replace(result, coverage=Coverage(traces_read=n, traces_total=n, method="all"))
            results.append(result)
        return results

    def _fetch(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        if query.kind != "spans":
            raise ConfigError(f"trace_files serves spans, not {query.kind!r}", source=self.name)
        if query.purpose == "window":
            return self._window(query)
        search = SpanSearch.from_params(query.params)
        loaded = self.load()
        frame = drop_empty_attrs(filter_traces(loaded.frame, search, query.start, query.end))
        what = f"trace_id={search.trace_id}" if search.trace_id else search.describe()
        notices = loaded.notices + search.notices("trace_files") + search.limit_notice(self.name, frame)
        return frame, f"files {self.path} {what}", notices

    def _window(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        """Every span that starts in ``[start, end)``: files hold them all, so there is no trace cap."""
        loaded = self.load()
        start, end = utc(query.start), utc(query.end)
        frame = drop_empty_attrs(loaded.frame.filter(pl.col("start") >= start, pl.col("start") < end))
        ignored = sorted(str(k) for k in query.params if k != "budget_traces")
        notices = loaded.notices + ((f"trace_files: a window query reads every span; ignored params {ignored}",)
                                    if ignored else ())
        return frame, f"files {self.path} window {start.isoformat()}..{end.isoformat()} (every span)", notices

    def check_health(self) -> Health:
        """Never raises: ok when the files convert (cached), degraded when some do not, down when none do."""
        started = time.perf_counter()
        try:
            count = len(self.files())
            loaded = self.load()
        except ConnectorError as exc:
            return Health("down", exc.describe(), _ms(started))
        except Exception as exc:  # noqa: BLE001 -- never raise from a health check
            return Health("down", f"{self.name}: cannot read {self.path}: {type(exc).__name__}", _ms(started))
        if count == 0:
            return Health("degraded", f"no trace files in {self.path}", _ms(started))
        skipped = sum(1 for n in loaded.notices if n.startswith(f"{self.name}: skipped "))
        if skipped:
            return Health("degraded", f"{skipped} of {count} trace files unreadable in {self.path}", _ms(started))
        return Health("ok", f"{count} trace files, {loaded.frame.height} spans in {self.path}", _ms(started))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def build(source: SourceConfig, **kwargs: Any) -> TraceFilesConnector:
    """Registry factory for ``type: trace_files``."""
    return TraceFilesConnector(source, **kwargs)


__all__ = ["FORMATS", "TraceFilesConnector", "build", "convert_bytes", "convert_file", "convert_upload",
           "sniff_format", "spans_from_file", "spans_from_upload"]
