"""Redaction on the way into a snapshot: keyed hashes for user ids, no client IPs, no query literals.

A hashed value is ``h:`` + the first 16 hex digits of HMAC-SHA256(key, value), so equal ids stay
equal (cohort counts and distinct-user figures still work) while the raw id is gone. Every other
text (events, notices, notes, result tables, figures) is scrubbed of the raw values found in the
hashed and dropped columns. Secrets from the config are scrubbed whether redaction is on or off.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from model.encoding import decoded
from model.schemas import ATTR_PREFIX

DEFAULT_HASH_ATTRS = ("attr.user_id", "attr.user.id", "attr.enduser.id", "attr.user.email", "attr.email")
DEFAULT_DROP_ATTRS = (
    "attr.client.address",
    "attr.client_ip",
    "attr.client_addr",
    "attr.net.peer.ip",
    "attr.net.sock.peer.addr",
    "attr.network.peer.address",
    "attr.http.client_ip",
    "attr.http.x_forwarded_for",
    "attr.source.address",
)
QUERY_ATTRS = ("attr.db.statement", "attr.db.query.text", "attr.db.query")  # SQL carried on spans
EMAIL_RE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
HASH_PREFIX = "h:"
HASHED_RE = r"^h:[0-9a-f]{16}$"
IP_PLACEHOLDER = "[ip]"
QUERY_PLACEHOLDER = "[query]"
SECRET_PLACEHOLDER = "[secret]"
KEY_FILE = ".redaction_key"
MIN_SCRUB_CHARS = 4  # shorter raw values are replaced only where they are a whole value, never inside text

QueryTextMode = Literal["normalise", "drop", "keep"]


@dataclass(frozen=True)
class RedactionConfig:
    """Which attributes are hashed or dropped; ``enabled=False`` keeps raw values (secrets still go)."""

    enabled: bool = True
    hash_attrs: tuple[str, ...] = DEFAULT_HASH_ATTRS
    drop_attrs: tuple[str, ...] = DEFAULT_DROP_ATTRS
    hash_email_columns: bool = True  # any attr column with "email" in its name
    query_text: QueryTextMode = "normalise"


def normalise_sql_expr(column: str) -> pl.Expr:
    """SQL with its literals replaced by ``?`` (strings, dollar quotes, numbers, comments), lists collapsed."""
    expr = pl.col(column)
    for pattern, repl in (
        (r"(?s)/\*.*?\*/", " "),
        (r"--[^\n]*", " "),
        (r"(?s)\$([A-Za-z_][A-Za-z0-9_]*)?\$.*?\$([A-Za-z_][A-Za-z0-9_]*)?\$", "?"),
        (r"(?s)[EeBbXxNn]?'(?:[^'\\]|\\.|'')*'?", "?"),
        (r"(^|[^A-Za-z0-9_$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", "${1}?"),
        (r"\(\s*\?(?:\s*,\s*\?)+\s*\)", "(?)"),
        (r"\s+", " "),
    ):
        expr = expr.str.replace_all(pattern, repl)
    return expr.str.strip_chars()


def load_or_create_key(root: str | Path) -> bytes:
    """The store's redaction key: read ``<root>/.redaction_key`` or create it (0600) atomically."""
    root = Path(root)
    path = root / KEY_FILE
    for _ in range(50):
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            text = ""
        if len(text) == 64:
            return bytes.fromhex(text)
        if not path.exists():
            root.mkdir(parents=True, exist_ok=True)
            tmp = root / f".key.{secrets.token_hex(8)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_hex(32).encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # fails if another process won the race; then we read theirs
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
            continue
        time.sleep(0.01)
    raise RuntimeError(f"redaction key file {path} is unreadable or malformed; delete it to generate a new key")


SECRET_KEY_RE = re.compile(r"pass|secret|token|key|credential|auth|cookie|private|dsn|uri|url|bearer|api", re.I)


def secret_strings(value: Any, *, name: str = "") -> list[str]:
    """String leaves of a secrets mapping worth scrubbing: under secret-sounding keys, or long enough to be keys.

    Short values under harmless keys (``user = "postgres"``) are left alone: scrubbing them would
    rewrite ordinary data such as a service called ``postgres``.
    """
    if isinstance(value, str):
        sensitive = SECRET_KEY_RE.search(name) is not None
        return [value] if (sensitive and len(value) >= 6) or len(value) >= 16 else []
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in secret_strings(v, name=str(k))]
    if isinstance(value, (list, tuple, set)):
        return [s for v in value for s in secret_strings(v, name=name)]
    return []


