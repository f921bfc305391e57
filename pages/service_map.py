"""Placeholder until this view lands: says what will come, shows no fake data."""

import streamlit as st

st.title("Service_map")
st.info("This view is being built. Use the Overview for the incident at a glance.")
