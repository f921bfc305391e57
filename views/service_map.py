"""Service map: who calls whom, how bad each service and edge is, which services degraded in the
incident (the blast radius through the trace graph), the path it travelled, and the likely origin."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analysis.service_map import service_map_view
from ui import data, incident, panels, state
from ui import selection as selection_of
from ui.charts_traces import service_map_figure

MAX_RANK_TRACES = 5_000
MAX_BASELINE_TRACES = 20_000


def _clicked_service(event: object) -> str | None:
    """The service of the first clicked node."""
    for point in selection_of.points(event):
        custom = selection_of.first_custom(point)
        if custom and isinstance(custom[0], str):
            return custom[0]
    return None


def _on_node_click() -> None:
    name = _clicked_service(st.session_state.get("svcmap_chart"))
    if name:
        state.set_service(name)


header = panels.page_header("Service map", "Call graph coloured by bad rate; degraded services ringed; click a node to filter.")
loaded = data.frames("spans")
panels.show_problems(loaded)
flt = state.current_filter()
spans = data.filtered_spans(whole_window=True)
if spans.height == 0:
    panels.empty_state("spans", "Widen the time window or remove cohort chips in the sidebar.")
    st.stop()

period = incident.incident_period()
# every graph of the page, once per (filtered spans, period): reruns and other sessions reuse it
view = data.memo(service_map_view, spans, period.start, period.end, max_rank_traces=MAX_RANK_TRACES,
                 max_baseline_traces=MAX_BASELINE_TRACES)
nodes, edges, radius, path = view.nodes, view.edges, view.radius, view.path
degraded = set(radius.filter(pl.col("degraded"))["service"].to_list()) if radius is not None else set()

st.markdown(f"**Incident period from {period.start:%H:%M} UTC** ({period.how}); baseline: everything before. "
            f"Filter: *{flt.describe()}*.")
event = st.plotly_chart(service_map_figure(nodes, edges, degraded, path, flt.service), key="svcmap_chart",
                        on_select=_on_node_click, selection_mode="points", width="stretch")
panels.computed_over(loaded, view.requests, filtered=bool(flt.cohort or flt.service))
clicked = _clicked_service(event)
if clicked and clicked != flt.service:  # the callback did not run (e.g. an injected selection): apply now
    state.set_service(clicked)
    st.rerun()
services = ["(all services)"] + nodes["service"].sort().to_list()
st.selectbox("Focus service (same as clicking a node)", services,
             index=services.index(flt.service) if flt.service in services else 0, key="svcmap_focus",
             on_change=lambda: state.set_service(None if st.session_state["svcmap_focus"] == services[0]
                                                 else st.session_state["svcmap_focus"]))

if radius is None or view.ranked is None:
    st.info("No time before the incident period under this filter, so there is no baseline to compare with.")
    st.stop()

cols = st.columns(2)
with cols[0]:
    st.subheader("How it propagated")
    if path:
        st.markdown(" → ".join(f"**{s}**" if i == 0 else s for i, s in enumerate(path)))
        st.caption("From the deepest degraded service up through degraded callers to the entry point.")
    else:
        st.success("No service degraded against the baseline.")
    st.dataframe(radius.filter(pl.col("degraded")).drop("degraded"), hide_index=True, width="stretch")
with cols[1]:
    st.subheader("Likely origin")
    ranked = view.ranked
    st.caption("Services ranked by the self time they added (not time spent waiting on callees), bad requests of "
               "the incident period against the baseline.")
    st.dataframe(ranked.head(5).select("rank", "service", "score", "top_operation", "excess_ms"),
                 hide_index=True, width="stretch")
panels.snapshot_slot(header, "service_map", {"likely_origin": ranked.head(10)})
