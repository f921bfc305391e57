"""The incident period, the top suspect cohort and the Cohorts page's analysis, as every page shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from analysis.cohort import (
    Cohort,
    Investigation,
    cohort_label,
    detect_incident_start,
    detect_start,
    find_cohorts,
    investigate,
    rank_values,
)
from analysis.origin import Origin, cohort_origins
from analysis.outcome import OUTCOMES, Outcome, outcome_column
from config import SloConfig
from model.semconv import Roles, resolve_roles
from ui import data, pushdown, state

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
    pushed = pushdown.pushed_investigation(requests, outcome, None, None)
    whole = pushed.counted.investigation if pushed is not None and pushed.counted is not None else None
    if whole is not None and whole.start is not None:
        return IncidentPeriod(whole.start, None, whole.how)
    found = detect_start(requests, data.slo(), roles(requests), outcome)  # the CLI's start: refined on the cohort
    start = found.start or detect_incident_start(requests, outcome_column(outcome))[0]
    return IncidentPeriod(start, None, found.how)


def roles(requests: pl.DataFrame) -> Roles:
    """Which attribute is the user, the tenant, the region, … in these requests (``sources.yaml`` first)."""
    return resolve_roles(requests.columns, data.app_config().attributes)


def investigation(requests: pl.DataFrame, period: IncidentPeriod, outcome: Outcome = "bad") -> Investigation:
    """Cohorts, ranking and blast radius of the incident period: what ``python -m analysis cohort`` says too.

    Over every request of the window when the spans source counts them itself (:mod:`ui.pushdown`)."""
    pushed = pushed_counts(requests, period, outcome)
    if pushed is not None and pushed.counted is not None:
        return pushed.counted.investigation
    return data.memo(_investigation, requests, period, outcome, roles(requests), data.slo())


def pushed_counts(requests: pl.DataFrame, period: IncidentPeriod, outcome: Outcome = "bad") -> pushdown.Pushed | None:
    """The pushed-down answer behind :func:`investigation` (None when the requests in memory answered):
    pages say what the figures were computed over from it."""
    return pushdown.pushed_investigation(requests, outcome, period.start, period.end)


def _investigation(requests: pl.DataFrame, period: IncidentPeriod, outcome: Outcome, roles: Roles,
                   slo: SloConfig) -> Investigation:
    return investigate(requests, slo, roles, outcome, period.start, period.end)


def top_suspect(requests: pl.DataFrame, period: IncidentPeriod) -> Suspect | None:
    found = investigation(requests, period).cohorts
    if not found:
        return None
    best = found[0]
    pairs = tuple((k, str(v)) for k, v in best.pairs)
    return Suspect(pairs, cohort_label(pairs), best.describe())


def suspect_origin(period: IncidentPeriod, suspect: Suspect) -> Origin | None:
    """Where the suspect's failure starts in its own traces against the baseline's (analysis.origin)."""
    found = data.memo(cohort_origins, data.filtered_spans(whole_window=True), suspect.pairs, period.start, period.end)
    return found[0] if found else None


def cohort_view(requests: pl.DataFrame, brush: Brush | None, outcome: str,
                period: IncidentPeriod) -> tuple[pl.DataFrame, list[Cohort]]:
    """Ranking and cohorts for the Cohorts page.

    With a brush (t0, t1, lo_ms, hi_ms) the outcome is "in that latency band" and the selection is the
    brushed time range against the time before it (BubbleUp semantics); else the incident period,
    through :func:`investigation`.
    """
    if brush is None:
        found = investigation(requests, period, _outcome(outcome))
        return found.ranking, list(found.cohorts)
    return data.memo(_brushed_view, requests, brush, roles(requests))


def cohort_view_counts(requests: pl.DataFrame, brush: Brush | None, outcome: str,
                       period: IncidentPeriod) -> pushdown.Pushed | None:
    """What :func:`cohort_view` was counted over when the spans source counted it (never for a brush)."""
    return None if brush is not None else pushed_counts(requests, period, _outcome(outcome))


def _outcome(text: str) -> Outcome:
    """The page's radio value as an :data:`Outcome` (anything else is "bad")."""
    return next((o for o in OUTCOMES if o == text), "bad")


def _brushed_view(requests: pl.DataFrame, brush: Brush, roles: Roles) -> tuple[pl.DataFrame, list[Cohort]]:
    t0, t1, lo_ms, hi_ms = brush
    requests = requests.with_columns(is_bad=pl.col("duration_ms").is_between(lo_ms, hi_ms))
    ranking = rank_values(requests, (t0, t1), "bad", roles=roles)
    return ranking, find_cohorts(requests, (t0, t1), "bad", ranking=ranking, roles=roles)
