"""Pure analysis functions over polars frames; nothing here imports Streamlit or a connector."""
