"""Breakers: which are open now, when they were open, and which should have tripped but did not."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analysis.breakers import breaker_windows, config_from_events, open_now, open_periods, should_have_tripped
from ui import data, panels, state
from ui.charts_resilience import caller_latency_chart, open_periods_chart
from ui.text import code_span, md_escape

header = panels.page_header("Breakers", "Open periods rebuilt from transitions and refused calls, next to the callers' latency.")
breakers_loaded, events_loaded = data.frames("breakers"), data.frames("events")
panels.show_problems(breakers_loaded, events_loaded, data.frames("spans"))  # spans: the should-have-tripped part
flt = state.current_filter()
breakers, events = flt.clip(breakers_loaded.frame), flt.clip(events_loaded.frame)
if flt.service:
    breakers = breakers.filter(pl.col("breaker").str.contains(flt.service, literal=True))
breakers = data.issue_derived(breakers, breakers_loaded.frame, "breakers page", repr(flt))  # so memo caches over it
if breakers.height == 0:
    panels.empty_state("circuit-breaker data", "Configure a Prometheus, actuator, Hystrix or Envoy source in sources.yaml.")
    st.stop()

now = open_now(breakers)
periods = open_periods(breakers, events)
# A breaker counts every call through it, not the cohort's: verdicts come from the whole traffic in the
# time window; the cohort only narrows which breakers are shown.
traffic = flt.clip(data.all_spans(), "start")
windows = data.memo(breaker_windows, breakers, traffic, data.slo())
flagged = data.memo(should_have_tripped, breakers, traffic, data.slo(), data.memo(config_from_events, events_loaded.frame),
                    windows=windows)
if flt.cohort:
    cohort_breakers = breaker_windows(breakers, data.filtered_spans(), data.slo())["breaker"].unique()
    hidden = flagged.filter(~pl.col("breaker").is_in(cohort_breakers.implode()))["breaker"].n_unique()
    flagged = flagged.filter(pl.col("breaker").is_in(cohort_breakers.implode()))
    st.info(f"Verdicts use each breaker's whole traffic (a breaker sees every call, not only the cohort's). "
            f"The cohort *{md_escape(flt.describe())}* only narrows the list to the breakers its requests went "
            f"through" + (f"; {hidden} flagged breaker(s) it never touched are hidden." if hidden else "."),
            icon=":material/filter_alt:")

c1, c2, c3, c4 = st.columns(4)
c1.metric("breakers", breakers.select(pl.struct("breaker", "instance").n_unique()).item())
c2.metric("open right now", now.height)
c3.metric("open periods", periods.height, help="Merged from state samples, transition events and refused-call counters.")
c4.metric("should have tripped", flagged["breaker"].n_unique(), help="Callers blew the SLO while the breaker stayed closed.")

if now.height:
    st.subheader("Open right now")
    st.dataframe(now.with_columns(pl.col("since").dt.strftime("%H:%M:%S")), hide_index=True, width="stretch")

st.subheader("When they were open")
if periods.height:
    until = breakers["ts"].max()
    st.plotly_chart(open_periods_chart(periods, until, data.timeline_events()), key="breaker_periods", width="stretch")
    missed = periods.filter(pl.col("evidence") == "not_permitted_calls")
    if missed.height:
        st.caption(f"{missed.height} short open period(s) were never seen by the scraped state: only the refused-call "
                   "counter shows them (the scrape interval is longer than the open state).")
else:
    st.info("No breaker opened in this window.")

st.subheader("Should have tripped")
panels.computed_over(data.frames("spans"), int(traffic.get_column("is_root").sum()),
                     filtered=bool(flt.start or flt.service))
if flagged.height == 0:
    st.success("No breaker stayed closed while its callers were failing the SLO.")
for i, (breaker, rows) in enumerate(flagged.group_by("breaker", maintain_order=True)):
    name = str(breaker[0])
    first, worst = rows.row(0, named=True), rows.sort("p99_ms", descending=True).row(0, named=True)
    st.markdown(f"**{code_span(name)}** stayed closed for {rows.height} degraded minute(s) from {first['window_start']:%H:%M} UTC: "
                f"callers' p99 up to {worst['p99_ms'] / 1000:.1f} s against an SLO of {worst['slo_ms'] / 1000:.1f} s, "
                f"{worst['bad_rate']:.0%} bad. Likely reason: **{first['reason'].replace('_', ' ')}**.")
    st.plotly_chart(caller_latency_chart(windows, name), key=f"breaker_callers_{i}", width="stretch")
    callee = name.split("->")[-1]
    st.button(f"Focus on {callee}", key=f"breaker_focus_{i}", on_click=state.set_service, args=(callee,))
if flagged.height:
    with st.expander("Every flagged minute, with the breaker's configuration"):
        st.dataframe(flagged, hide_index=True, width="stretch")

with st.expander("Open periods"):
    st.dataframe(periods, hide_index=True, width="stretch")
panels.snapshot_slot(header, "breakers", {"open_periods": periods, "should_have_tripped": flagged})
