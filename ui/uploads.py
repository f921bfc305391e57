"""Trace files pasted into an incident channel: upload, convert all-or-nothing, and serve as spans."""

from __future__ import annotations

import itertools
import time

import polars as pl
import streamlit as st

from connectors.errors import ConnectorError
from connectors.traces.files import DEFAULT_MAX_UPLOAD_BYTES, convert_upload
from model.validate import validate
from ui import auth

STATE_KEY = "uploaded_spans"
SERIAL_KEY = "uploaded_spans_serials"  # file name -> the serial of its upload (a re-upload is new data)
_serials = itertools.count(time.monotonic_ns())  # from the clock: a module reload never reuses one


def uploaded_frames() -> dict[str, pl.DataFrame]:
    """This session's uploaded trace files, by file name (each a validated spans frame)."""
    return dict(st.session_state.get(STATE_KEY, {}))


def upload_generation() -> tuple[tuple[str, int], ...]:
    """Names this session's uploads as data: changes whenever a file is added, replaced or removed."""
    serials: dict[str, int] = st.session_state.get(SERIAL_KEY, {})
    return tuple(sorted((name, serials.get(name, 0)) for name in uploaded_frames()))


def _on_upload() -> None:
    file = st.session_state.get("trace_upload")
    if file is None or not auth.may_upload():
        return
    try:
        converted = convert_upload(file.getvalue(), file.name, DEFAULT_MAX_UPLOAD_BYTES)
        frame = validate(converted.frame, "spans")
    except ConnectorError as exc:
        st.session_state["trace_upload_msg"] = ("error", f"{file.name} was not loaded: {exc.describe()}")
        return
    uploads = uploaded_frames()
    uploads[file.name] = frame
    st.session_state[STATE_KEY] = uploads
    st.session_state[SERIAL_KEY] = {**st.session_state.get(SERIAL_KEY, {}), file.name: next(_serials)}
    traces = frame.get_column("trace_id").n_unique()
    notes = " ".join(converted.notices)
    st.session_state["trace_upload_msg"] = ("ok", f"Loaded {frame.height:,} spans ({traces:,} traces) from "
                                                  f"{file.name}. {notes}".strip())


def _clear() -> None:
    st.session_state.pop(STATE_KEY, None)
    st.session_state.pop(SERIAL_KEY, None)
    st.session_state.pop("trace_upload_msg", None)


def trace_upload_widget() -> None:
    """An expander to add OTLP/JSON (or JSON lines), Jaeger or Zipkin trace files to this session's spans."""
    if not auth.may_upload():
        st.caption("Sign in to add trace files.")
        return
    uploads = uploaded_frames()
    with st.expander(f"Add a trace file ({len(uploads)} loaded)" if uploads else "Add a trace file", expanded=False):
        st.file_uploader("OTLP/JSON, collector JSON lines, Jaeger /api/traces or Zipkin v2 JSON",
                         type=["json", "jsonl", "ndjson", "txt"], key="trace_upload", on_change=_on_upload,
                         max_upload_size=DEFAULT_MAX_UPLOAD_BYTES // (1024 * 1024))
        kind, message = st.session_state.get("trace_upload_msg", (None, ""))
        if kind == "error":
            st.error(message)
        elif kind == "ok":
            st.success(message)
        if uploads:
            st.caption("Loaded: " + ", ".join(uploads) + ". They join every page's spans for this browser session.")
            st.button("Remove uploaded files", on_click=_clear, key="trace_upload_clear")
