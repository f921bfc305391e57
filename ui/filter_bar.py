"""The sidebar filter bar shared by every page: time window, cohort chips, service, clear.

It also makes the filter fit the data before any page reads it: a time window outside the data is cut
or dropped, and unknown services, attributes and values are named, always with a visible notice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import streamlit as st

from analysis.traces import service_names
from model.schemas import attr_columns
from ui import data, snapshot_mode, state
from ui.text import md_escape
from ui.view_state import Filter, Notice, clamp_window

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
    state.set_cohort([(key, value) for key, _, value in (str(c).partition("=") for c in chosen)])


def _on_service() -> None:
    value = st.session_state["w_service"]
    state.set_service(None if value == "(all services)" else value)


def _on_add() -> None:
    key, value = st.session_state.get("w_add_key"), st.session_state.get("w_add_value")
    if key and value is not None:
        state.add_cohort(key, value)


def _unmatched_chips(roots: pl.DataFrame, chips: tuple[tuple[str, str], ...]) -> tuple[Notice, ...]:
    """A notice per chip that no request can match: its attribute is not in the data, or no request has
    that value (the chip stays applied, and shown, so the page and the control agree)."""
    found: list[Notice] = []
    for key, value in chips:
        column = f"attr.{key}" if f"attr.{key}" in roots.columns else key if key in roots.columns else None
        if column is None:
            found.append(Notice("cohort", f"No attribute “{key}” in the data: the chip {key} = {value} matches "
                                          "no request."))
        elif not roots.select((pl.col(column).cast(pl.String) == value).any()).item():
            found.append(Notice("cohort", f"No request has {key} = “{value}”: that chip matches nothing."))
    return tuple(found)


def fit_to_data(services: list[str]) -> tuple[Notice, ...]:
    """Cut the time window to the data (stored notice) and name what in the filter matches nothing."""
    start, end = data.incident_window()
    fitted, notice = clamp_window(state.current_filter(), start, end)
    if notice is not None:
        state.replace_filter(fitted)
        state.add_notice(notice)
    scope = snapshot_mode.frames_scope()
    flt = state.current_filter()
    if scope is not None and not (set(scope.cohort) <= set(flt.cohort) and scope.service in (None, flt.service)):
        # an older snapshot holds only this cohort: a wider filter would show part of the data as everything
        kept = [(k, v) for k, v in flt.cohort if k not in dict(scope.cohort)]
        state.replace_filter(Filter(flt.start, flt.end, (*scope.cohort, *kept), scope.service or flt.service))
        state.add_notice(Notice("scope", f"This snapshot holds only the requests of {scope.describe()}: the "
                                         "filter cannot be wider than that."))
        flt = state.current_filter()
    found = list(data.memo(_unmatched_chips, data.all_requests(), flt.cohort)) if flt.cohort else []
    if flt.service and flt.service not in services:
        found.append(Notice("service", f"No span of service “{flt.service}” in the data: nothing matches it."))
    return tuple(found)


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
    spans = data.all_spans()
    known_services = data.memo(service_names, spans)
    unmatched = fit_to_data(known_services)
    flt = state.current_filter()
    with st.sidebar:
        st.markdown("### Filter")
        for notice in (*state.notices(), *unmatched):
            st.warning(md_escape(notice.message), icon=":material/link_off:")
        start, end = data.incident_window()
        st.session_state["w_time"] = (_naive(flt.start or start), _naive(flt.end or end))
        st.slider("Time window (UTC)", min_value=_naive(start), max_value=_naive(end), step=timedelta(minutes=1),
                  format="HH:mm", key="w_time", on_change=_on_time)
        chips = [f"{k}={v}" for k, v in flt.cohort]
        st.session_state["w_chips"] = chips
        st.multiselect("Cohort", options=chips, key="w_chips", on_change=_on_chips,
                       placeholder="everyone (add a chip below or click a cohort)",
                       help="Requests whose root span has all these attribute values.")
        choices = data.memo(_choices, data.all_requests())
        with st.expander("Add a cohort chip", expanded=False):
            key = st.selectbox("Attribute", options=sorted(choices), key="w_add_key", index=None,
                               placeholder="attribute")
            value = st.selectbox("Value", options=choices.get(key or "", []), key="w_add_value", index=None,
                                 placeholder="value")
            st.button("Add", on_click=_on_add, key="w_add_btn", disabled=key is None or value is None)
            if key is None or value is None:
                st.caption("Choose an attribute and one of its values, then Add.")
        # an applied service the data lacks stays in the list, so the control shows what is applied
        unknown = [flt.service] if flt.service and flt.service not in known_services else []
        services = ["(all services)", *known_services, *unknown]
        current = flt.service if flt.service in services else "(all services)"
        st.session_state["w_service"] = current
        st.selectbox("Service", options=services, key="w_service", on_change=_on_service)
        c1, c2 = st.columns(2)
        c1.button("Clear filter", on_click=state.clear, key="w_clear", disabled=flt == Filter())
        c2.button("Reload data", on_click=data.refresh, key="w_reload", help="Ask every source again now.")
        st.toggle("Live: refresh every 30 s", key="live_mode",
                  help="Live panels re-query the sources; your selections and filter stay as they are.")
        st.caption(f"Showing: **{md_escape(state.current_filter().describe())}**")
