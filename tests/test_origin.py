"""Where a cohort's failure starts (analysis.origin): own traces against the baseline's."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis.origin import Origin, cohort_origins, origins
from tests.conftest import app_test
from tests.span_builders import T0, frame, span

demo = pytest.importorskip("connectors.demo")
START = T0 + timedelta(seconds=60)  # trace i starts at i seconds; version 2 degrades from trace 60 on


def _trace(
    i: int, start_ms: float, *, db_ms: float = 20.0, db_error: bool = False, version: str = "1"
) -> list[dict[str, Any]]:
    """gateway → api → db; the api waits for the db, so only the db's self time grows with ``db_ms``."""
    t = str(i)
    status = "error" if db_error else "ok"
    return [
        span(t, "1", None, "gateway", "GET /x", start_ms, db_ms + 40.0, status=status, client_version=version),
        span(t, "2", "1", "api", "GET /x", start_ms + 10.0, db_ms + 20.0, status=status),
        span(t, "3", "2", "db", "SELECT", start_ms + 20.0, db_ms, status=status),
    ]


def _spans(cohort_db_ms: float = 20.0, cohort_errors: bool = False) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for i in range(60):  # before the start (t < 60 s): everyone healthy
        rows += _trace(i, i * 1000.0, version="2" if i % 2 else "1")
    for i in range(60, 120):  # after: version 2 degrades at the db
        bad = i % 2 == 1
        rows += _trace(i, i * 1000.0, version="2" if bad else "1",
                       db_ms=cohort_db_ms if bad else 20.0, db_error=cohort_errors and bad)
    return frame(rows)


def test_extra_time_is_charged_to_the_callee_that_spends_it() -> None:
    spans = _spans(cohort_db_ms=2_020.0)
    found = cohort_origins(spans, (("client_version", "2"),), START)
    assert found and (found[0].service, found[0].operation) == ("db", "SELECT")
    assert found[0].extra_ms == pytest.approx(2_000.0)
    assert all(o.service != "api" and o.service != "gateway" for o in found)  # waiting is not self time
    assert found[0].cohort_traces == 30 and found[0].baseline_traces == 30
    assert found[0].sentence() == "time goes to db: SELECT, +2.0 s vs its own baseline"


def test_errors_start_where_no_child_failed() -> None:
    spans = _spans(cohort_errors=True)
    found = cohort_origins(spans, (("client_version", "2"),), START, by="errors")
    assert [(o.service, o.error_share_delta) for o in found] == [("db", 1.0)]  # gateway/api only relay it
    assert "errors start at db: SELECT" in found[0].sentence("errors")


def test_nothing_worse_no_origin() -> None:
    spans = _spans()
    assert cohort_origins(spans, (("client_version", "2"),), START) == ()
    assert origins(spans.head(0), spans) == ()


def test_demo_slow_cohort_time_goes_to_fraud() -> None:
    truth = demo.ground_truth()
    spans = demo.demo_frames(seed=7, requests=60_000)["spans"]
    found = cohort_origins(spans, tuple(truth["slow_cohort"].items()), truth["incident_start"])
    assert found, "the slow cohort must have an origin"
    top: Origin = found[0]
    assert top.service == truth["slow_service"]
    low, _ = truth["slow_cohort_duration_ms"]
    assert top.extra_ms > 0.5 * low  # most of the ~10 s the cohort's requests take goes there
    assert top.extra_ms > 20 * max(o.extra_ms for o in found[1:])
    assert top.sentence().startswith(f"time goes to {truth['slow_service']}: ")


def test_overview_says_where_the_top_suspect_starts(small_demo: Path) -> None:
    at = app_test()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    lines = [md.value for md in at.markdown if md.value.startswith("**Where it starts:**")]
    assert len(lines) == 1 and "time goes to fraud" in lines[0] and "POST /score" in lines[0], lines
