"""A snapshot shows what the live page showed: every figure on Overview and Cohorts after applying the
top suspect, the page's own state, the page it was taken on, and an honest "Clear filter"."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from streamlit.testing.v1 import AppTest

from snapshots.capture import build_snapshot
from snapshots.store import SnapshotStore
from tests.conftest import app_test
from ui.view_state import Filter

BANNER_CAPTIONS = (
    "Filter when taken", "Redaction", "Notice when taken", "Spans sampled",
    ":material/photo_camera: Viewing a read-only",
)
BRUSH = "2026-03-14T02:30:00Z~2026-03-14T02:50:00Z~9000.0~13000.0"


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _shown(at: AppTest) -> dict[str, object]:
    """Every figure a page shows: metrics (with their help and delta), text, and the charts' data."""
    return {
        "metrics": [(m.label, m.value, m.help, m.delta) for m in at.metric],
        "markdown": [m.value for m in at.main.markdown],
        "captions": [c.value for c in at.main.caption if not c.value.startswith(BANNER_CAPTIONS)],
        "charts": [json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart")],
    }


def _apply_top_suspect(at: AppTest) -> None:
    at.run()
    at.button(key="overview_apply_suspect").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert dict(at.session_state["flt_cohort"]) == {"region": "eu-west-1", "client_version": "5.2.0"}


def _save(at: AppTest, page: str) -> str:
    at.text_input(key=f"snapshot_title_{page}").input(f"{page} with the top suspect")
    next(b for b in at.button if b.label == "Save snapshot").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return str(at.session_state[f"snapshot_last_{page}"])


def _reopen(snapshot_id: str, page: str = "overview") -> AppTest:
    at = app_test()
    at.query_params["snapshot"] = snapshot_id
    if page != "overview":
        at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Read-only snapshot" in i.value for i in at.info)
    return at


def test_overview_snapshot_equals_the_live_view_with_the_top_suspect(small_demo: Path) -> None:
    live = app_test()
    _apply_top_suspect(live)
    shown = _shown(live)
    assert _metrics(live)["Bad requests (excess)"] != "0"
    snapshot_id = _save(live, "overview")

    later = _reopen(snapshot_id)
    assert dict(later.session_state["flt_cohort"]) == {"region": "eu-west-1", "client_version": "5.2.0"}
    assert _shown(later) == shown


def test_clear_filter_in_a_snapshot_shows_everything_as_live(small_demo: Path) -> None:
    live = app_test()
    live.run()
    everything = _metrics(live)
    _apply_top_suspect(live)
    snapshot_id = _save(live, "overview")

    later = _reopen(snapshot_id)
    later.button(key="w_clear").click().run()
    assert not later.exception
    assert later.session_state["flt_cohort"] == ()
    assert _metrics(later) == everything  # "everything" is everything, not the cohort relabelled


def test_cohorts_snapshot_keeps_outcome_and_brush_and_opens_on_cohorts(small_demo: Path) -> None:
    live = app_test()
    _apply_top_suspect(live)
    live.switch_page("views/cohorts.py").run()
    live.radio(key="cohort_outcome").set_value("slow").run()
    shown_without_brush = _shown(live)
    box = {"xref": "x", "yref": "y", "x": ["2026-03-14 02:50:00", "2026-03-14 02:30:00"], "y": [13.0, 9.0]}
    live.session_state["cohort_scatter"] = {"selection": {"points": [], "point_indices": [], "box": [box], "lasso": []}}
    live.run()
    assert not live.exception
    shown = _shown(live)
    assert shown != shown_without_brush  # the brush changes what the page computes
    snapshot_id = _save(live, "cohorts")

    # opened by a link that names no page (e.g. "Open this snapshot", the Snapshots list): lands on Cohorts
    later = _reopen(snapshot_id)
    assert later.radio(key="cohort_outcome").value == "slow"
    assert any("brushed region 02:30–02:50" in c.value for c in later.caption)
    assert later.query_params.get("brush") in (BRUSH, [BRUSH])
    assert _shown(later) == shown


def test_cohorts_snapshot_without_brush_equals_live(small_demo: Path) -> None:
    live = app_test()
    _apply_top_suspect(live)
    live.switch_page("views/cohorts.py").run()
    shown = _shown(live)
    snapshot_id = _save(live, "cohorts")
    later = _reopen(snapshot_id, "cohorts")
    assert _shown(later) == shown


def test_a_link_carrying_its_own_view_wins_over_the_snapshot_state(small_demo: Path) -> None:
    live = app_test()
    _apply_top_suspect(live)
    snapshot_id = _save(live, "overview")
    later = app_test()
    later.query_params["snapshot"] = snapshot_id
    later.query_params["cohort"] = "region=us-east-1"
    later.run()
    assert not later.exception
    assert later.session_state["flt_cohort"] == (("region", "us-east-1"),)


def test_an_older_snapshot_of_one_cohort_is_never_shown_as_everything(
        small_demo: Path, demo_frames_small: dict[str, pl.DataFrame]) -> None:
    # written the way snapshots were before the view state: cohort-filtered spans, the filter, no view
    spans = demo_frames_small["spans"]
    eu = spans.join(spans.filter(pl.col("is_root"), pl.col("attr.region") == "eu-west-1").select("trace_id"),
                    on="trace_id", how="semi")
    old = build_snapshot({"spans": eu}, title="old", page="overview", filter=Filter(cohort=(("region", "eu-west-1"),)),
                         page_state={"overview_x": 1})
    snapshot_id = SnapshotStore(redaction_key="test-key").create(old, "old-format")

    later = _reopen(snapshot_id)
    assert later.session_state["flt_cohort"] == (("region", "eu-west-1"),)
    later.button(key="w_clear").click().run()
    assert not later.exception
    assert later.session_state["flt_cohort"] == (("region", "eu-west-1"),)  # not relabelled "everything"
    assert any("holds only the requests of region = eu" in w.value.replace("\\", "") for w in later.sidebar.warning)


def test_a_traces_snapshot_reopens_on_its_trace(small_demo: Path, demo_frames_small: dict[str, pl.DataFrame]) -> None:
    spans = demo_frames_small["spans"]
    trace_id = str(spans.filter(pl.col("is_root")).sort("duration_ms").get_column("trace_id")[0])  # not the default
    live = app_test()
    live.query_params["trace"] = trace_id
    live.switch_page("views/traces.py")
    live.run()
    assert any(trace_id in h.value for h in live.subheader)
    snapshot_id = _save(live, "traces")
    later = _reopen(snapshot_id)  # a link naming no page: lands on Traces, on that trace
    assert any(trace_id in h.value for h in later.subheader), [h.value for h in later.subheader]
    assert any(f"trace = {trace_id}" in c.value.replace("\\", "") for c in later.caption)  # the banner says so


def test_the_snapshots_list_opens_a_snapshot_on_its_page_and_reopening_restores_it(small_demo: Path) -> None:
    live = app_test()
    _apply_top_suspect(live)
    live.switch_page("views/cohorts.py").run()
    live.radio(key="cohort_outcome").set_value("slow").run()
    snapshot_id = _save(live, "cohorts")
    live.switch_page("views/snapshots.py").run()
    assert not live.exception
    opened = [link for link in live.get("page_link") if link.proto.label == "Open this snapshot"]
    assert opened and "cohorts" in opened[0].proto.page, [link.proto for link in live.get("page_link")]

    later = _reopen(snapshot_id)
    later.radio(key="cohort_outcome").set_value("error").run()
    later.button(key="snapshot_leave").click().run()
    for key in list(later.query_params):
        del later.query_params[key]
    later.query_params["snapshot"] = snapshot_id  # the same link opened again in the same session
    later.run()
    assert not later.exception
    assert later.radio(key="cohort_outcome").value == "slow"  # as it was taken, not as it was left
