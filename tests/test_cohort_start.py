"""A start that fits the cohort: slow ramps and 3-attribute cohorts (analysis.cohort.investigate)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from analysis.changepoint import change_point, change_point_of_buckets, ramp_onset, rate_buckets
from analysis.cohort import investigate
from analysis.outcome import with_outcome
from config import SloConfig
from model.semconv import resolve_roles
from tests.cohort_data import SLO_MS, STANDARD, T0, make_requests

SLO = SloConfig(default_ms=SLO_MS)
TRUE_START = T0 + timedelta(minutes=40)
COHORT = {"region": "us-east", "client_version": "5.1.0", "platform": "ios"}


def _in_cohort(row: dict[str, object]) -> bool:
    return all(row[f"attr.{k}"] == v for k, v in COHORT.items())


def _ramp(seed: int, ramp_minutes: float) -> pl.DataFrame:
    return make_requests(20_000, STANDARD, in_incident=_in_cohort, incident_effect="error", incident_prob=0.9,
                         base_error=0.03, ramp_minutes=ramp_minutes, seed=seed)


@pytest.mark.parametrize(("seed", "ramp_minutes"), [(2, 5.0), (3, 3.0), (3, 5.0), (6, 5.0), (7, 5.0)])
def test_auto_start_finds_the_cohort_of_the_true_start(seed: int, ramp_minutes: float) -> None:
    """The cohort degrades over 3–5 minutes; the auto-detected window must give the true start's answer."""
    requests = _ramp(seed, ramp_minutes)
    roles = resolve_roles(requests.columns)
    truth = investigate(requests, SLO, roles, start=TRUE_START)
    auto = investigate(requests, SLO, roles)
    assert dict(truth.cohorts[0].pairs) == COHORT
    assert dict(auto.cohorts[0].pairs) == COHORT
    assert truth.start_detected_from == "given" and truth.first_start is None
    assert auto.start_detected and auto.first_start is not None and auto.start is not None
    assert auto.start_detected_from in ("total", "cohort")
    if auto.start_detected_from == "cohort":
        assert "re-detected on the cohort" in auto.how and auto.first_how and auto.first_how != auto.how
        # the cohort's own rate puts the start at least as close to the truth as the total did
        assert abs(auto.start - TRUE_START) <= abs(auto.first_start - TRUE_START)
    assert abs(auto.start - TRUE_START) <= timedelta(minutes=ramp_minutes)
    report = auto.as_dict()
    assert report["start_detected_from"] == auto.start_detected_from
    assert report["first_start"] == auto.first_start.isoformat()


def test_a_late_total_start_is_moved_back_by_the_cohort() -> None:
    """Seed 2 with a 5-minute ramp: the total rate's step lands 8 minutes late; the cohort's does not."""
    requests = _ramp(2, 5.0)
    auto = investigate(requests, SLO, resolve_roles(requests.columns))
    assert auto.first_start is not None and auto.start is not None
    assert auto.first_start - TRUE_START > timedelta(minutes=5)  # the failure the refinement is for
    assert auto.start_detected_from == "cohort"
    assert abs(auto.start - TRUE_START) <= timedelta(minutes=2)


def test_ramp_onset_walks_back_from_a_step_inside_the_climb() -> None:
    requests = with_outcome(_ramp(3, 5.0), SLO).filter(
        *[pl.col(f"attr.{k}") == v for k, v in COHORT.items()]
    )
    bucketed = rate_buckets(requests)
    assert bucketed is not None
    found = change_point_of_buckets(*bucketed)
    assert found is not None and found.clear and found == change_point(requests)
    onset = ramp_onset(bucketed[0], found)
    assert onset <= found.start
    assert abs(onset - TRUE_START) <= abs(found.start - TRUE_START)


def test_given_window_is_not_redetected() -> None:
    requests = _ramp(3, 5.0)
    given = investigate(requests, SLO, resolve_roles(requests.columns), start=TRUE_START + timedelta(minutes=3))
    assert given.start == TRUE_START + timedelta(minutes=3) and given.start_detected_from == "given"
