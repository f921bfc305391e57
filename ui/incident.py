"""The incident period and the top suspect cohort, as every page shows them (cached per filter)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
import streamlit as st

from analysis.outcome import roots
from ui import data, state


@dataclass(frozen=True)
class IncidentPeriod:
    start: datetime
    end: datetime | None
    how: str


@dataclass(frozen=True)
class Suspect:
    pairs: tuple[tuple[str, str], ...]
    label: str
    sentence: str


def incident_period() -> IncidentPeriod:
    """The selected time window if the user set one, else the detected incident start to the end."""
    flt = state.current_filter()
    if flt.start and flt.end:
        return IncidentPeriod(flt.start, flt.end, "the time window selected in the filter")
    spans = data.all_spans()
    return _detected(id(spans), spans)


@st.cache_resource(show_spinner=False, max_entries=8)
def _detected(frame_id: int, _spans: pl.DataFrame) -> IncidentPeriod:
    from analysis.cohort import detect_incident_start

    requests = roots(_spans)
    start, how = detect_incident_start(requests)
    return IncidentPeriod(start, None, how)


def top_suspect(requests: pl.DataFrame, period: IncidentPeriod) -> Suspect | None:
    return _suspect(id(requests), requests, period)


@st.cache_resource(show_spinner=False, max_entries=16)
def _suspect(frame_id: int, _requests: pl.DataFrame, period: IncidentPeriod) -> Suspect | None:
    from analysis.cohort import find_cohorts

    found = find_cohorts(_requests, (period.start, period.end))
    if not found:
        return None
    best = found[0]
    pairs = tuple((k.removeprefix("attr."), str(v)) for k, v in best.pairs)
    return Suspect(pairs, " AND ".join(f"{k}={v}" for k, v in pairs), best.describe())
