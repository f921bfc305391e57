"""The portable snapshot file: a zip of manifest.json and the snapshot's data files.

Unpacking treats the upload as hostile: total size limit, member count limit, per-member and total
uncompressed limits enforced while reading (never trusting the header), a compression-ratio guard
against zip bombs, and member names checked against the exact layout a snapshot uses.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from snapshots.bundle import MANIFEST, CorruptSnapshotError

# The only member names a snapshot may contain (also checked before reading files from disk).
MEMBER_RE = re.compile(r"manifest\.json|frames/[a-z_]{1,32}\.parquet|tables/t\d{1,4}\.parquet|figures/f\d{1,4}\.json")
SUFFIX = ".faultline.zip"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # reproducible archives: same snapshot, same bytes


@dataclass(frozen=True)
class ImportLimits:
    max_file_bytes: int = 200 * 1024 * 1024
    max_total_bytes: int = 1024 * 1024 * 1024  # uncompressed
    max_members: int = 2_000
    max_ratio: float = 200.0  # uncompressed / compressed, per member (parquet+zstd barely compresses)


def is_safe_member(name: str) -> bool:
    return MEMBER_RE.fullmatch(name) is not None


def pack(files: Mapping[str, bytes]) -> bytes:
    """Zip a snapshot's file set (manifest first)."""
    buf = io.BytesIO()
    names = [MANIFEST] + sorted(n for n in files if n != MANIFEST)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            if not is_safe_member(name):
                raise CorruptSnapshotError(f"refusing to pack unexpected file {name!r}")
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            zf.writestr(info, files[name])
    return buf.getvalue()


def unpack(data: bytes, limits: ImportLimits = ImportLimits()) -> dict[str, bytes]:
    """The file set inside an uploaded snapshot file; CorruptSnapshotError says what is wrong."""
    if len(data) > limits.max_file_bytes:
        raise CorruptSnapshotError(
            f"the file is {len(data) / 1e6:.0f} MB; the limit is {limits.max_file_bytes / 1e6:.0f} MB"
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptSnapshotError("not a Faultline snapshot file (not a valid zip archive)") from exc
    files: dict[str, bytes] = {}
    total = 0
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise CorruptSnapshotError(
                f"the archive has {len(infos)} members; a snapshot has at most {limits.max_members}"
            )
        for info in infos:
            name = info.filename
            if not is_safe_member(name) or info.is_dir():
                raise CorruptSnapshotError(f"unexpected path in the archive: {name[:80]!r}")
            if name in files:
                raise CorruptSnapshotError(f"duplicate member {name!r}")
            if info.flag_bits & 0x1:
                raise CorruptSnapshotError("encrypted archives are not supported")
            budget = limits.max_total_bytes - total
            member_cap = min(budget, int(max(info.compress_size, 1024) * limits.max_ratio))
            files[name] = _read_capped(zf, info, member_cap)
            total += len(files[name])
    if MANIFEST not in files:
        raise CorruptSnapshotError("the archive has no manifest.json")
    return files


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    out = bytearray()
    try:
        with zf.open(info) as member:
            while chunk := member.read(1 << 20):
                out += chunk
                if len(out) > cap:
                    raise CorruptSnapshotError(f"{info.filename} expands beyond the import limit (zip bomb guard)")
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise CorruptSnapshotError(f"{info.filename} is damaged inside the archive ({exc})") from exc
    return bytes(out)
