"""AppTests for the Traces and Service map pages on the built-in demo incident."""

from __future__ import annotations

import json
import re
from typing import Any

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


READABLE_DURATION = re.compile(r"^(\d+(\.\d+)? (ms|s)|\d+ min \d\d s)$")


def _results(at: AppTest) -> Any:
    """The search results table (the one with a root_operation and no matched_by column)."""
    return next(d.value for d in at.dataframe
                if "root_operation" in d.value.columns and "matched_by" not in d.value.columns)


def _trace_headings(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader if s.value.startswith("Trace `")]


def test_traces_page_shows_the_trace_above_the_list_as_an_indented_tree(traces: AppTest) -> None:
    found = _results(traces)
    assert 0 < len(found) <= 200
    assert all(READABLE_DURATION.match(d) for d in found["duration"]), found["duration"].head().tolist()
    headings = [s.value for s in traces.subheader]
    assert _trace_headings(traces), "the slowest bad trace opens by default"
    waterfall = headings.index(_trace_headings(traces)[0])
    assert waterfall < headings.index("Find a trace"), "the waterfall sits above the list"
    bars = _spec(traces)["data"][0]
    assert bars["type"] == "bar" and bars["orientation"] == "h"
    labels = [a["text"] for a in _spec(traces)["layout"]["annotations"]]
    depths = [len(t) - len(t.lstrip("\u00a0")) for t in labels]
    assert not labels[0].startswith("\u2514") and any(t.lstrip("\u00a0").startswith("\u2514") for t in labels[1:])
    assert max(depths) > 0, "deeper spans are indented"
    assert all(READABLE_DURATION.match(t.rsplit("\u00a0\u00a0", 1)[-1]) for t in labels)


def test_span_detail_panel_shows_the_chosen_spans_attributes(traces: AppTest) -> None:
    picker = traces.selectbox(key="traces_span")
    child = picker.options[1]
    picker.select_index(1).run()
    assert not traces.exception
    text = " ".join(m.value for m in traces.markdown)
    assert "takes **" in text and " UTC (+" in text
    service = child.lstrip("\u00a0").removeprefix("\u2514 ").split(":")[0]
    assert f"**{service}**" in text
    attrs = next(d.value for d in traces.dataframe if list(d.value.columns) == ["attribute", "value"])
    assert len(attrs) > 0 and not attrs["attribute"].str.startswith("attr.").any()


def test_lookup_opens_that_trace_and_a_failed_lookup_clears_it(traces: AppTest) -> None:
    wanted = _results(traces)["trace_id"].iloc[2]
    traces.text_input(key="traces_lookup").set_value(wanted[:12].upper()).run()
    assert not traces.exception
    assert _trace_headings(traces) == [f"Trace `{wanted}`"]
    traces.text_input(key="traces_lookup").set_value("no-such-request-id").run()
    assert any("No trace or correlation id matches" in w.value for w in traces.warning)
    assert _trace_headings(traces) == [], "the previous trace is gone"
    assert not [c for c in traces.get("plotly_chart")], "no waterfall is left on screen"


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
