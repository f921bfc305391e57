"""Traces: search and id lookup, a bounded waterfall with the critical path, where the slow cohort's
extra time goes, and retry amplification per edge."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analysis.traces import (
    bad_vs_good_diff, critical_path, lookup_ids, retry_amplification, search_traces, service_names, trace_count,
    waterfall_rows,
)
from model.schemas import attr_columns
from ui import data, panels, state
from ui.charts_traces import diff_figure, retry_figure, waterfall_figure
from ui.uploads import trace_upload_widget

MAX_COMPARE_TRACES = 1_500
VIEWS = ("Search & waterfall", "Slow vs baseline", "Retries")

header = panels.page_header("Traces", "Find a request, see where its time went, compare the slow ones with the rest.")
trace_upload_widget()
loaded = data.frames("spans")
panels.show_problems(loaded)
flt = state.current_filter()
spans = data.filtered_spans()
if spans.height == 0:
    panels.empty_state("spans", "Widen the time window or remove cohort chips in the sidebar.")
    st.stop()


def _pick_from_table() -> None:
    event = st.session_state.get("traces_results") or {}
    rows = (event.get("selection") or {}).get("rows") or []
    found = st.session_state.get("traces_found_ids") or []
    if rows and rows[0] < len(found):
        st.session_state["traces_trace_id"] = found[rows[0]]


view = st.segmented_control("View", VIEWS, default=VIEWS[0], key="traces_view") or VIEWS[0]

if view == VIEWS[0]:
    needle = st.text_input("Look up a trace id or correlation id (all sources, ignores the filter)",
                           key="traces_lookup", placeholder="4bf92f3577b34da6… or req-…")
    if needle.strip():
        hits = data.memo(lookup_ids, data.all_spans(), needle)
        if hits.height:
            st.dataframe(hits, hide_index=True, width="stretch")
            st.session_state["traces_trace_id"] = hits["trace_id"][0]
        else:
            st.warning(f"No trace or correlation id matches `{needle.strip()}` in the loaded window.")

    st.subheader("Search within the filter")
    services = ["(any)"] + data.memo(service_names, spans)
    cols = st.columns([2, 2, 2, 1, 1])
    default_service = services.index(flt.service) if flt.service in services else 0
    service = cols[0].selectbox("Service", services, index=default_service, key="traces_service")
    operation = cols[1].text_input("Operation contains", key="traces_operation")
    attr_text = cols[2].text_input("attr=value", key="traces_attr", placeholder="region=eu-west-1",
                                   help="Attributes: " + ", ".join(c.removeprefix("attr.") for c in attr_columns(spans)))
    min_ms = cols[3].number_input("Min ms", min_value=0.0, value=0.0, step=100.0, key="traces_min_ms")
    outcome = cols[4].selectbox("Outcome", ["any", "bad", "error", "slow"], key="traces_outcome")
    key, sep, value = attr_text.partition("=")
    found = data.memo(
        search_traces, spans, service=None if service == "(any)" else service, operation=operation.strip() or None,
        attrs=((key.strip(), value.strip()),) if sep and key.strip() else (),
        min_duration_ms=min_ms or None, outcome=None if outcome == "any" else outcome,
    )
    st.session_state["traces_found_ids"] = found["trace_id"].to_list()
    st.caption(f"{found.height} slowest matching traces (of {data.memo(trace_count, spans):,} under *{flt.describe()}*). "
               "Select a row to open its waterfall.")
    st.dataframe(found, hide_index=True, width="stretch", on_select=_pick_from_table,
                 selection_mode="single-row", key="traces_results")

    trace_id = st.session_state.get("traces_trace_id")
    if trace_id is None and found.height:
        bad = found.filter(pl.col("is_bad").fill_null(False))
        trace_id = (bad if bad.height else found)["trace_id"][0]
    if trace_id:
        one = data.all_spans().filter(pl.col("trace_id") == trace_id)
        if one.height:
            rows = waterfall_rows(one, max_rows=150)
            path = critical_path(one)
            st.subheader(f"Trace `{trace_id}`")
            st.caption(f"{one.height:,} spans in {rows.height} rows (repeated calls folded as ×n). Orange: the "
                       f"critical path; red: errors. Busiest on the path: "
                       + ", ".join(f"{r['service']}: {r['operation']} {r['self_on_path_ms']:.0f} ms"
                                   for r in path.sort("self_on_path_ms", descending=True).head(3).iter_rows(named=True)))
            st.plotly_chart(waterfall_figure(rows), key="traces_waterfall", width="stretch")

elif view == VIEWS[1]:
    st.subheader("Where does the extra time go?")
    diff, n_bad, n_good = data.memo(bad_vs_good_diff, spans, MAX_COMPARE_TRACES)
    if diff is None:
        panels.empty_state("slow-versus-good comparison", "It needs both bad and good requests under the filter.")
    else:
        st.caption(f"Bad requests ({n_bad:,}) against good ones ({n_good:,}) under *{flt.describe()}*, "
                   f"each merged into one call tree (up to {MAX_COMPARE_TRACES:,} traces a side). Self time per "
                   "trace excludes the time a node waits for its children.")
        st.plotly_chart(diff_figure(diff), key="traces_diff", width="stretch")
        st.dataframe(diff.head(25), hide_index=True, width="stretch")

else:
    st.subheader("Retry amplification")
    amp = data.memo(retry_amplification, spans, by="1m")
    unsafe = amp.filter(pl.col("retries_without_idempotency"))
    if amp.filter(pl.col("retries") > 0).is_empty():
        st.success("No retries found under the filter.")
    else:
        st.plotly_chart(retry_figure(amp), key="traces_retries", width="stretch")
        if unsafe.height:
            st.error(f"Retries without an idempotency key on {unsafe.select('caller', 'callee').n_unique()} "
                     "edge(s): a retried write may run twice.")
        st.dataframe(
            amp.group_by("caller", "callee").agg(
                calls=pl.col("calls").sum(), retries=pl.col("retries").sum(),
                retries_without_key=pl.col("retries_without_key").sum(),
                worst_minute=pl.col("attempts_per_request").max(),
            ).filter(pl.col("retries") > 0).sort("retries", descending=True),
            hide_index=True, width="stretch",
        )
panels.snapshot_slot(header, "traces")
