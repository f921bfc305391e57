"""The pages answer through the aggregate seam on a ClickHouse source: every request, not the sample.

The app reads a sample of whole traces from ClickHouse for its charts, but the incident period, cohorts
and blast radius on the Overview and Cohorts pages are counted in ClickHouse over every request of the
window (``ui/pushdown.py``), and say so. Checked against ``python -m analysis cohort --sources`` on the
same real engine (chdb behind ``tests/clickhouse_front.py``).
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import polars as pl
import pytest

from analysis.outcome import roots
from cli import main
from tests.conftest import app_test, run_until_drawn
from tests.test_clickhouse_cli import PASSWORD, USER, Setup, setup  # noqa: F401 — the module's chdb front

pytestmark = pytest.mark.skipif(importlib.util.find_spec("chdb") is None,
                                reason="chdb (requirements-dev.txt) is not installed")
BUDGET_TRACES = 300  # of the window's 3,000: what the pages draw from is a 10 % sample


def _cli_report(ch: Setup, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    path = ch.sources(_source(ch))
    assert main(["cohort", "--sources", str(path), "--secrets", str(ch.folder / "secrets.toml"),
                 "--slo-ms", "2000", "--json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def _captions(at: Any) -> str:
    """Every caption of the run as one text, without md_escape's backslashes."""
    return " ".join(c.value for c in at.caption).replace("\\", "")


def _source(ch: Setup) -> dict[str, Any]:
    return {"name": "ch", "type": "clickhouse", "timeout_s": 60,
            "options": {"url": ch.front.url, "database": "otel", "table": "otel_traces"}}


@pytest.fixture
def app(setup: Setup, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:  # noqa: F811
    path = setup.sources(_source(setup))
    text = json.loads(path.read_text(encoding="utf-8")) | {"slo": {"default_ms": 2000}}
    path.write_text(json.dumps(text), encoding="utf-8")
    monkeypatch.setenv("FAULTLINE_SOURCES", str(path))
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.setenv("FAULTLINE_WINDOW_BUDGET_TRACES", str(BUDGET_TRACES))
    at = app_test()
    at.secrets["connections"] = {"ch": {"username": USER, "password": PASSWORD}}
    return at


def test_overview_counts_every_request_in_clickhouse(setup: Setup, app: Any,  # noqa: F811
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    want = _cli_report(setup, capsys)
    at = run_until_drawn(app)
    n_requests = roots(setup.spans).height
    captions = _captions(at)
    assert f"Computed over all {n_requests:,} requests in ClickHouse otel.otel_traces" in captions
    excess = next(m for m in at.metric if m.label == "Bad requests (excess)")
    assert excess.value == f"{want['blast_radius']['excess_bad']:,.0f}"  # exact: no "≈", not scaled from the sample
    users = next(m for m in at.metric if m.label == "Users affected")
    assert users.value == f"{want['blast_radius']['excess_users']:,.0f}"
    top = want["cohorts"][0]["cohort"]
    label = " AND ".join(f"{k}={v}" for k, v in sorted(top.items()))
    assert any(label in m.value for m in at.markdown), label
    start = want["incident_start"][11:16]
    assert any(f"Incident since {start} UTC" in m.value for m in at.markdown)


def test_the_sample_alone_would_say_something_else(setup: Setup, app: Any,  # noqa: F811
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The proof that the seam answered: with pushdown off, the same page shows the sample's scaled counts."""
    from ui import pushdown

    monkeypatch.setattr(pushdown, "pushdown_source", lambda: None)
    at = run_until_drawn(app)
    captions = _captions(at)
    assert "sampled evenly across the window" in captions and "in ClickHouse" not in captions
    excess = next(m for m in at.metric if m.label == "Bad requests (excess)")
    assert excess.value.startswith("≈")


def test_a_cohort_filter_is_counted_in_clickhouse_too(setup: Setup, app: Any,  # noqa: F811
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The filter's keys are the user's (``region``), not frame columns: ClickHouse must count the cohort."""
    top = _cli_report(setup, capsys)["cohorts"][0]["cohort"]
    at = run_until_drawn(app)
    at.button(key="overview_apply_suspect").click()
    at = run_until_drawn(at)
    in_cohort = roots(setup.spans)
    for key, value in top.items():
        column = key if key in in_cohort.columns else f"attr.{key}"
        in_cohort = in_cohort.filter(pl.col(column).cast(pl.String) == str(value))
    assert 0 < in_cohort.height < roots(setup.spans).height
    captions = _captions(at)
    assert f"Computed over all {in_cohort.height:,} requests in ClickHouse otel.otel_traces matching the filter" \
        in captions, captions


def test_a_stopped_front_gives_a_notice_and_the_sample(setup: Setup, app: Any) -> None:  # noqa: F811
    # last in the module: it stops the module's front
    at = run_until_drawn(app)
    setup.front.stop()  # mid-session: the window's sample is loaded, the next pushdown cannot reach ClickHouse
    at.switch_page("views/cohorts.py").run()
    at.radio(key="cohort_outcome").set_value("slow").run()  # a scope no earlier test counted: it must be asked
    assert not at.exception, [e.value for e in at.exception]
    captions = _captions(at)
    assert "could not count the whole window" in captions and "sampled evenly" in captions, captions
    assert "counted where the spans are" not in captions
    assert any(h.value == "Who is affected" for h in at.subheader), "the page must still draw its analysis"
