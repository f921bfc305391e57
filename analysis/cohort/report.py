"""The whole investigation of an incident window: the one answer the app and the command line give."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from analysis.blast_radius import BlastRadius, blast_radius
from analysis.cohort.describe import Cohort
from analysis.cohort.find import find_cohorts
from analysis.cohort.rank import rank_values
from analysis.outcome import Outcome, outcome_column, with_outcome
from analysis.periods import split_requests
from config import SloConfig
from model.semconv import ROLE_NAMES, Roles


@dataclass(frozen=True)
class Investigation:
    """Who is affected and how far it reaches, for one outcome and one incident window."""

    outcome: Outcome
    start: datetime | None
    end: datetime | None
    start_detected: bool
    how: str
    roles: Roles
    ranking: pl.DataFrame  # analysis.cohort.rank_values
    cohorts: tuple[Cohort, ...]  # best first
    blast: BlastRadius

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: the report of ``python -m analysis cohort --json`` (plus each cohort's description)."""
        radius = self.blast
        return {
            "incident_start": self.start.isoformat() if self.start is not None else None,
            "start_detected": self.start_detected,
            "how": self.how,
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
    split = split_requests(requests, None if start is None and end is None else (start, end), outcome)
    ranking = rank_values(requests, outcome=outcome, split=split, roles=roles)
    cohorts = find_cohorts(requests, outcome=outcome, split=split, ranking=ranking, roles=roles, top=top)
    radius = blast_radius(*split.parts(), outcome_column(outcome), roles=roles)
    return Investigation(outcome, split.start, end, split.start_detected, split.how, roles, ranking,
                         tuple(cohorts), radius)
