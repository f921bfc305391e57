"""The view state in session state, mirrored in the URL so a copied link reopens the view.

What the state is and how it is written lives in :mod:`ui.view_state` (one serialisation for the URL
and snapshots); this module keeps it in ``st.session_state`` under plain keys (``flt_*`` for the
global filter, each :class:`~ui.view_state.Param`'s ``session_key`` for a page's own values).
Streamlit drops unbound query params on page navigation, so :func:`sync_url` rewrites them on
every run (STREAMLIT_NOTES §2). Values that a link or snapshot carried but that could not be applied
as they were become notices (:func:`notices`), shown by the filter bar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import streamlit as st

from ui.routes import params_of
from ui.view_state import MAX_CHIPS, Filter, Notice, Param, ViewState, from_params, parse_filter, to_params

__all__ = ["MAX_CHIPS", "Filter", "parse_params"]
_NOTICES = "vs_notices"
_LOADED = "flt_loaded"


def parse_params(params: Mapping[str, list[str]]) -> Filter:
    """The global filter from URL query params; malformed values are left out, never fatal."""
    return parse_filter(params)[0]


def _query() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in st.query_params}


def init_from_url(page: str = "overview") -> None:
    """On a session's first run, seed the filter and ``page``'s own state from the URL."""
    if _LOADED in st.session_state:
        return
    params = params_of(page)
    view, found = from_params(_query(), params)
    store_view(view, params)
    for notice in found:
        add_notice(notice)
    st.session_state[_LOADED] = True


def store_view(view: ViewState, params: tuple[Param, ...]) -> None:
    """Make ``view`` the current filter and page state (page values it lacks go back to their default)."""
    _store(view.filter)
    for param in params:
        st.session_state[param.session_key] = view.value(param.name)


def current_view(page: str) -> ViewState:
    """The filter plus ``page``'s own values as they are now."""
    page_values = tuple((p.name, st.session_state.get(p.session_key)) for p in params_of(page)
                        if st.session_state.get(p.session_key) is not None)
    return ViewState(current_filter(), page_values)


def view_params(page: str) -> dict[str, str | list[str]]:
    """The URL/snapshot form of the current view of ``page``."""
    return to_params(current_view(page), params_of(page))


def page_value(param: Param) -> Any:
    return st.session_state.get(param.session_key)


def set_page_value(param: Param, value: Any) -> None:
    st.session_state[param.session_key] = value
    clear_notices(param.name)


def add_notice(notice: Notice) -> None:
    found: dict[str, str] = dict(st.session_state.get(_NOTICES, {}))
    found[notice.param] = notice.message
    st.session_state[_NOTICES] = found


def notices() -> tuple[Notice, ...]:
    return tuple(Notice(k, v) for k, v in st.session_state.get(_NOTICES, {}).items())


def clear_notices(*param_names: str) -> None:
    """Forget the notices about these params (all when none are named): the user has set them since."""
    found: dict[str, str] = dict(st.session_state.get(_NOTICES, {}))
    for name in param_names or tuple(found):
        found.pop(name, None)
    st.session_state[_NOTICES] = found


def current_filter() -> Filter:
    ss = st.session_state
    return Filter(ss.get("flt_start"), ss.get("flt_end"), tuple(ss.get("flt_cohort", ())), ss.get("flt_service"))


def _store(flt: Filter) -> None:
    st.session_state["flt_start"] = flt.start
    st.session_state["flt_end"] = flt.end
    st.session_state["flt_cohort"] = tuple(flt.cohort)
    st.session_state["flt_service"] = flt.service


def replace_filter(flt: Filter) -> None:
    """Set the whole filter at once (clamping, snapshot adoption), keeping the notices."""
    _store(flt)


def sync_url(page: str = "overview") -> None:
    """Mirror the view state of ``page`` into the query string, keeping any snapshot id."""
    wanted = view_params(page)
    snapshot = st.query_params.get("snapshot")
    if snapshot:
        wanted["snapshot"] = snapshot
    normalised = {k: v if isinstance(v, list) else [v] for k, v in wanted.items()}
    if _query() != normalised:
        st.query_params.from_dict(wanted)


def set_cohort(pairs: Iterable[tuple[str, str]]) -> None:
    unique: list[tuple[str, str]] = []
    for key, value in pairs:
        if (key, value) not in unique:
            unique.append((str(key), str(value)))
    st.session_state["flt_cohort"] = tuple(unique[:MAX_CHIPS])
    clear_notices("cohort")


def add_cohort(key: str, value: str) -> None:
    """Add (or replace) one chip: a new value for the same attribute replaces the old one."""
    kept = [(k, v) for k, v in current_filter().cohort if k != key]
    set_cohort([*kept, (key, value)])


def set_time_window(start: datetime | None, end: datetime | None) -> None:
    if start and end and start > end:
        start, end = end, start
    st.session_state["flt_start"] = start
    st.session_state["flt_end"] = end
    clear_notices("from")


def set_service(name: str | None) -> None:
    st.session_state["flt_service"] = name or None
    clear_notices("service")


def clear() -> None:
    _store(Filter())
    clear_notices("from", "cohort", "service")
