"""Overview: the incident at a glance — SLO burn, blast radius, top suspect cohort, change timeline."""

from __future__ import annotations

import streamlit as st

from analysis.blast_radius import bad_rate_series, burn_rate
from ui import data, incident, panels, state
from ui.charts import bad_rate_chart, events_table
from ui.text import code_span, md_escape

LIVE_EVERY_S = 30

header = panels.page_header("Overview", "Who is affected, how far it reaches, and what changed.")
spans_loaded = data.frames("spans")
events_loaded = data.frames("events")
panels.show_problems(spans_loaded, events_loaded)

flt = state.current_filter()
requests = data.filtered_requests(whole_window=True)
if requests.height == 0:
    panels.empty_state("requests", "Widen the time window or remove cohort chips in the sidebar.")
    st.stop()

objective = data.slo().objective
narrowed = bool(flt.cohort or flt.service)  # the figures below keep the whole window, only these narrow it
found = incident.incident_period()


@st.fragment(run_every=LIVE_EVERY_S if st.session_state.get("live_mode") else None)
def live_figures() -> None:
    """Blast radius and burn: re-queried on every live tick without touching any selection."""
    if st.session_state.get("live_mode"):
        data.refresh()
    live = data.filtered_requests(whole_window=True)
    spans_now = data.frames("spans")
    pushed = incident.pushed_counts(live, found)
    counted = pushed is not None and pushed.counted is not None
    coverage = None if counted else spans_now.coverage  # counted where the spans are: exact, not scaled
    radius = incident.investigation(live, found).blast
    panels.computed_over(spans_now, live.height, filtered=narrowed, pushed=pushed)
    burn = burn_rate(radius.incident_rate, objective)
    cols = st.columns(5)
    in_sample = "" if coverage is None or coverage.complete else "In the sample: "
    cols[0].metric("Bad requests (excess)", panels.count(radius.excess_bad, coverage),
                   help=f"{in_sample}{radius.bad:,} bad of {radius.requests:,}; the baseline rate "
                        f"{radius.baseline_rate:.2%} would explain {radius.bad - radius.excess_bad:,.0f}.")
    users, tenants, regions = radius.excess_users, radius.tenants_affected, radius.regions_affected
    cols[1].metric("Users affected", "unknown" if users is None else panels.count(users, coverage),
                   help=radius.why_unknown("user") or f"{in_sample}{radius.users_affected:,} users saw a bad request; "
                        f"{radius.users_expected or 0:,.0f} would have at the baseline rate.")
    cols[2].metric("Tenants affected", "unknown" if tenants is None else f"{len(tenants):,}",
                   help=radius.why_unknown("tenant") or "Tenants whose bad rate rose significantly above their own "
                        "baseline (a tenant that was already bad before does not count unless it got worse).")
    cols[3].metric("Regions affected", "unknown" if regions is None else f"{len(regions)}",
                   help=radius.why_unknown("region") or "Affected: " + (", ".join(regions or ()) or "none")
                        + ". Unaffected: " + (", ".join(radius.regions_unaffected or ()) or "none") + ".")
    cols[4].metric("Error-budget burn", f"×{burn:.1f}", delta=f"{radius.incident_rate:.2%} bad",
                   delta_color="inverse", help=f"Bad rate since the incident start divided by the budget "
                                               f"{1 - objective:.2%}.")
    if radius.unknown:
        st.caption("Not measured: " + md_escape("; ".join(why for _, why in radius.unknown)) + ".")


# the sentence and the top suspect come first: on a phone the metric row below fills the first screen
st.markdown(f"**Incident since {found.start:%H:%M} UTC** — {found.how}. Filter: *{md_escape(flt.describe())}*.")
suspect = incident.top_suspect(requests, found)
if suspect is not None:
    st.subheader("Top suspect cohort")
    st.markdown(f"### {code_span(suspect.label)}")
    st.markdown(md_escape(suspect.sentence))
    if (origin := incident.suspect_origin(found, suspect)) is not None:
        st.markdown(f"**Where it starts:** {md_escape(origin.sentence())}")
    st.button("Filter every view to this cohort", on_click=state.set_cohort, args=(suspect.pairs,),
              key="overview_apply_suspect", type="primary")
else:
    st.info("No cohort stands out: the bad requests are spread evenly over every attribute.")
live_figures()

events = flt.clip(data.timeline_events())
st.subheader("Bad requests over time")
series = data.memo(bad_rate_series, requests)
rate_chart = bad_rate_chart(series, objective, events, (found.start, found.end or series["bucket"].max()))
st.plotly_chart(rate_chart,
                key="overview_rate", width="stretch")
panels.computed_over(spans_loaded, requests.height, filtered=narrowed)
st.subheader("What changed")
table = events_table(events)
if table.height:
    st.dataframe(table, hide_index=True, width="stretch")
else:
    panels.no_events_note(events_loaded)
panels.snapshot_slot(header, "overview", {
    "incident_start": found.start, "incident_how": found.how,
    "top_suspect": suspect.label if suspect else None, "top_suspect_says": suspect.sentence if suspect else None,
    "blast_radius": incident.investigation(requests, found).blast,
    "bad_rate_per_minute": series, "bad_rate_chart": rate_chart, "what_changed": table,
})
