"""The view state: the global filter plus each page's own controls, and its one serialisation.

Every route (``ui.routes``) declares the :class:`Param`s that change what it shows. Their values
live in plain session-state keys (not widget keys: a widget's state is deleted on any run that does
not draw it), in the URL, and in a snapshot's manifest, always through :func:`to_params` and
:func:`from_params`. Decoding never raises: a value that cannot be read is dropped with a
:class:`Notice` that the filter bar shows.

URL form: ``?from=<ISO>&to=<ISO>&cohort=region%3Deu-west-1&service=payments`` plus the page's own
parameters, e.g. ``&outcome=slow&brush=2026-03-14T02:30:00+00:00~2026-03-14T02:50:00+00:00~9000.0~13000.0``
on Cohorts or ``&trace=4bf92f35…`` on Traces. Nothing here imports Streamlit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

MAX_CHIPS = 8
MAX_VALUE_CHARS = 256
FILTER_PARAMS = ("from", "to", "cohort", "service")
OUTCOME_CHOICES = ("bad", "error", "slow")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLUS_AS_SPACE = re.compile(r"^(.*T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")
_TRACE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

Brush = tuple[datetime, datetime, float, float]  # t0, t1 (UTC), lo_ms, hi_ms: a box on the latency scatter


@dataclass(frozen=True)
class Notice:
    """Something in a link or snapshot that could not be applied as it was, and what is shown instead."""

    param: str
    message: str


@dataclass(frozen=True)
class Filter:
    """Time window (UTC, None = the whole incident window), cohort chips and an optional service."""

    start: datetime | None = None
    end: datetime | None = None
    cohort: tuple[tuple[str, str], ...] = ()
    service: str | None = None

    def to_params(self) -> dict[str, str | list[str]]:
        params: dict[str, str | list[str]] = {}
        if self.start and self.end:
            params["from"] = self.start.isoformat()
            params["to"] = self.end.isoformat()
        if self.cohort:
            params["cohort"] = [f"{k}={v}" for k, v in self.cohort]
        if self.service:
            params["service"] = self.service
        return params

    def clip(self, frame: pl.DataFrame, column: str = "ts") -> pl.DataFrame:
        """Rows of ``frame`` inside the time window (``[start, end)``); all rows when there is none."""
        if not (self.start and self.end):
            return frame
        return frame.filter(pl.col(column) >= self.start, pl.col(column) < self.end)

    def describe(self) -> str:
        parts = [f"{k} = {_shown(v)}" for k, v in self.cohort]
        if self.service:
            parts.append(f"service = {_shown(self.service)}")
        if self.start and self.end:
            parts.append(f"{self.start:%H:%M}–{self.end:%H:%M} UTC")
        return " AND ".join(parts) if parts else "everything"


@dataclass(frozen=True)
class Param:
    """One piece of a page's state: its URL name, the session key holding it, and its codec.

    ``decode`` raises ValueError with a message fit for the page when the text is not acceptable.
    """

    name: str
    session_key: str
    encode: Callable[[Any], str]
    decode: Callable[[str], Any]


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as UTC (naive means UTC); ValueError when it is not one. A hand-typed link's
    ``+00:00`` arrives as `` 00:00`` (a ``+`` in a query string is a space): that is read as meant."""
    text = _PLUS_AS_SPACE.sub(r"\1+\2", text.strip())
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _outcome(text: str) -> str:
    if text not in OUTCOME_CHOICES:
        raise ValueError(f"“{_short(text)}” is not one of {', '.join(OUTCOME_CHOICES)}")
    return text


def encode_brush(brush: Brush) -> str:
    t0, t1, lo_ms, hi_ms = brush
    return f"{_iso_z(t0)}~{_iso_z(t1)}~{lo_ms!r}~{hi_ms!r}"


