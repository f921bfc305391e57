"""Cohorts: who is affected — brush a region to select, click a value or a cohort to filter everything."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analysis.outcome import OUTCOME_WORDS, OUTCOMES
from ui import data, incident, panels, state
from ui import selection as selection_of
from ui.charts_cohorts import latency_scatter, parse_box, share_bars
from ui.text import code_span, md_escape

header = panels.page_header("Cohorts", "Selection vs baseline over every attribute: which requests are bad, and what they share.")
spans_loaded = data.frames("spans")
panels.show_problems(spans_loaded)
requests = data.filtered_requests(whole_window=True)
if requests.height == 0:
    panels.empty_state("requests", "Remove cohort chips or widen the window in the sidebar.")
    st.stop()

def _box_key(box: dict[str, list[float | str]] | None) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    return (tuple(map(str, box["x"])), tuple(map(str, box["y"]))) if box else None


def _scatter(frame: pl.DataFrame, key: tuple[tuple[str, ...], tuple[str, ...]] | None) -> object:
    return latency_scatter(frame, {"x": list(key[0]), "y": [float(y) for y in key[1]]} if key else None)


outcome = st.radio("Bad means", OUTCOMES, horizontal=True, key="cohort_outcome",
                   format_func={"bad": "error or slow", "error": "errors only", "slow": "slow only"}.get)

# The brush lives in plain session state: a plotly selection resets whenever the figure changes.
scatter = data.memo(_scatter, requests, _box_key(st.session_state.get("cohort_box")))
event = st.plotly_chart(scatter, key="cohort_scatter", on_select="rerun", selection_mode="box", width="stretch")
narrowed = bool(state.current_filter().cohort or state.current_filter().service)
panels.computed_over(spans_loaded, requests.height, filtered=narrowed)
brushed = selection_of.boxes(event)
if brushed and brushed[0] != st.session_state.get("cohort_box"):
    st.session_state["cohort_box"] = dict(brushed[0])
box = st.session_state.get("cohort_box")

brush = parse_box(box) if box else None
period = incident.incident_period(outcome)
if brush:
    t0, t1, lo_ms, hi_ms = brush
    how = (f"the brushed region {t0:%H:%M}–{t1:%H:%M} UTC, {lo_ms / 1000:.1f}–{hi_ms / 1000:.1f} s: requests in that "
           "latency band against the same band before it")
    c1, c2 = st.columns([3, 1])
    c1.caption(f"Selection: {how}.")
    if c2.button("Clear the brush", key="cohort_clear_box"):
        st.session_state.pop("cohort_box", None)
        st.rerun()
    if c2.button("Use as time window", key="cohort_box_window"):
        state.set_time_window(t0, t1)
        st.rerun()
else:
    how = f"incident since {period.start:%H:%M} UTC ({period.how}) against the time before it"
    st.caption(f"Selection: {how}. Drag a box on the chart to select a time range and latency band instead.")

ranking, cohorts = incident.cohort_view(requests, brush, outcome, period)

st.subheader("Who is affected")
panels.computed_over(spans_loaded, requests.height, filtered=narrowed)
if not cohorts:
    st.info("No cohort explains the bad requests better than chance: the problem looks evenly spread.")
for i, cohort in enumerate(cohorts[:5]):
    pairs = tuple((k, str(v)) for k, v in cohort.pairs)
    label = " AND ".join(f"{k} = {v}" for k, v in pairs)
    c1, c2 = st.columns([5, 1])
    words = cohort.describe("in the brushed band" if brush else None)
    c1.markdown(f"**{i + 1}.** {code_span(label)} — {md_escape(words)}")
    c2.button("Filter to this", key=f"cohort_apply_{i}", on_click=state.set_cohort, args=(pairs,))

st.subheader("Where the selection differs from the baseline")
st.caption("Per value, its share of the requests: light grey in the baseline, grey in the selection, red among the "
           "selection's " + ("requests in the brushed band" if brush else f"{OUTCOME_WORDS[outcome]} requests")
           + ". Click a bar to add that value to the cohort filter (every page follows).")
# In a big incident nearly every value is "significant"; "stands_out" keeps the values that hold more of
# the excess than their share of traffic, which is what differs between selection and baseline.
strongest = (ranking.filter(pl.col("stands_out")).group_by("attribute").agg(pl.col("excess_bad").max())
             .sort("excess_bad", descending=True).head(6).get_column("attribute").to_list())
columns = st.columns(2)
for i, attribute in enumerate(strongest):
    with columns[i % 2]:
        bar_event = st.plotly_chart(share_bars(ranking, attribute), key=f"cohort_bars_{attribute}", on_select="rerun",
                                    selection_mode="points", width="stretch")
        clicked = selection_of.points(bar_event)
        if clicked:
            custom = selection_of.first_custom(clicked[0])
            key, value = (custom[0], custom[1]) if len(custom) >= 2 else (attribute, clicked[0].get("x"))
            before = state.current_filter()
            state.add_cohort(str(key), str(value))
            if state.current_filter() != before:
                st.rerun()

with st.expander("Every attribute value, ranked"):
    st.dataframe(
        ranking.select("attribute", "value", "bad", "total", "precision", "baseline_rate", "lift", "coverage",
                       "q_value", "stands_out").head(300),
        hide_index=True, width="stretch",
        column_config={"precision": st.column_config.NumberColumn("bad rate", format="percent"),
                       "baseline_rate": st.column_config.NumberColumn("baseline bad rate", format="percent"),
                       "coverage": st.column_config.NumberColumn("explains", format="percent"),
                       "lift": st.column_config.NumberColumn("lift", format="×%.1f")},
    )
panels.snapshot_slot(header, "cohorts", {
    "selection": how, "outcome": outcome, "cohorts": [c.as_dict() for c in cohorts],
    "ranking": ranking.head(300),
})
