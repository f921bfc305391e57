"""Sources: health of every configured data source, with a "check now" button."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ui import auth, data, panels

header = panels.page_header("Sources", "Is Faultline's own data trustworthy right now? Health, latency and breaker of every source.")
config = data.app_config()
for problem in data.connectors().problems:
    st.error(f"Degraded: {problem.message}")

if st.button("Check now", key="sources_check", type="primary"):
    data.refresh()
statuses = data.source_statuses()
icons = {"ok": "✓ ok", "degraded": "! degraded", "down": "✕ down"}  # plain symbols: emoji are blank boxes in Debian's Chromium
table = pl.DataFrame(
    {
        "source": [s.name for s in statuses],
        "type": [s.type for s in statuses],
        "status": [icons.get(s.status, s.status) for s in statuses],
        "breaker": [s.breaker_state for s in statuses],
        "latency ms": [round(s.latency_ms, 1) if s.latency_ms is not None else None for s in statuses],
        "last success (UTC)": [s.last_success.strftime("%H:%M:%S") if s.last_success else "never" for s in statuses],
        "message": [s.message for s in statuses],
        "last error": [s.last_error or "" for s in statuses],
    }
)
st.dataframe(table, hide_index=True, width="stretch")
st.caption(f"Configuration: {config.origin}. Page deadline {data.deadline_s():g} s per round of queries; each source "
           "runs in its own bulkhead and has its own circuit breaker.")
st.caption(auth.sign_in_status(config.auth))
panels.snapshot_slot(header, "sources", {"sources": table})
