"""Streamlit glue: filter state, data access (the only cache), panels and chart builders."""
