"""Cohorts: who is affected — brush a region to select, click a value or a cohort to filter everything."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analysis.outcome import OUTCOME_WORDS, OUTCOMES
from ui import data, incident, panels, state
from ui import selection as selection_of
from ui.charts_cohorts import latency_scatter, parse_box, share_bars
from ui.text import code_span, md_escape
from ui.view_state import BRUSH, OUTCOME, Brush

header = panels.page_header("Cohorts", "Selection vs baseline over every attribute: which requests are bad, and what they share.")
spans_loaded = data.frames("spans")
panels.show_problems(spans_loaded)
requests = data.filtered_requests(whole_window=True)
if requests.height == 0:
    panels.empty_state("requests", "Remove cohort chips or widen the window in the sidebar.")
    st.stop()


def _brush_box(brush: Brush) -> dict[str, list[float | str]]:
    """A brush in the scatter's coordinates (naive UTC times, seconds), to draw it."""
    t0, t1, lo_ms, hi_ms = brush
    return {"x": [f"{t0:%Y-%m-%d %H:%M:%S.%f}", f"{t1:%Y-%m-%d %H:%M:%S.%f}"], "y": [lo_ms / 1000, hi_ms / 1000]}


def _scatter(frame: pl.DataFrame, brush: Brush | None) -> object:
    return latency_scatter(frame, _brush_box(brush) if brush else None)


def _brush_of(event: object) -> Brush | None:
    boxes = selection_of.boxes(event)
    try:
        return parse_box(boxes[0]) if boxes else None
    except (ValueError, KeyError, TypeError):  # a box the frontend sent half-formed: keep the brush we had
        return None


def _on_brush() -> None:
    # Runs before the script, with the selection of the chart the user drew on: the figure (which draws
    # the brush) may then change identity without losing this box (STREAMLIT_NOTES §1, pitfall 3).
    brush = _brush_of(st.session_state.get("cohort_scatter"))
    if brush is not None:
        state.set_page_value(BRUSH, brush)


def _on_outcome() -> None:
    state.set_page_value(OUTCOME, st.session_state["cohort_outcome"])


def _clear_brush() -> None:
    state.set_page_value(BRUSH, None)


# Page state lives in plain session keys (ui.view_state), so it survives page switches, links and snapshots;
# the radio widget is seeded from it on every run.
st.session_state["cohort_outcome"] = state.page_value(OUTCOME) or "bad"
outcome = st.radio("Bad means", OUTCOMES, horizontal=True, key="cohort_outcome", on_change=_on_outcome,
                   format_func={"bad": "error or slow", "error": "errors only", "slow": "slow only"}.get)

brush: Brush | None = state.page_value(BRUSH)
scatter = data.memo(_scatter, requests, brush)
event = st.plotly_chart(scatter, key="cohort_scatter", on_select=_on_brush, selection_mode="box", width="stretch")
# A selection that reached the script without the callback (AppTest injects it this way) still counts.
drawn = _brush_of(event)
if drawn is not None and drawn != brush:
    state.set_page_value(BRUSH, drawn)
    st.rerun()
narrowed = bool(state.current_filter().cohort or state.current_filter().service)
panels.computed_over(spans_loaded, requests.height, filtered=narrowed)

period = incident.incident_period(outcome)
if brush:
    t0, t1, lo_ms, hi_ms = brush
    how = (f"the brushed region {t0:%H:%M}–{t1:%H:%M} UTC, {lo_ms / 1000:.1f}–{hi_ms / 1000:.1f} s: requests in that "
           "latency band against the same band before it")
    c1, c2 = st.columns([3, 1])
    c1.caption(f"Selection: {how}.")
    c2.button("Clear the brush", key="cohort_clear_box", on_click=_clear_brush)
    if c2.button("Use as time window", key="cohort_box_window"):
        state.set_time_window(t0, t1)
        st.rerun()
else:
    how = f"incident since {period.start:%H:%M} UTC ({period.how}) against the time before it"
    st.caption(f"Selection: {how}. Drag a box on the chart to select a time range and latency band instead.")

ranking, cohorts = incident.cohort_view(requests, brush, outcome, period)

st.subheader("Who is affected")
panels.computed_over(spans_loaded, requests.height, filtered=narrowed,
                     pushed=incident.cohort_view_counts(requests, brush, outcome, period))
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
