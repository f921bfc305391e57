"""Traces: id lookup and search, the chosen trace's waterfall as an indented span tree with a span detail
panel, where the slow cohort's extra time goes, and retry amplification per edge."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import streamlit as st

from analysis.traces import (
    bad_vs_good_diff,
    critical_path,
    format_duration_ms,
    lookup_ids,
    readable_traces,
    retry_amplification,
    search_traces,
    service_names,
    trace_count,
    waterfall_rows,
)
from model.schemas import attr_columns
from ui import data, panels, state
from ui.charts import events_table
from ui.charts_traces import critical_path_is_informative, diff_figure, retry_figure, tree_labels, waterfall_figure
from ui.selection import first_custom, points
from ui.text import code_span, md_escape
from ui.uploads import trace_upload_widget

MAX_COMPARE_TRACES = 1_500
MAX_WATERFALL_ROWS = 150
VIEWS = ("Search & waterfall", "Slow vs baseline", "Retries")
TRACE_KEY = "traces_trace_id"  # str: the trace shown; "": nothing (a failed lookup cleared it); absent: default
SPAN_KEY = "traces_span"


def selected_trace_id() -> str | None:
    """The trace the page shows, or None. The one place that reads it, so URL state (``?trace=<id>``,
    ui/state.py) can be wired here."""
    value = st.session_state.get(TRACE_KEY)
    return str(value) if value else None


def _show_trace(trace_id: str | None) -> None:
    st.session_state[TRACE_KEY] = trace_id or ""
    st.session_state.pop(SPAN_KEY, None)


def _pick_from_table() -> None:
    event = st.session_state.get("traces_results") or {}
    rows = (event.get("selection") or {}).get("rows") or []
    found = st.session_state.get("traces_found_ids") or []
    if rows and rows[0] < len(found):
        _show_trace(found[rows[0]])


def _lookup_changed() -> None:
    st.session_state["traces_lookup_pending"] = True


def _span_detail(one: pl.DataFrame, rows: pl.DataFrame) -> None:
    """Attributes and timeline events of the span picked in the list (or clicked in the waterfall)."""
    ids = rows["span_id"].to_list()
    labels = dict(zip(ids, tree_labels(rows), strict=True))
    clicked = [first_custom(p) for p in points(st.session_state.get("traces_waterfall"))]
    clicked_id = next((c[0] for c in clicked if c and c[0] in labels), None)
    if clicked_id and clicked_id != st.session_state.get("traces_span_clicked"):
        st.session_state["traces_span_clicked"] = clicked_id
        st.session_state[SPAN_KEY] = clicked_id
    if st.session_state.get(SPAN_KEY) not in labels:
        st.session_state[SPAN_KEY] = ids[0]
    span_id = st.selectbox("Span (or click a bar)", ids, key=SPAN_KEY, format_func=lambda s: labels.get(s, s))
    span = one.filter(pl.col("span_id") == span_id).row(0, named=True)
    row = rows.filter(pl.col("span_id") == span_id).row(0, named=True)
    flags = [w for w, on in (("error", span.get("is_error")), ("slow", span.get("is_slow")),
                             ("on the critical path", row["on_critical_path"])) if on]
    st.markdown(f"**{md_escape(span['service'])}** · {code_span(span['operation'])}")
    st.markdown(
        f"Starts {span['start']:%H:%M:%S}.{span['start'].microsecond // 1000:03d} UTC "
        f"(+{format_duration_ms(row['offset_ms'])}), takes **{format_duration_ms(span['duration_ms'])}**, "
        f"self time {format_duration_ms(row['self_ms'])}. Status {md_escape(span['status'] or 'unset')}"
        + (f", HTTP {span['http_status']}" if span.get("http_status") is not None else "")
        + (f"; {', '.join(flags)}" if flags else "") + "."
        + (f" One of {row['count']} calls folded into this row." if row["count"] > 1 else "")
    )
    attrs = (
        one.filter(pl.col("span_id") == span_id).select(attr_columns(one))
        .unpivot(variable_name="attribute", value_name="value").drop_nulls("value")
        .with_columns(pl.col("attribute").str.strip_prefix("attr."))
    )
    if attrs.height:
        st.dataframe(attrs, hide_index=True, width="stretch", height=min(36 * attrs.height + 40, 260))
    else:
        st.caption("This span carries no attributes.")
    end = span["start"] + timedelta(milliseconds=float(span["duration_ms"] or 0))
    during = data.timeline_events().filter(
        pl.col("ts").is_between(span["start"], end),
        pl.col("service").is_null() | (pl.col("service") == span["service"]),
    )
    table = events_table(during)
    if table.height:
        st.caption(f"Events while this span ran ({span['service']} or everywhere):")
        st.dataframe(table, hide_index=True, width="stretch")
    else:
        st.caption("No change event while this span ran.")


def _trace_view(trace_id: str) -> None:
    one = data.all_spans().filter(pl.col("trace_id") == trace_id)
    if one.height == 0:
        st.warning(f"Trace {code_span(trace_id)} is not in the loaded window.")
        return
    rows = waterfall_rows(one, max_rows=MAX_WATERFALL_ROWS)
    root = one.sort(pl.col("is_root").not_(), "start").row(0, named=True)
    st.subheader(f"Trace `{trace_id}`")
    path = critical_path(one)
    if critical_path_is_informative(rows):
        busiest = path.sort("self_on_path_ms", descending=True).head(3)
        path_note = ("Orange: the critical path (what the request waited for); busiest on it: "
                     + ", ".join(f"{r['service']}: {r['operation']} {format_duration_ms(r['self_on_path_ms'])}"
                                 for r in busiest.iter_rows(named=True)) + ".")
    else:
        path_note = "Every span is on the critical path (one chain of calls), so none is highlighted."
    folded = f" in {rows.height} rows (repeated calls folded as ×n)" if rows.height < one.height else ""
    st.caption(f"{md_escape(root['service'])}: {md_escape(root['operation'])} took "
               f"**{format_duration_ms(root['duration_ms'])}** at {root['start']:%H:%M:%S} UTC; "
               f"{one.height:,} spans{folded}. Red: errors; brown outline: slow. {md_escape(path_note)}")
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(waterfall_figure(rows), key="traces_waterfall", width="stretch", on_select="rerun",
                        selection_mode="points")
    with right:
        _span_detail(one, rows)


header = panels.page_header("Traces", "Find a request, see where its time went, compare the slow ones with the rest.")
trace_upload_widget()
loaded = data.frames("spans")
panels.show_problems(loaded)
flt = state.current_filter()
spans = data.filtered_spans()
if spans.height == 0:
    panels.empty_state("spans", "Widen the time window or remove cohort chips in the sidebar.")
    st.stop()

view = st.segmented_control("View", VIEWS, default=VIEWS[0], key="traces_view") or VIEWS[0]

if view == VIEWS[0]:
    needle = st.text_input("Look up a trace id or correlation id (all sources, ignores the filter)",
                           key="traces_lookup", placeholder="4bf92f3577b34da6… or req-…", on_change=_lookup_changed)
    lookup_failed = False
    if needle.strip():
        hits = data.memo(lookup_ids, data.all_spans(), needle)
        if st.session_state.pop("traces_lookup_pending", TRACE_KEY not in st.session_state):
            _show_trace(hits["trace_id"][0] if hits.height else None)  # a miss clears the old trace
        if hits.height > 1:
            st.dataframe(readable_traces(hits), hide_index=True, width="stretch", height=min(36 * hits.height + 40, 220))
        lookup_failed = hits.height == 0
        if lookup_failed:
            st.warning(f"No trace or correlation id matches {code_span(needle.strip())} in the loaded window.")
    viewer = st.container()

    st.subheader("Find a trace")
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
    st.caption(f"{found.height} slowest matching traces (of {data.memo(trace_count, spans):,} under "
               f"*{md_escape(flt.describe())}*). Select a row to open it above.")
    st.dataframe(readable_traces(found), hide_index=True, width="stretch", on_select=_pick_from_table,
                 selection_mode="single-row", key="traces_results", height=320)

    if TRACE_KEY not in st.session_state and found.height:
        bad = found.filter(pl.col("is_bad").fill_null(False))
        st.session_state[TRACE_KEY] = (bad if bad.height else found)["trace_id"][0]  # the slowest bad trace
    trace_id = selected_trace_id()
    with viewer:
        if trace_id:
            _trace_view(trace_id)
        elif not lookup_failed:
            st.info("Select a trace in the list below, or look one up by id.")

elif view == VIEWS[1]:
    st.subheader("Where does the extra time go?")
    diff, n_bad, n_good = data.memo(bad_vs_good_diff, spans, MAX_COMPARE_TRACES)
    if diff is None:
        panels.empty_state("slow-versus-good comparison", "It needs both bad and good requests under the filter.")
    else:
        st.caption(f"Bad requests ({n_bad:,}) against good ones ({n_good:,}) under *{md_escape(flt.describe())}*, "
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
