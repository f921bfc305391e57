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
        legend=LEGEND_BELOW,
    )
    return fig


EVENT_AXIS = "y9"  # a hidden 0..1 overlay axis for the event markers, clear of the charts' own y and y2
# Legends go under the chart, at the bottom of the figure (plotly makes room): at the top, plotly's toolbar
# covers them, and a paper-relative offset below the plot lands on the tick labels of a short chart.
LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "y": 0, "yref": "container", "yanchor": "bottom"}


def add_event_markers(fig: go.Figure, events: pl.DataFrame) -> None:
    """Change events as dotted vertical lines, with the words in the hover and one legend entry per kind.

    A text label per line overlaps its neighbours on a phone (02:30 and 02:47 sit 20 px apart at 390 px),
    so each kind gets a row of small markers along the top instead (one row per kind, so two kinds in one
    minute stack rather than collide), and the legend says what the colours mean. One marker per kind and
    minute: six breaker flips draw once.
    """
    shown = events.filter(~pl.col("kind").is_in(list(HIDDEN_EVENT_KINDS)))
    shown = shown.with_columns(minute=pl.col("ts").dt.truncate("1m")).unique(["kind", "minute"], keep="first",
                                                                             maintain_order=True)
    if shown.height == 0:
        return
    shown = shown.with_columns(
        pl.col("ts").dt.replace_time_zone(None).alias("at"),
        pl.concat_str([pl.col("ts").dt.strftime("%H:%M:%S"), pl.lit(" UTC "), pl.col("kind").str.replace_all("_", " "),
                       pl.lit(": "), pl.col("service").fill_null(""), pl.lit(" "), pl.col("description").fill_null("")],
                      ).str.strip_chars().alias("hover"),
    )
    kinds = shown["kind"].unique(maintain_order=True).to_list()
    for row in shown.select("at", "kind").iter_rows(named=True):
        fig.add_vline(x=row["at"], line={"color": EVENT_COLOURS.get(row["kind"], "#7f7f7f"), "width": 1, "dash": "dot"})
    for level, kind in enumerate(kinds):
        part = shown.filter(pl.col("kind") == kind)
        fig.add_scatter(
            x=part["at"].to_list(), y=[0.98 - 0.06 * level] * part.height, yaxis=EVENT_AXIS, mode="markers",
            name=kind.replace("_", " "), cliponaxis=False,
            marker={"symbol": "triangle-down", "size": 9, "color": EVENT_COLOURS.get(kind, "#7f7f7f")},
            text=part["hover"].to_list(), hovertemplate="%{text}<extra></extra>",
        )
    fig.update_layout({f"yaxis{EVENT_AXIS[1:]}": {"overlaying": "y", "range": [0, 1], "visible": False,
                                                  "fixedrange": True}})


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

