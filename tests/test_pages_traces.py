"""AppTests for the Traces and Service map pages on the built-in demo incident."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.shared import REPO


def _app(page: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.secrets["unused"] = "set so st.secrets never raises"
    at.run()  # app.py registers the views (st.navigation) before a switch can find them
    at.switch_page(page).run()
    assert at.title and at.title[0].value != "Overview" or page.endswith("overview.py"), "switched to the page"
    assert not at.exception, [e.value for e in at.exception]
    return at


def _spec(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


@pytest.fixture(scope="module")
def traces() -> AppTest:
    return _app("views/traces.py")


def test_traces_page_searches_and_draws_a_bounded_waterfall(traces: AppTest) -> None:
    found = traces.dataframe[0].value
    assert 0 < len(found) <= 200
    assert list(found["duration_ms"]) == sorted(found["duration_ms"], reverse=True)
    heading = [s.value for s in traces.subheader if s.value.startswith("Trace `")]
    assert heading, "the slowest bad trace opens by default"
    bars = _spec(traces)["data"][0]
    assert bars["type"] == "bar" and bars["orientation"] == "h"
    assert "#ff7f0e" in json.dumps(bars["marker"]["color"])  # the critical path is highlighted


def test_lookup_by_short_upper_case_trace_id_opens_that_trace(traces: AppTest) -> None:
    wanted = traces.dataframe[0].value["trace_id"].iloc[2]
    traces.text_input(key="traces_lookup").set_value(wanted[:12].upper()).run()
    assert not traces.exception
    assert traces.dataframe[0].value["trace_id"].iloc[0] == wanted
    assert any(s.value == f"Trace `{wanted}`" for s in traces.subheader)
    traces.text_input(key="traces_lookup").set_value("no-such-request-id").run()
    assert any("No trace or correlation id matches" in w.value for w in traces.warning)


def test_slow_vs_baseline_and_retry_views(traces: AppTest) -> None:
    traces.text_input(key="traces_lookup").set_value("").run()
    traces.segmented_control(key="traces_view").set_value("Slow vs baseline").run()
    assert not traces.exception
    diff = traces.dataframe[0].value
    assert {"path", "extra_self_ms_per_trace", "sel_calls_per_trace"} <= set(diff.columns)
    assert diff["extra_self_ms_per_trace"].iloc[0] > 0
    traces.segmented_control(key="traces_view").set_value("Retries").run()
    assert not traces.exception
    edges = traces.dataframe[0].value
    assert (edges["retries"] > 0).all() and len(edges) >= 1
    assert any("without an idempotency key" in e.value for e in traces.error)  # the demo's retry storm


def test_service_map_marks_the_blast_radius_and_a_click_filters_by_service() -> None:
    at = _app("views/service_map.py")
    spec = _spec(at)
    nodes = spec["data"][-1]
    names = nodes["text"]
    assert {"gateway", "payments"} <= set(names)
    ringed = [n for n, w in zip(names, nodes["marker"]["line"]["width"], strict=True) if w == 4]
    assert ringed, "degraded services are ringed"
    path_text = [m.value for m in at.markdown if "→" in m.value]
    assert path_text and path_text[0].split(" → ")[-1] == "gateway"
    origin = at.dataframe[1].value
    assert len(origin) == 5 and list(origin["rank"]) == [1, 2, 3, 4, 5]
    at.session_state["svcmap_chart"] = {
        "selection": {"points": [{"customdata": ["payments"], "curve_number": 9, "point_index": 3}],
                      "point_indices": [3], "box": [], "lasso": []}
    }
    at.run()
    assert not at.exception
    assert at.session_state["flt_service"] == "payments"
