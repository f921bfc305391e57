"""Line-aligned blocks of a trace file or upload (plain or gzip), read a few MiB at a time.

Each block ends at a line break (or at the end of the data), so a JSON-lines reader can split it without
carrying state; a single line longer than a block becomes one bigger block. ``on_read`` is told the
number of raw (compressed, for gzip) bytes read so far after every read, for progress.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from connectors.errors import PayloadError
from connectors.traces.frame import short

BLOCK_BYTES = 4 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


def file_blocks(path: Path, max_bytes: int, on_read: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """Blocks of ``path``, gunzipped when compressed, refusing to inflate past ``max_bytes``. OSError propagates."""
    with path.open("rb") as fh:
        yield from _aligned(_raw_reads(fh.read, path.name, max_bytes, on_read))


def bytes_blocks(data: bytes, name: str, max_bytes: int) -> Iterator[bytes]:
    """Blocks of in-memory ``data`` (an upload), gunzipped when compressed, within ``max_bytes``."""
    view = memoryview(data)
    offset = 0

    def read(size: int) -> bytes:
        nonlocal offset
        piece = bytes(view[offset: offset + size])
        offset += len(piece)
        return piece
    yield from _aligned(_raw_reads(read, name, max_bytes, None))


def _raw_reads(read: Callable[[int], bytes], name: str, max_bytes: int,
               on_read: Callable[[int], None] | None) -> Iterator[bytes]:
    """Decoded pieces of the stream: gzip inflated (bounded), a binary OTLP export refused."""
    first = read(BLOCK_BYTES)
    done = len(first)
    if on_read is not None:
        on_read(done)
    if first[:1] == b"\x00":  # the file exporter's uint32 length prefix: protobuf or zstd records
        raise PayloadError(f"{short(name)} looks like binary OTLP/protobuf; export JSON instead (format: json)")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if first[:2] == GZIP_MAGIC else None
    inflated = 0
    piece = first
    while piece:
        if inflater is None:
            yield piece
        else:
            pending = piece
            while pending and not inflater.eof:  # bounded output per call: a zip bomb never lands in memory
                try:
                    out = inflater.decompress(pending, BLOCK_BYTES)
                except zlib.error as exc:
                    raise PayloadError(f"{short(name)} is not valid gzip: {exc}") from exc
                pending = inflater.unconsumed_tail
                inflated += len(out)
                if inflated > max_bytes:
                    raise PayloadError(f"{short(name)} inflates to more than {max_bytes} bytes")
                if out:
                    yield out
        piece = read(BLOCK_BYTES)
        done += len(piece)
        if on_read is not None and piece:
            on_read(done)


def _aligned(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Re-cut ``pieces`` so every block but the last ends with a line break."""
    rest: list[bytes] = []
    for piece in pieces:
        cut = piece.rfind(b"\n") + 1
        if cut == 0:
            rest.append(piece)
            continue
        rest.append(piece[:cut])
        yield b"".join(rest)
        rest = [piece[cut:]]
    tail = b"".join(rest)
    if tail:
        yield tail
