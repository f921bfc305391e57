"""Faultline: navigation, the global filter bar and the read-only snapshot banner. Nothing else."""

from __future__ import annotations

import streamlit as st

from ui import auth, filter_bar, snapshot_mode, state
from ui.routes import ROUTES, route_for_path
from ui.sources import app_config

st.set_page_config(page_title="Faultline", page_icon="assets/faultline-icon.png", layout="wide")
if auth.sign_in_enabled():  # before any page, snapshot links included; without [auth] the app stays open
    auth.gate(app_config().auth)

PAGES = [
    st.Page(f"views/{r.name}.py", title=r.title, icon=r.icon, url_path=r.url_path or r.name, default=not r.url_path)
    for r in ROUTES
]

# our own links, not Streamlit's: Streamlit's drop the query string, so a session that starts with a click on one
# (the first action on another replica, after the one serving it died) would lose the view; ours carry it
page = st.navigation(PAGES, position="hidden")
route = route_for_path(page.url_path).name
state.init_from_url(route)
snapshot_mode.adopt_filter(route)
links = st.sidebar.container()  # above the filter bar, filled once the filter is settled
filter_bar.render()
state.sync_url(route)
carried = state.current_filter().to_params()
if snapshot := st.query_params.get(snapshot_mode.PARAM):
    carried[snapshot_mode.PARAM] = snapshot
for linked in PAGES:
    links.page_link(linked, query_params=carried)
snapshot_mode.snapshot_banner()
page.run()