class Redactor:
    """Applies one RedactionConfig with one key to frames, tables and JSON trees of a snapshot."""

    def __init__(self, config: RedactionConfig, key: bytes, secret_values: Iterable[str] = ()) -> None:
        self.config = config
        self._key = key
        self._secrets = sorted({s for s in secret_values if s}, key=len, reverse=True)
        self._hashes: dict[str, str] = {}  # raw -> hashed, collected from hashed columns
        self._dropped: set[str] = set()  # raw IPs etc. from dropped columns
        self._queries: dict[str, str] = {}  # raw SQL -> normalised (or a placeholder), to scrub other text
        self.hashed_columns: set[str] = set()
        self.dropped_columns: set[str] = set()
        self._pairs_cache: tuple[tuple[int, int], tuple[list[str], list[str]]] | None = None

    # --- values -------------------------------------------------------------------------------
    def hash_value(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return HASH_PREFIX + digest[:16]

    def key_id(self) -> str:
        return hashlib.sha256(b"faultline-key-id" + self._key).hexdigest()[:8]

    def _is_hash_col(self, name: str) -> bool:
        cfg = self.config
        bare = name.removeprefix(ATTR_PREFIX)
        names = {c.removeprefix(ATTR_PREFIX) for c in cfg.hash_attrs}
        return bare in names or (cfg.hash_email_columns and "email" in bare.lower())

    def _is_drop_col(self, name: str) -> bool:
        return name.removeprefix(ATTR_PREFIX) in {c.removeprefix(ATTR_PREFIX) for c in self.config.drop_attrs}

    # --- frames -------------------------------------------------------------------------------
    def frames(self, frames: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
        """Redact every frame kind; collects raw values first so text anywhere can be scrubbed."""
        out = {kind: decoded(frame) for kind, frame in frames.items()}  # every text column a String, so none escapes
        if self.config.enabled:
            for kind, frame in out.items():
                out[kind] = self._collect_and_replace(frame, kind)
        return {kind: self._scrub_frame(frame) for kind, frame in out.items()}

    def table(self, frame: pl.DataFrame) -> pl.DataFrame:
        """A result table (cohort, blast radius): same column rules, then scrubbed."""
        frame = decoded(frame)
        if self.config.enabled:
            frame = self._collect_and_replace(frame, "table")
        return self._scrub_frame(frame)

    def _collect_and_replace(self, frame: pl.DataFrame, kind: str) -> pl.DataFrame:
        cols = [c for c, t in frame.schema.items() if t == pl.String]
        hash_cols = [c for c in cols if self._is_hash_col(c)]
        drop_cols = [c for c in cols if self._is_drop_col(c)]
        if kind == "pool_holders" and "client_addr" in frame.columns and "client_addr" not in drop_cols:
            drop_cols.append("client_addr")
        for col in hash_cols:
            raw = frame.get_column(col).drop_nulls().unique().to_list()
            new = [v for v in raw if v not in self._hashes and not _looks_hashed(v)]
            self._hashes.update({v: self.hash_value(v) for v in new})
            self.hashed_columns.add(col)
        for col in drop_cols:
            self._dropped.update(v for v in frame.get_column(col).drop_nulls().unique().to_list() if v)
            self.dropped_columns.add(col)
        mapping = self._hashes
        exprs = [pl.col(c).replace(list(mapping), list(mapping.values())) for c in hash_cols]
        frame = frame.with_columns(exprs) if exprs else frame
        if kind == "spans":
            frame = frame.drop([c for c in drop_cols if c.startswith(ATTR_PREFIX)])
        elif drop_cols:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in drop_cols)
        query_cols = [c for c in frame.columns if (kind == "pool_holders" and c == "query") or c in QUERY_ATTRS]
        for col in query_cols if self.config.query_text != "keep" else []:
            before = frame.get_column(col)
            if self.config.query_text == "drop":
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(col))
            else:
                frame = frame.with_columns(normalise_sql_expr(col).alias(col))
            pairs = pl.DataFrame({"raw": before, "new": frame.get_column(col).fill_null(QUERY_PLACEHOLDER)})
            self._queries.update(dict(pairs.drop_nulls("raw").unique("raw").iter_rows()))
        return frame

    def _scrub_pairs(self) -> tuple[list[str], list[str]]:
        """Raw value -> replacement for scrubbing inside free text (longest first)."""
        stamp = (len(self._hashes), len(self._dropped) + len(self._queries))
        if self._pairs_cache is not None and self._pairs_cache[0] == stamp:
            return self._pairs_cache[1]
        pairs: dict[str, str] = {}
        if self.config.enabled:
            pairs.update({raw: h for raw, h in self._hashes.items() if len(raw) >= MIN_SCRUB_CHARS})
            pairs.update({ip: IP_PLACEHOLDER for ip in self._dropped if len(ip) >= MIN_SCRUB_CHARS})
            pairs.update({q: new for q, new in self._queries.items() if len(q) >= MIN_SCRUB_CHARS and q != new})
        pairs.update({s: SECRET_PLACEHOLDER for s in self._secrets})
        ordered = sorted(pairs, key=len, reverse=True)  # longest first, so a value inside another goes second
        self._pairs_cache = (stamp, (ordered, [pairs[p] for p in ordered]))
        return self._pairs_cache[1]

    def _scrub_expr(self, expr: pl.Expr) -> pl.Expr:
        patterns, repls = self._scrub_pairs()
        if self.config.enabled and (self._hashes or self._dropped):
            exact = {**self._hashes, **{ip: IP_PLACEHOLDER for ip in self._dropped}}
            expr = expr.replace(list(exact), list(exact.values()))
        if patterns:
            expr = expr.str.replace_many(patterns, repls, leftmost=True)
        return expr

    def _scrub_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Scrub every String column; the work is done once over the distinct values of all columns."""
        cols = [c for c, t in frame.schema.items() if t == pl.String and c not in self.hashed_columns]
        if not cols or frame.height == 0:
            return frame
        distinct = pl.concat([frame.get_column(c).drop_nulls().unique().alias("old") for c in cols]).unique()
        self._learn_emails(distinct)
        pairs = (
            distinct.to_frame()
            .with_columns(new=self._scrub_expr(pl.col("old")))
            .filter(pl.col("old") != pl.col("new"))
        )
        if pairs.height == 0:
            return frame
        old, new = pairs.get_column("old").to_list(), pairs.get_column("new").to_list()
        return frame.with_columns(pl.col(c).replace(old, new) for c in cols)

    def _learn_emails(self, values: pl.Series) -> None:
        """Email addresses anywhere in free text get hashed like user ids (same key, same hash)."""
        if not (self.config.enabled and self.config.hash_email_columns) or values.len() == 0:
            return
        found = values.str.extract_all(EMAIL_RE).explode().drop_nulls().unique().to_list()
        self._hashes.update({e: self.hash_value(e) for e in found if e not in self._hashes})

    # --- JSON ---------------------------------------------------------------------------------
    def text(self, value: str) -> str:
        """Scrub one string (notes, notices, titles, executed queries)."""
        return str(self.tree(value))  # a string's tree is a string

    def tree(self, value: Any) -> Any:
        """Scrub every string (dict keys too) in a JSON-able tree, in one vectorised pass."""
        found: set[str] = set()
        _strings(value, found)
        if not found:
            return value
        src = sorted(found)
        self._learn_emails(pl.Series(src, dtype=pl.String))
        out = pl.DataFrame({"s": src}, schema={"s": pl.String}).select(self._scrub_expr(pl.col("s")))
        return _rebuild(value, dict(zip(src, out.get_column("s").to_list())))

    def summary(self) -> dict[str, Any]:
        """What was done, for the manifest (never the key itself)."""
        return {
            "enabled": self.config.enabled,
            "hashed_columns": sorted(self.hashed_columns),
            "dropped_columns": sorted(self.dropped_columns),
            "query_text": self.config.query_text if self.config.enabled else "keep",
            "key_id": self.key_id() if self.config.enabled else None,
            "secrets_scrubbed": bool(self._secrets),
        }


def _looks_hashed(value: str) -> bool:
    return len(value) == 18 and value.startswith(HASH_PREFIX) and all(c in "0123456789abcdef" for c in value[2:])


def _strings(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        found.add(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            found.add(str(k))
            _strings(v, found)
    elif isinstance(value, list):
        for v in value:
            _strings(v, found)


def _rebuild(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping[value]
    if isinstance(value, dict):
        return {mapping[str(k)]: _rebuild(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebuild(v, mapping) for v in value]
    return value
