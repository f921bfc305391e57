"""Service map: who calls whom, how bad each service and edge is, which services degraded in the
incident (the blast radius through the trace graph), the path it travelled, and the likely origin."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analysis.periods import split_requests
from analysis.service_map import blast_radius_services, propagation_path, rank_root_cause_services, service_graph
from analysis.traces import sample_traces
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
selection, baseline = split_requests(spans, (period.start, period.end)).parts()

nodes, edges = service_graph(selection if selection.height else spans)
degraded: set[str] = set()
path: list[str] = []
radius = None
if selection.height and baseline.height:
    radius = blast_radius_services(selection, baseline)
    degraded = set(radius.filter(pl.col("degraded"))["service"].to_list())
    path = propagation_path(selection, baseline)["service"].to_list()

st.markdown(f"**Incident period from {period.start:%H:%M} UTC** ({period.how}); baseline: everything before. "
            f"Filter: *{flt.describe()}*.")
event = st.plotly_chart(service_map_figure(nodes, edges, degraded, path, flt.service), key="svcmap_chart",
                        on_select=_on_node_click, selection_mode="points", width="stretch")
panels.computed_over(loaded, spans.filter(pl.col("is_root")).height, filtered=bool(flt.cohort or flt.service))
clicked = _clicked_service(event)
if clicked and clicked != flt.service:  # the callback did not run (e.g. an injected selection): apply now
    state.set_service(clicked)
    st.rerun()
services = ["(all services)"] + nodes["service"].sort().to_list()
st.selectbox("Focus service (same as clicking a node)", services,
             index=services.index(flt.service) if flt.service in services else 0, key="svcmap_focus",
             on_change=lambda: state.set_service(None if st.session_state["svcmap_focus"] == services[0]
                                                 else st.session_state["svcmap_focus"]))

if radius is None:
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
    bad_traces = selection.filter(pl.col("is_root") & pl.col("is_bad")).select("trace_id")
    fault = selection.join(bad_traces, on="trace_id", how="semi") if bad_traces.height else selection
    ranked = rank_root_cause_services(sample_traces(fault, MAX_RANK_TRACES), sample_traces(baseline, MAX_BASELINE_TRACES))
    st.caption("Services ranked by the self time they added (not time spent waiting on callees), bad requests of "
               "the incident period against the baseline.")
    st.dataframe(ranked.head(5).select("rank", "service", "score", "top_operation", "excess_ms"),
                 hide_index=True, width="stretch")
panels.snapshot_slot(header, "service_map", {"likely_origin": ranked.head(10)})
