"""The whole investigation of an incident window: the one answer the app and the command line give."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import polars as pl

from analysis.blast_radius import BlastRadius, blast_radius
from analysis.changepoint import Onset, onset_of_buckets, rate_buckets
from analysis.cohort.describe import Cohort, cohort_label
from analysis.cohort.find import cohort_mask, find_cohorts
from analysis.cohort.rank import rank_values
from analysis.cohort.search import Pairs
from analysis.outcome import Outcome, outcome_column, with_outcome
from analysis.periods import Split, split_requests
from config import SloConfig
from model.semconv import ROLE_NAMES, Roles

StartSource = Literal["given", "total", "cohort"]


@dataclass(frozen=True)
class Investigation:
    """Who is affected and how far it reaches, for one outcome and one incident window.

    ``start``/``how`` are the window the cohorts were found over. ``start_detected_from`` says
    where it came from: ``"given"`` (the caller's window), ``"total"`` (the change point of the
    whole bad rate) or ``"cohort"`` (re-detected on the first cohort's own bad rate, then searched
    again); ``first_start``/``first_how`` keep the total rate's start whenever it was detected.
    """

    outcome: Outcome
    start: datetime | None
    end: datetime | None
    start_detected: bool
    how: str
    roles: Roles
    ranking: pl.DataFrame  # analysis.cohort.rank_values
    cohorts: tuple[Cohort, ...]  # best first
    blast: BlastRadius
    start_detected_from: StartSource = "given"
    first_start: datetime | None = None
    first_how: str = ""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: the report of ``python -m analysis cohort --json`` (plus each cohort's description)."""
        radius = self.blast
        return {
            "incident_start": self.start.isoformat() if self.start is not None else None,
            "start_detected": self.start_detected,
            "how": self.how,
            "start_detected_from": self.start_detected_from,
            "first_start": self.first_start.isoformat() if self.first_start is not None else None,
            "outcome": self.outcome,
            "attributes": {role: self.roles.key(role) for role in ROLE_NAMES if self.roles.key(role)},
            "cohorts": [c.as_dict() | {"description": c.describe()} for c in self.cohorts],
            "blast_radius": {
                "requests": radius.requests,
                "bad": radius.bad,
                "excess_bad": round(radius.excess_bad, 3),
                "users_affected": radius.users_affected,
                "excess_users": None if radius.excess_users is None else round(radius.excess_users, 3),
                "tenants_affected": None if radius.tenants_affected is None else list(radius.tenants_affected),
                "regions_affected": None if radius.regions_affected is None else list(radius.regions_affected),
                "unknown": dict(radius.unknown),
            },
        }


def investigate(
    requests: pl.DataFrame,
    slo: SloConfig,
    roles: Roles,
    outcome: Outcome = "bad",
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    top: int = 10,
) -> Investigation:
    """Rank every attribute value, find the cohorts and measure the blast radius of one window.

    ``requests`` are root spans (their outcome columns are computed here from ``slo``); the window
    runs from ``start`` (detected from the rate of ``outcome`` when None) to ``end`` (open when None).
    """
    requests = with_outcome(requests, slo)
    if start is None and end is None:
        found = _detected(requests, outcome, roles, top)
        split, ranking, cohorts = found.split, found.ranking, found.cohorts
        source, first_start, first_how = found.source, found.first_start, found.first_how
    else:
        split = split_requests(requests, (start, end), outcome)
        ranking = rank_values(requests, outcome=outcome, split=split, roles=roles)
        cohorts = find_cohorts(requests, outcome=outcome, split=split, ranking=ranking, roles=roles, top=top)
        source, first_start, first_how = "given", None, ""
    radius = blast_radius(*split.parts(), outcome_column(outcome), roles=roles)
    return Investigation(outcome, split.start, end, split.start_detected, split.how, roles, ranking,
                         tuple(cohorts), radius, source, first_start, first_how)


@dataclass(frozen=True)
class DetectedStart:
    """An incident start found without a given window, and how (see :class:`Investigation`)."""

    start: datetime | None
    how: str
    source: StartSource
    first_start: datetime | None
    first_how: str


@dataclass(frozen=True)
class _Found:
    split: Split
    ranking: pl.DataFrame
    cohorts: list[Cohort]
    source: StartSource
    first_start: datetime | None
    first_how: str


def _detected(requests: pl.DataFrame, outcome: Outcome, roles: Roles, top: int) -> _Found:
    """Start from the total bad rate, then (when the first cohort's own rate says otherwise) again."""
    split = split_requests(requests, None, outcome)
    ranking = rank_values(requests, outcome=outcome, split=split, roles=roles)
    cohorts = find_cohorts(requests, outcome=outcome, split=split, ranking=ranking, roles=roles, top=top)
    first = _Found(split, ranking, cohorts, "total", split.start, split.how)
    refined = cohort_split(requests, cohorts[0].pairs, outcome, split) if cohorts else None
    if refined is None:
        return first
    again_ranking = rank_values(requests, outcome=outcome, split=refined, roles=roles)
    again = find_cohorts(requests, outcome=outcome, split=refined, ranking=again_ranking, roles=roles, top=top)
    if not again:  # nothing found over the refined window: the first answer stands
        return first
    return _Found(refined, again_ranking, again, "cohort", split.start, split.how)


def detect_start(requests: pl.DataFrame, slo: SloConfig, roles: Roles, outcome: Outcome = "bad") -> DetectedStart:
    """The start :func:`investigate` detects when no window is given (pages show the same one)."""
    found = _detected(with_outcome(requests, slo), outcome, roles, 1)
    return DetectedStart(found.split.start, found.split.how, found.source, found.first_start, found.first_how)


def cohort_split(requests: pl.DataFrame, pairs: Pairs, outcome: Outcome, first: Split) -> Split | None:
    """The incident window re-detected on one cohort's own bad rate (None when it says nothing new).

    The total bad rate mixes the cohort with everyone else, so its change point can land minutes
    late on a slow ramp, and a search over the late window sees a blurred cohort. Over the
    cohort's own requests the step is sharper; :func:`analysis.changepoint.ramp_onset` then walks
    back to where the climb began. The window starts there, against the time before it.
    """
    flag = outcome_column(outcome)
    bucketed = rate_buckets(requests.filter(cohort_mask(pairs, requests.columns)), flag)
    onset = onset_of_buckets(*bucketed, flag) if bucketed is not None else None
    if onset is None or onset.start == first.start:
        return None
    split = split_requests(requests, (onset.start, None), outcome)
    return replace(split, start_detected=True, how=refined_how(pairs, onset))


def refined_how(pairs: Pairs, onset: Onset) -> str:
    """How a start re-detected on a cohort's own rate was found, in words."""
    walked = "" if onset.start == onset.found.start else f"; its climb began at {onset.start:%H:%M:%S} UTC"
    return (f"re-detected on the cohort's own {onset.found.what} rate ({cohort_label(pairs)}) — "
            f"{onset.found.describe()}{walked}")
