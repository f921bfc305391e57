"""Plotly figure builders shared by the pages (pure: frames in, figures out)."""

from __future__ import annotations

from datetime import datetime

import plotly.graph_objects as go
import polars as pl

EVENT_COLOURS = {
    "deploy": "#1f77b4", "leader_election": "#d62728", "flag_change": "#9467bd", "config_change": "#8c564b",
    "breaker_transition": "#ff7f0e", "pool_saturation": "#e377c2", "retry_storm": "#bcbd22",
}
HIDDEN_EVENT_KINDS = {"breaker_config"}


def bad_rate_chart(series: pl.DataFrame, objective: float, events: pl.DataFrame | None = None,
                   selection: tuple[datetime, datetime] | None = None) -> go.Figure:
    """Bad-request rate per bucket against the error budget, with change events as markers."""
    fig = go.Figure()
    x = series.get_column("bucket").to_list()
    fig.add_bar(x=x, y=series.get_column("requests").to_list(), name="requests / min", yaxis="y2",
                marker_color="rgba(150,150,150,0.25)", hovertemplate="%{y} requests<extra></extra>")
    fig.add_scatter(x=x, y=(series.get_column("bad_rate") * 100).to_list(), mode="lines+markers", name="bad %",
                    line={"color": "#d62728", "width": 2}, marker={"size": 4},
                    customdata=series.select("bad", "errors", "slow").to_numpy().tolist(),
                    hovertemplate="%{y:.2f} %% bad<br>%{customdata[0]} bad: %{customdata[1]} errors, "
                                  "%{customdata[2]} slow<extra></extra>")
    budget = (1 - objective) * 100
    fig.add_hline(y=budget, line={"dash": "dash", "color": "#2ca02c"},
                  annotation_text=f"error budget {budget:g} % (SLO {objective * 100:g} %)")
    if selection:
        fig.add_vrect(x0=selection[0], x1=selection[1], fillcolor="#ff7f0e", opacity=0.12, line_width=0)
    if events is not None:
        add_event_markers(fig, events)
    fig.update_layout(
        height=340, margin={"l": 10, "r": 10, "t": 30, "b": 10}, hovermode="closest", dragmode="select",
        yaxis={"title": "bad requests %", "rangemode": "tozero"},
        yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "title": "requests", "rangemode": "tozero"},
        legend={"orientation": "h", "y": 1.12},
    )
    return fig


def add_event_markers(fig: go.Figure, events: pl.DataFrame) -> None:
    """Vertical lines for change events (one per kind and minute, so 6 breaker flips draw once)."""
    shown = events.filter(~pl.col("kind").is_in(list(HIDDEN_EVENT_KINDS)))
    shown = shown.with_columns(minute=pl.col("ts").dt.truncate("1m")).unique(["kind", "minute"], keep="first",
                                                                             maintain_order=True)
    for row in shown.iter_rows(named=True):
        colour = EVENT_COLOURS.get(row["kind"], "#7f7f7f")
        fig.add_vline(x=row["ts"], line={"color": colour, "width": 1, "dash": "dot"})
        fig.add_annotation(x=row["ts"], y=1, yref="paper", text=row["kind"].replace("_", " "), showarrow=False,
                           textangle=-90, xanchor="right", yanchor="top", font={"size": 10, "color": colour})


def events_table(events: pl.DataFrame) -> pl.DataFrame:
    """Events as a readable table (attrs summarised)."""
    # one row per marker: per-instance copies of one derived marker say nothing new
    shown = events.filter(~pl.col("kind").is_in(list(HIDDEN_EVENT_KINDS))).unique(
        ["ts", "kind", "service", "description"], keep="first", maintain_order=True)
    origin = pl.col("origin") if "origin" in shown.columns else pl.lit("event")
    return shown.select(
        pl.col("ts").dt.strftime("%H:%M:%S").alias("time (UTC)"), "kind", "service", "description",
        origin.alias("seen in"),
    )

