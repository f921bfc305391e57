"""What a "spans" query asks of a trace backend, and the helpers every trace connector shares.

``Query.params`` for kind ``"spans"`` (all optional):

============== ==================================================================
service        service name (Jaeger v1 requires one; we fan out when absent)
operation      span / operation name
tags           ``{attribute: value}``, every pair must match on one span
min_duration_ms, max_duration_ms   span duration bounds (ms)
limit          how many traces (1..1000, default 20)
trace_id       fetch this one trace instead of searching (capability ``trace_by_id``);
               the time window is not applied, so a pasted id finds its trace wherever it is
budget_traces  ``Query.purpose == "window"`` only: at most this many traces to read (1..1,000,000;
               default ``options.window_budget_traces``, else 8000), sampled evenly across the window
============== ==================================================================

Searches return whole traces that contain a matching span, as Jaeger, Tempo and Zipkin do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl

from connectors.errors import ConfigError
from connectors.traces.frame import Converted, short
from model.schemas import ATTR_PREFIX, SPANS

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
KNOWN_PARAMS = ("service", "operation", "tags", "min_duration_ms", "max_duration_ms", "limit", "trace_id", "budget_traces")
MAX_BUDGET_TRACES = 1_000_000
_HEX = re.compile(r"^[0-9a-fA-F]{1,32}$")


@dataclass(frozen=True)
class SpanSearch:
    """Validated ``Query.params`` of a spans query (see the module docstring)."""

    service: str | None = None
    operation: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    limit: int = DEFAULT_LIMIT
    trace_id: str | None = None  # 32 lowercase hex
    ignored: tuple[str, ...] = ()
    budget_traces: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SpanSearch:
        """Check the params; anything unusable raises ConfigError naming the parameter."""
        if not isinstance(params, Mapping):
            raise ConfigError("query params must be a mapping")
        return cls(
            service=_text(params, "service"),
            operation=_text(params, "operation"),
            tags=_tags(params.get("tags")),
            min_duration_ms=_ms(params, "min_duration_ms"),
            max_duration_ms=_ms(params, "max_duration_ms"),
            limit=_limit(params.get("limit")),
            trace_id=normalize_trace_id(params["trace_id"]) if params.get("trace_id") not in (None, "") else None,
            ignored=tuple(sorted(str(k) for k in params if k not in KNOWN_PARAMS)),
            budget_traces=_budget(params.get("budget_traces")),
        )

    def notices(self, source_type: str) -> tuple[str, ...]:
        return (f"{source_type}: ignored unknown query params {list(self.ignored)}",) if self.ignored else ()

    def limit_notice(self, source: str, frame: pl.DataFrame) -> tuple[str, ...]:
        """A notice when a search came back full: more traces may match than were returned."""
        if self.trace_id or frame.height == 0 or frame["trace_id"].n_unique() < self.limit:
            return ()
        return (f"{source}: showing {self.limit} traces, the query limit; more may match (raise 'limit' or narrow it)",)

    def describe(self) -> str:
        """A readable summary for ``Result.executed_query``."""
        parts = [f"{k}={v!r}" for k, v in (("service", self.service), ("operation", self.operation),
                                           ("min_duration_ms", self.min_duration_ms),
                                           ("max_duration_ms", self.max_duration_ms)) if v is not None]
        parts += [f"tag {k}={v!r}" for k, v in self.tags]
        return " ".join(parts + [f"limit={self.limit}"])


def normalize_trace_id(value: object) -> str:
    """A user-supplied trace id -> 32 lowercase hex; ConfigError when it is not hex."""
    text = str(value).strip()
    if not _HEX.match(text):
        raise ConfigError(f"trace_id {short(text)} is not a hex trace id (16 or 32 hex digits)")
    return text.lower().rjust(32, "0")


def _text(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"query param {key!r} must be a string, got {type(value).__name__}")
    return value


def _tags(value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ConfigError("query param 'tags' must be a mapping of attribute -> value")
    out = []
    for key, tag_value in value.items():
        if not isinstance(key, str) or not key.strip() or len(key) > 128:
            raise ConfigError(f"tag key {short(key)} must be a non-empty string of at most 128 characters")
        if isinstance(tag_value, bool):
            tag_value = "true" if tag_value else "false"
        if not isinstance(tag_value, (str, int, float)):
            raise ConfigError(f"tag {short(key)} must have a string or number value")
        out.append((key.removeprefix(ATTR_PREFIX), str(tag_value)))
    return tuple(out)


def _ms(params: Mapping[str, Any], key: str) -> float | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e12:
        raise ConfigError(f"query param {key!r} must be a non-negative number of milliseconds")
    return float(value)


def _limit(value: object) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ConfigError(f"query param 'limit' must be an integer in 1..{MAX_LIMIT}")
    return value


def _budget(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BUDGET_TRACES:
        raise ConfigError(f"query param 'budget_traces' must be an integer in 1..{MAX_BUDGET_TRACES:,}")
    return value


def utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def epoch_us(moment: datetime) -> int:
    return (utc(moment) - EPOCH) // timedelta(microseconds=1)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 with microseconds and ``Z`` (valid RFC3339Nano for Go)."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def go_duration(ms: float) -> str:
    """Milliseconds as a Go ``time.ParseDuration`` string: ``250ms`` or ``1500us``."""
    return f"{int(ms)}ms" if float(ms).is_integer() else f"{round(ms * 1000)}us"


def merge(parts: Iterable[Converted]) -> Converted:
    """Concatenate converted batches (attribute columns unioned) and drop spans seen twice."""
    items = list(parts)
    notices = tuple(n for c in items for n in c.notices)
    frames = [c.frame for c in items if c.frame.height]
    if not frames:
        return Converted(pl.DataFrame(schema=SPANS), notices)
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal").unique(maintain_order=True)
    attrs = sorted(c for c in frame.columns if c.startswith(ATTR_PREFIX))
    return Converted(frame.select(*SPANS.names(), *attrs), notices)


def drop_empty_attrs(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop ``attr.*`` columns that are null on every row (left over after filtering a merged frame)."""
    attrs = [c for c in frame.columns if c.startswith(ATTR_PREFIX)]
    if not attrs or frame.height == 0:
        return frame.drop(attrs)
    counts = frame.select(pl.col(attrs).null_count()).row(0)
    return frame.drop([c for c, nulls in zip(attrs, counts) if nulls == frame.height])


