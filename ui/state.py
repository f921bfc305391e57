"""The global filter, held in session state and mirrored in the URL so a copied link reopens the view.

URL form: ``?from=<ISO>&to=<ISO>&cohort=region%3Deu-west-1&cohort=client_version%3D5.2.0&service=payments``
(plus ``snapshot=<id>`` when a snapshot is open). Streamlit drops unbound query params on page
navigation, so :func:`sync_url` rewrites them on every run (STREAMLIT_NOTES §2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import streamlit as st

MAX_CHIPS = 8


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
        parts = [f"{k} = {v}" for k, v in self.cohort]
        if self.service:
            parts.append(f"service = {self.service}")
        if self.start and self.end:
            parts.append(f"{self.start:%H:%M}–{self.end:%H:%M} UTC")
        return " AND ".join(parts) if parts else "everything"


def parse_params(params: dict[str, list[str]]) -> Filter:
    """Build a Filter from URL query params; malformed values are ignored, never fatal."""
    start = _parse_time(_last(params, "from"))
    end = _parse_time(_last(params, "to"))
    if not (start and end and start < end):
        start = end = None
    cohort: list[tuple[str, str]] = []
    for chip in params.get("cohort", [])[:MAX_CHIPS]:
        key, sep, value = chip.partition("=")
        if sep and key.strip() and (key.strip(), value) not in cohort:
            cohort.append((key.strip(), value))
    service = (_last(params, "service") or "").strip() or None
    return Filter(start, end, tuple(cohort), service)


def _last(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key) or []
    return values[-1] if values else None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def init_from_url() -> None:
    """On a session's first run, seed the filter from the URL."""
    if "flt_loaded" in st.session_state:
        return
    params = {k: st.query_params.get_all(k) for k in st.query_params.keys()}
    flt = parse_params(params)
    _store(flt)
    st.session_state["flt_loaded"] = True


def current_filter() -> Filter:
    ss = st.session_state
    return Filter(ss.get("flt_start"), ss.get("flt_end"), tuple(ss.get("flt_cohort", ())), ss.get("flt_service"))


def _store(flt: Filter) -> None:
    st.session_state["flt_start"] = flt.start
    st.session_state["flt_end"] = flt.end
    st.session_state["flt_cohort"] = tuple(flt.cohort)
    st.session_state["flt_service"] = flt.service


def sync_url() -> None:
    """Mirror the filter into the query string, keeping any snapshot id."""
    wanted = current_filter().to_params()
    snapshot = st.query_params.get("snapshot")
    if snapshot:
        wanted["snapshot"] = snapshot
    current = {k: st.query_params.get_all(k) for k in st.query_params.keys()}
    normalised = {k: v if isinstance(v, list) else [v] for k, v in wanted.items()}
    if current != normalised:
        st.query_params.from_dict(wanted)


def set_cohort(pairs: Iterable[tuple[str, str]]) -> None:
    unique: list[tuple[str, str]] = []
    for key, value in pairs:
        if (key, value) not in unique:
            unique.append((str(key), str(value)))
    st.session_state["flt_cohort"] = tuple(unique[:MAX_CHIPS])


def add_cohort(key: str, value: str) -> None:
    """Add (or replace) one chip: a new value for the same attribute replaces the old one."""
    kept = [(k, v) for k, v in current_filter().cohort if k != key]
    set_cohort([*kept, (key, value)])


def set_time_window(start: datetime | None, end: datetime | None) -> None:
    if start and end and start > end:
        start, end = end, start
    st.session_state["flt_start"] = start
    st.session_state["flt_end"] = end


def set_service(name: str | None) -> None:
    st.session_state["flt_service"] = name or None


def clear() -> None:
    _store(Filter())