def _iso_z(ts: datetime) -> str:
    """ISO 8601 in UTC with ``Z``: nothing in it needs escaping in a URL."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def decode_brush(text: str) -> Brush:
    parts = text.split("~")
    if len(parts) != 4:
        raise ValueError("a brush is from~to~low_ms~high_ms")
    try:
        t0, t1 = sorted((parse_time(parts[0]), parse_time(parts[1])))
        lo_ms, hi_ms = sorted((float(parts[2]), float(parts[3])))
    except ValueError:
        raise ValueError(f"“{_short(text)}” is not a brush (from~to~low_ms~high_ms)") from None
    if not (math.isfinite(lo_ms) and math.isfinite(hi_ms)):
        raise ValueError("a brush needs finite latencies")
    if t0 == t1:
        raise ValueError("a brush needs a time range")
    return t0, t1, lo_ms, hi_ms


def _trace_id(text: str) -> str:
    if not _TRACE_ID.fullmatch(text):
        raise ValueError(f"“{_short(text)}” is not a trace id")
    return text


OUTCOME = Param("outcome", "vs_cohorts_outcome", str, _outcome)
BRUSH = Param("brush", "vs_cohorts_brush", encode_brush, decode_brush)
TRACE = Param("trace", "traces_trace_id", str, _trace_id)


@dataclass(frozen=True)
class ViewState:
    """The global filter plus one page's own values (by URL name; absent = the page's default)."""

    filter: Filter = Filter()
    page: tuple[tuple[str, Any], ...] = ()

    def value(self, name: str) -> Any:
        return dict(self.page).get(name)


def to_params(view: ViewState, params: tuple[Param, ...]) -> dict[str, str | list[str]]:
    """The URL (and snapshot) form of a view: the filter plus every page value that is set."""
    out = view.filter.to_params()
    by_name = {p.name: p for p in params}
    for name, value in view.page:
        if name in by_name and value is not None:
            out[name] = by_name[name].encode(value)
    return out


def from_params(raw: Mapping[str, list[str] | str], params: tuple[Param, ...]) -> tuple[ViewState, tuple[Notice, ...]]:
    """Read a view from URL-style params (lists = repeated keys). Never raises; anything dropped
    or changed comes back as a Notice."""
    given = {str(k): ([v] if isinstance(v, str) else [str(x) for x in v]) for k, v in raw.items()}
    flt, notices = parse_filter(given)
    page: list[tuple[str, Any]] = []
    for param in params:
        text = _last(given, param.name)
        if text is None or text == "":
            continue
        try:
            page.append((param.name, param.decode(_clean(text))))
        except ValueError as exc:
            notices.append(Notice(param.name, f"The link's {param.name} was not applied: {exc}."))
    return ViewState(flt, tuple(page)), tuple(notices)


def parse_filter(params: Mapping[str, list[str]]) -> tuple[Filter, list[Notice]]:
    """The global filter from URL params, with a notice for every value that was not applied."""
    notices: list[Notice] = []
    start = end = None
    raw_from, raw_to = _last(params, "from"), _last(params, "to")
    if raw_from or raw_to:
        try:
            start, end = parse_time(_clean(raw_from or "")), parse_time(_clean(raw_to or ""))
        except ValueError:
            notices.append(Notice("from", "The link's time window could not be read (from/to must both be ISO "
                                          "times): showing the whole window."))
        else:
            if not start < end:
                notices.append(
                    Notice("from", "The link's time window ends before it starts: showing the whole window.")
                )
                start = end = None
    cohort: list[tuple[str, str]] = []
    chips = params.get("cohort", [])
    for chip in chips:
        key, sep, value = chip.partition("=")
        try:
            key, value = _clean(key), _clean(value)
        except ValueError as exc:
            notices.append(Notice("cohort", f"A cohort chip was not applied: {exc}."))
            continue
        if not (sep and key):
            notices.append(Notice("cohort", f"“{_short(chip)}” is not a cohort chip (attribute=value): not applied."))
        elif len(cohort) >= MAX_CHIPS:
            notices.append(Notice("cohort", f"At most {MAX_CHIPS} cohort chips: “{_short(chip)}” was not applied."))
        elif (key, value) not in cohort:
            cohort.append((key, value))
    service = None
    raw_service = _last(params, "service") or ""  # "" is the absent form; anything else is kept as it is
    if raw_service:
        try:
            service = _clean(raw_service)
        except ValueError as exc:
            notices.append(Notice("service", f"The link's service was not applied: {exc}."))
    return Filter(start, end, tuple(cohort), service), notices


def clamp_window(flt: Filter, start: datetime, end: datetime) -> tuple[Filter, Notice | None]:
    """Fit the filter's time window into the data's window ``[start, end]``: cut it where it sticks out,
    drop it when it lies wholly outside; say what was done."""
    if not (flt.start and flt.end) or (flt.start >= start and flt.end <= end):
        return flt, None
    asked = f"{flt.start:%Y-%m-%d %H:%M}–{flt.end:%H:%M} UTC"
    have = f"{start:%H:%M}–{end:%H:%M} UTC"
    lo, hi = max(flt.start, start), min(flt.end, end)
    if lo >= hi:
        return (Filter(None, None, flt.cohort, flt.service),
                Notice("from", f"The time window {asked} lies outside the data ({have}): showing the whole window."))
    if lo == start and hi == end:
        return Filter(None, None, flt.cohort, flt.service), Notice(
            "from", f"The time window {asked} covers more than the data ({have}): showing the whole window.")
    return (Filter(lo, hi, flt.cohort, flt.service),
            Notice("from", f"The time window {asked} reaches outside the data ({have}): cut to "
                           f"{lo:%H:%M}–{hi:%H:%M} UTC."))


def _shown(value: str) -> str:
    """A value as text that survives being put between Markdown emphasis marks: quoted when empty or
    padded with spaces (``**region = **`` would not render)."""
    return f"“{value}”" if value == "" or value != value.strip() else value


def _clean(text: str) -> str:
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError(f"a value longer than {MAX_VALUE_CHARS} characters")
    if _CONTROL.search(text):
        raise ValueError("a value with control characters")
    return text


def _short(text: str, limit: int = 60) -> str:
    text = _CONTROL.sub("?", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _last(params: Mapping[str, list[str]], key: str) -> str | None:
    values = params.get(key) or []
    return values[-1] if values else None