def filter_traces(frame: pl.DataFrame, search: SpanSearch, start: datetime | None, end: datetime | None) -> pl.DataFrame:
    """Search a spans frame like a backend: whole traces with a span matching every condition, newest first."""
    if search.trace_id:
        return frame.filter(pl.col("trace_id") == search.trace_id)
    cond = pl.lit(True)
    if start is not None:
        cond &= pl.col("start") >= utc(start)
    if end is not None:
        cond &= pl.col("start") < utc(end)
    if search.service:
        cond &= pl.col("service") == search.service
    if search.operation:
        cond &= pl.col("operation") == search.operation
    if search.min_duration_ms is not None:
        cond &= pl.col("duration_ms") >= search.min_duration_ms
    if search.max_duration_ms is not None:
        cond &= pl.col("duration_ms") <= search.max_duration_ms
    for key, value in search.tags:
        cond &= _tag_matches(frame, key, value)
    hits = (frame.filter(cond).group_by("trace_id").agg(pl.col("start").min().alias("_first"))
            .sort("_first", "trace_id", descending=True, nulls_last=True).head(search.limit))
    return frame.join(hits.select("trace_id"), on="trace_id", how="semi", maintain_order="left")


def _tag_matches(frame: pl.DataFrame, key: str, value: str) -> pl.Expr:
    column = ATTR_PREFIX + key
    if key == "error":
        return (pl.col("status") == "error") == (value.lower() == "true")
    if key in ("http.status_code", "http.response.status_code"):
        return pl.col("http_status").cast(pl.String) == value
    if column not in frame.columns:
        return pl.lit(False)
    return pl.col(column) == value
