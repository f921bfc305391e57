"""The view state on real pages (AppTest over app.py on the small demo): links that never crash, page
state through URL and snapshot, and snapshots that show what the live page showed."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import app_test

PAGES = ["overview", "cohorts", "traces", "service_map", "breakers", "pools", "snapshots", "sources"]
BRUSH = "2026-03-14T02:30:00Z~2026-03-14T02:50:00Z~9000.0~13000.0"


def _param(at: AppTest, key: str) -> list[str]:
    value = at.query_params.get(key, [])
    return value if isinstance(value, list) else [value]


def _sidebar_warnings(at: AppTest) -> list[str]:
    return [w.value.replace("\\", "") for w in at.sidebar.warning]  # Markdown-escaped


def _open(page: str, **params: str | list[str]) -> AppTest:
    at = app_test()
    for key, value in params.items():
        at.query_params[key] = value
    if page != "overview":
        at.switch_page(f"views/{page}.py")
    at.run()
    return at


@pytest.mark.parametrize("page", PAGES)
def test_a_window_outside_the_data_gives_a_notice_on_every_page(small_demo: Path, page: str) -> None:
    at = _open(page, **{"from": "2026-03-14T01:50:00Z", "to": "2026-03-14T01:55:00Z"})
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["flt_start"] is None and at.session_state["flt_end"] is None
    assert any("outside the data" in w for w in _sidebar_warnings(at)), _sidebar_warnings(at)
    assert "from" not in at.query_params  # the URL shows what is applied


def test_a_window_reaching_outside_is_cut_and_the_url_follows(small_demo: Path) -> None:
    at = _open("overview", **{"from": "2026-03-14T01:50:00Z", "to": "2026-03-14T02:30:00Z"})
    assert not at.exception
    assert at.session_state["flt_start"].isoformat() == "2026-03-14T02:00:00+00:00"
    assert any("cut to 02:00–02:30" in w for w in _sidebar_warnings(at))
    assert _param(at, "from") == ["2026-03-14T02:00:00+00:00"]
    assert _param(at, "to") == ["2026-03-14T02:30:00+00:00"]


def test_unknown_service_and_chips_are_named_and_shown_as_applied(small_demo: Path) -> None:
    at = _open("overview", service="nosuch", cohort=["nosuchattr=x", "region=mars"])
    assert not at.exception, [e.value for e in at.exception]
    warnings = " ".join(_sidebar_warnings(at))
    assert "nosuch" in warnings and "nosuchattr" in warnings and "mars" in warnings
    assert at.selectbox(key="w_service").value == "nosuch"  # the control shows what is applied


def test_hostile_urls_never_crash(small_demo: Path) -> None:
    at = _open("cohorts", **{"from": "2026-13-99", "to": "\x00", "cohort": ["=", "a" * 1000 + "=b", "x=<script>"],
                             "service": "\u202e", "outcome": "drop table", "brush": "~~~", "trace": "../../etc"})
    assert not at.exception, [e.value for e in at.exception]
    warnings = " ".join(_sidebar_warnings(at))
    for what in ("time window", "cohort chip", "outcome", "brush", "x = <script>"):
        assert what in warnings, (what, warnings)
    assert at.session_state["vs_cohorts_outcome"] is None and at.session_state["vs_cohorts_brush"] is None


def test_cohorts_state_comes_from_the_url_and_goes_back_to_it(small_demo: Path) -> None:
    at = _open("cohorts", outcome="slow", brush=BRUSH)
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="cohort_outcome").value == "slow"
    assert any("brushed region 02:30–02:50 UTC, 9.0–13.0 s" in c.value for c in at.caption)
    assert _param(at, "outcome") == ["slow"]
    assert _param(at, "brush") == [BRUSH]
    at.switch_page("views/overview.py").run()
    assert "brush" not in at.query_params  # another page's URL carries only its own state
    at.switch_page("views/cohorts.py").run()
    assert at.radio(key="cohort_outcome").value == "slow"  # kept across page switches
    assert _param(at, "brush") == [BRUSH]


def test_the_brush_and_outcome_changes_reach_the_url(small_demo: Path) -> None:
    at = _open("cohorts")
    at.radio(key="cohort_outcome").set_value("error").run()
    assert _param(at, "outcome") == ["error"]
    box = {"xref": "x", "yref": "y", "x": ["2026-03-14 02:50:00", "2026-03-14 02:30:00"], "y": [13.0, 9.0]}
    at.session_state["cohort_scatter"] = {"selection": {"points": [], "point_indices": [], "box": [box], "lasso": []}}
    at.run()
    assert not at.exception
    assert _param(at, "brush") == [BRUSH]
    at.button(key="cohort_clear_box").click().run()
    assert "brush" not in at.query_params


def test_a_url_points_at_a_trace(small_demo: Path, demo_frames_small: dict[str, pl.DataFrame]) -> None:
    spans = demo_frames_small["spans"]
    trace_id = str(spans.filter(pl.col("is_root")).sort("duration_ms").get_column("trace_id")[0])  # not the default
    at = _open("traces", trace=trace_id)
    assert not at.exception, [e.value for e in at.exception]
    assert any(trace_id in h.value for h in at.subheader), [h.value for h in at.subheader]
    assert _param(at, "trace") == [trace_id]
