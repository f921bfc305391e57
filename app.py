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

page = st.navigation(PAGES)
route = route_for_path(page.url_path).name
state.init_from_url(route)
snapshot_mode.adopt_filter(route)
filter_bar.render()
state.sync_url(route)
snapshot_mode.snapshot_banner()
page.run()
