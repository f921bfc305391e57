"""Faultline: navigation and the global filter bar (time window, cohort chips, service). Nothing else."""

from __future__ import annotations

import streamlit as st

from ui import filter_bar, state

st.set_page_config(page_title="Faultline", page_icon="🩺", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon="🚨", url_path="overview", default=True),
    st.Page("pages/cohorts.py", title="Cohorts", icon="🎯", url_path="cohorts"),
    st.Page("pages/traces.py", title="Traces", icon="🧵", url_path="traces"),
    st.Page("pages/service_map.py", title="Service map", icon="🕸️", url_path="service-map"),
    st.Page("pages/breakers.py", title="Breakers", icon="⚡", url_path="breakers"),
    st.Page("pages/pools.py", title="Pools", icon="🚰", url_path="pools"),
    st.Page("pages/snapshots.py", title="Snapshots", icon="📸", url_path="snapshots"),
    st.Page("pages/sources.py", title="Sources", icon="🔌", url_path="sources"),
]

page = st.navigation(PAGES)
state.init_from_url()
filter_bar.render()
state.sync_url()
page.run()
