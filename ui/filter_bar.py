"""The sidebar filter bar shared by every page: time window, cohort chips, service, clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import streamlit as st

from analysis.traces import service_names
from model.schemas import attr_columns
from ui import data, state

MAX_VALUES = 200


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None)


def _on_time() -> None:
    lo, hi = st.session_state["w_time"]
    start, end = data.incident_window()
    if lo <= _naive(start) and hi >= _naive(end):
        state.set_time_window(None, None)
    else:
        state.set_time_window(lo.replace(tzinfo=UTC), hi.replace(tzinfo=UTC))


def _on_chips() -> None:
    chosen = st.session_state["w_chips"]
    state.set_cohort([tuple(c.split("=", 1)) for c in chosen])  # type: ignore[misc]


def _on_service() -> None:
    value = st.session_state["w_service"]
    state.set_service(None if value == "(all services)" else value)


def _on_add() -> None:
    key, value = st.session_state.get("w_add_key"), st.session_state.get("w_add_value")
    if key and value is not None:
        state.add_cohort(key, value)


def _choices(roots: pl.DataFrame) -> dict[str, list[str]]:
    """Attribute keys with few enough values to pick from, and their values by frequency."""
    out: dict[str, list[str]] = {}
    for column in attr_columns(roots):
        counts = roots.get_column(column).drop_nulls().value_counts(sort=True)
        if 1 < counts.height <= MAX_VALUES:
            out[column.removeprefix("attr.")] = counts.get_column(column).cast(pl.String).to_list()
    return out


def render() -> None:
    data.app_config()  # a broken config stops here, with its message in the main area
    flt = state.current_filter()
    with st.sidebar:
        st.markdown("### Filter")
        start, end = data.incident_window()
        st.session_state["w_time"] = (_naive(flt.start or start), _naive(flt.end or end))
        st.slider("Time window (UTC)", min_value=_naive(start), max_value=_naive(end), step=timedelta(minutes=1),
                  format="HH:mm", key="w_time", on_change=_on_time)
        chips = [f"{k}={v}" for k, v in flt.cohort]
        st.session_state["w_chips"] = chips
        st.multiselect("Cohort", options=chips, key="w_chips", on_change=_on_chips,
                       placeholder="everyone (add a chip below or click a cohort)",
                       help="Requests whose root span has all these attribute values.")
        spans = data.all_spans()
        choices = data.memo(_choices, data.all_requests())
        with st.expander("Add a cohort chip", expanded=False):
            key = st.selectbox("Attribute", options=sorted(choices), key="w_add_key", index=None,
                               placeholder="attribute")
            st.selectbox("Value", options=choices.get(key or "", []), key="w_add_value", index=None,
                         placeholder="value")
            st.button("Add", on_click=_on_add, key="w_add_btn", disabled=key is None)
        services = ["(all services)", *data.memo(service_names, spans)]
        current = flt.service if flt.service in services else "(all services)"
        st.session_state["w_service"] = current
        st.selectbox("Service", options=services, key="w_service", on_change=_on_service)
        c1, c2 = st.columns(2)
        c1.button("Clear filter", on_click=state.clear, key="w_clear", disabled=flt == state.Filter())
        c2.button("Reload data", on_click=data.refresh, key="w_reload", help="Ask every source again now.")
        st.toggle("Live: refresh every 30 s", key="live_mode",
                  help="Live panels re-query the sources; your selections and filter stay as they are.")
        st.caption(f"Showing: **{state.current_filter().describe()}**")
