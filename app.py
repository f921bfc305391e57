"""Faultline: navigation, the global filter bar and the read-only snapshot banner. Nothing else."""

from __future__ import annotations

import streamlit as st

from ui import filter_bar, snapshot_mode, state

st.set_page_config(page_title="Faultline", page_icon=":material/monitor_heart:", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/emergency:", url_path="overview", default=True),
    st.Page("pages/cohorts.py", title="Cohorts", icon=":material/group:", url_path="cohorts"),
    st.Page("pages/traces.py", title="Traces", icon=":material/timeline:", url_path="traces"),
    st.Page("pages/service_map.py", title="Service map", icon=":material/hub:", url_path="service-map"),
    st.Page("pages/breakers.py", title="Breakers", icon=":material/electric_bolt:", url_path="breakers"),
    st.Page("pages/pools.py", title="Pools", icon=":material/water_full:", url_path="pools"),
    st.Page("pages/snapshots.py", title="Snapshots", icon=":material/photo_camera:", url_path="snapshots"),
    st.Page("pages/sources.py", title="Sources", icon=":material/power:", url_path="sources"),
]

page = st.navigation(PAGES)
state.init_from_url()
snapshot_mode.adopt_filter()
filter_bar.render()
state.sync_url()
snapshot_mode.snapshot_banner()
page.run()
