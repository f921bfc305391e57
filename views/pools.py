"""Pools: saturation over time and the exhaustion chain — waiters → holders → stuck spans → users."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analysis.pools import exhaustion_chain, saturation
from ui import data, panels, state
from ui.charts_resilience import saturation_chart
from ui.text import code_span

header = panels.page_header("Pools", "Who is holding the connections, who is waiting for them, and which users pay for it.")
pools_loaded, holders_loaded = data.frames("pools"), data.frames("pool_holders")
panels.show_problems(pools_loaded, holders_loaded, data.frames("spans"))  # spans: the stuck requests
flt = state.current_filter()
pools = data.issue_derived(flt.clip(pools_loaded.frame), pools_loaded.frame, "clip", repr(flt.start), repr(flt.end))
holders = data.issue_derived(flt.clip(holders_loaded.frame), holders_loaded.frame, "clip", repr(flt.start), repr(flt.end))
if pools.height == 0:
    panels.empty_state("connection-pool data", "Configure a Prometheus, actuator or pgbouncer source in sources.yaml.")
    st.stop()

sat = saturation(pools)
spans = data.filtered_spans()
chain = data.memo(exhaustion_chain, pools, holders, spans)
latest = sat.sort("ts").group_by(["source", "pool", "instance"]).last()

c1, c2, c3, c4 = st.columns(4)
c1.metric("pools", latest.height)
c2.metric("saturated now", latest.filter(pl.col("saturated")).height)
spans_loaded = data.frames("spans")
c3.metric("requests stuck on a pool", panels.count(chain.affected_requests, spans_loaded.coverage))
if chain.affected_users is None:  # the spans carry no user attribute: unknown, not zero
    c4.metric("users affected", "—", help="The spans carry no user attribute (the user role).")
else:
    c4.metric("users affected", panels.count(chain.affected_users, spans_loaded.coverage))
panels.computed_over(spans_loaded, int(spans.get_column("is_root").sum()),
                     filtered=bool(flt.start or flt.cohort or flt.service))

st.subheader("Saturation")
st.plotly_chart(saturation_chart(sat, data.timeline_events()), key="pool_saturation", width="stretch")
st.caption("Busy connections as a share of the pool's maximum, per pool and 30-second bucket (its worst sample); "
           "dark red is exhausted. Hover a cell for the clients waiting.")
if not chain.found:
    st.success("No pool was exhausted in this window.")
    st.stop()

st.subheader("1 · Exhausted")
st.dataframe(chain.periods.drop("period"), hide_index=True, width="stretch",
             column_config={"peak_acquire_ms": st.column_config.NumberColumn("peak acquire (ms)", format="%.0f"),
                            "start": st.column_config.DatetimeColumn("start (UTC)", format="HH:mm:ss"),
                            "end": st.column_config.DatetimeColumn("end (UTC)", format="HH:mm:ss")})

st.subheader("2 · Holding the connections")
if chain.holders.height:
    top = chain.holders.row(0, named=True)
    running_s = (top["xact_ms"] or top["running_ms"] or 0) / 1000
    st.markdown(f"Longest holder: backend **pid {top['pid']}** ({top['application_name'] or 'unknown app'}), "
                f"{top['state']} for **{running_s:,.0f} s**: `{(top['query'] or '(query text hidden)')[:160]}`")
    st.dataframe(chain.holders.select("pool", "pid", "state", "application_name", "client_addr", "wait_event_type",
                                      (pl.col("xact_ms") / 1000).round(1).alias("in transaction (s)"),
                                      (pl.col("running_ms") / 1000).round(1).alias("query running (s)"), "query"),
                 hide_index=True, width="stretch")
else:
    st.info("No source reports who holds the connections (add a pgbouncer source with a postgres_dsn).")

st.subheader("3 · Stuck acquiring a connection")
stuck = chain.stuck_spans.group_by("service", "operation", "pool").agg(
    pl.len().alias("spans"), pl.col("duration_ms").quantile(0.99).alias("p99_ms")).sort("spans", descending=True)
st.dataframe(stuck, hide_index=True, width="stretch",
             column_config={"p99_ms": st.column_config.NumberColumn("p99 (ms)", format="%.0f")})

st.subheader("4 · Who is behind them")
if chain.cohort.height == 0:
    st.info("The stuck requests carry no attributes to group by.")
for i, row in enumerate(chain.cohort.filter(pl.col("lift") > 1.2).head(6).iter_rows(named=True)):
    c1, c2 = st.columns([5, 1])
    c1.markdown(f"{code_span(str(row['attribute']) + ' = ' + str(row['value']))} — {row['share']:.0%} of stuck requests "
                f"(vs {row['baseline_share']:.0%} overall, ×{row['lift']:.1f})")
    c2.button("Filter to this", key=f"pool_cohort_{i}", on_click=state.add_cohort, args=(row["attribute"], row["value"]))
with st.expander("Every attribute value of the stuck requests"):
    st.dataframe(chain.cohort, hide_index=True, width="stretch")
panels.snapshot_slot(header, "pools", {"stuck_spans": stuck, "cohort_behind_them": chain.cohort})
