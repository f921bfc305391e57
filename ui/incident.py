"""The incident period, the top suspect cohort and the Cohorts page's analysis, as every page shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from analysis.cohort import Cohort, detect_incident_start, find_cohorts, rank_values
from analysis.outcome import Outcome, outcome_column
from ui import data, state

Brush = tuple[datetime, datetime, float, float]


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


def incident_period(outcome: Outcome = "bad") -> IncidentPeriod:
    """The selected time window if the user set one, else the incident start detected from the rate
    of ``outcome`` (errors may start later than slowness) to the end."""
    flt = state.current_filter()
    if flt.start and flt.end:
        return IncidentPeriod(flt.start, flt.end, "the time window selected in the filter")
    return data.memo(_detected, data.all_requests(), outcome)


def _detected(requests: pl.DataFrame, outcome: Outcome) -> IncidentPeriod:
    start, how = detect_incident_start(requests, outcome_column(outcome))
    return IncidentPeriod(start, None, how)


def top_suspect(requests: pl.DataFrame, period: IncidentPeriod) -> Suspect | None:
    return data.memo(_suspect, requests, period)


def _suspect(requests: pl.DataFrame, period: IncidentPeriod) -> Suspect | None:
    found = find_cohorts(requests, (period.start, period.end))
    if not found:
        return None
    best = found[0]
    pairs = tuple((k.removeprefix("attr."), str(v)) for k, v in best.pairs)
    return Suspect(pairs, " AND ".join(f"{k}={v}" for k, v in pairs), best.describe())


def cohort_view(requests: pl.DataFrame, brush: Brush | None, outcome: str,
                period: IncidentPeriod) -> tuple[pl.DataFrame, list[Cohort]]:
    """Ranking and cohorts for the Cohorts page.

    With a brush (t0, t1, lo_ms, hi_ms) the outcome is "in that latency band" and the selection is the
    brushed time range against the time before it (BubbleUp semantics); else the incident period.
    """
    return data.memo(_cohort_view, requests, brush, outcome, period)


def _cohort_view(requests: pl.DataFrame, brush: Brush | None, outcome: str,
                 period: IncidentPeriod) -> tuple[pl.DataFrame, list[Cohort]]:
    selection: tuple[datetime | None, datetime | None] = (period.start, period.end)
    if brush is not None:
        t0, t1, lo_ms, hi_ms = brush
        requests = requests.with_columns(is_bad=pl.col("duration_ms").is_between(lo_ms, hi_ms))
        outcome, selection = "bad", (t0, t1)
    ranking = rank_values(requests, selection, outcome)  # type: ignore[arg-type]
    return ranking, find_cohorts(requests, selection, outcome, ranking=ranking)  # type: ignore[arg-type]
