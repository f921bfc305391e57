"""Figures for the Breakers and Pools pages (pure: frames in, plotly figures out)."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from ui.charts import add_event_markers

EVIDENCE_COLOURS = {"state": "#d62728", "transition": "#ff7f0e", "not_permitted_calls": "#9467bd"}


def _naive(series: pl.Series) -> list[object]:
    return series.dt.replace_time_zone(None).to_list()


def open_periods_chart(periods: pl.DataFrame, until: object, events: pl.DataFrame | None = None) -> go.Figure:
    """One row per breaker (× instance); a bar per open period, coloured by its strongest evidence."""
    fig = go.Figure()
    frame = periods.with_columns(
        pl.concat_str([pl.col("breaker"), pl.col("instance").fill_null("")], separator=" @ ").str.strip_suffix(" @ ").alias("row"),
        pl.col("end").fill_null(pl.lit(until).cast(pl.Datetime("us", "UTC"))).alias("until"),
        pl.when(pl.col("evidence").str.contains("state")).then(pl.lit("state"))
        .when(pl.col("evidence").str.contains("transition")).then(pl.lit("transition"))
        .otherwise(pl.lit("not_permitted_calls")).alias("main"),
    )
    for evidence, colour in EVIDENCE_COLOURS.items():
        part = frame.filter(pl.col("main") == evidence)
        if part.height == 0:
            continue
        duration_ms = ((part["until"] - part["start"]).dt.total_milliseconds()).to_list()
        fig.add_bar(
            base=_naive(part["start"]), x=duration_ms, y=part["row"].to_list(), orientation="h", name=evidence.replace("_", " "),
            marker_color=colour, customdata=part.select("evidence", "blocked_calls", "duration_s").rows(),
            hovertemplate="%{y}<br>open %{customdata[2]:.0f} s (%{customdata[0]})<br>%{customdata[1]} calls refused<extra></extra>",
        )
    if events is not None:
        add_event_markers(fig, events)
    rows = max(frame["row"].n_unique() if frame.height else 1, 1)
    fig.update_layout(height=120 + 28 * rows, margin={"l": 10, "r": 10, "t": 30, "b": 10}, barmode="overlay",
                      xaxis={"type": "date", "title": "time (UTC)"}, yaxis={"autorange": "reversed"},
                      legend={"orientation": "h", "y": 1.15, "title": "open, seen from"})
    return fig


def caller_latency_chart(windows: pl.DataFrame, breaker: str) -> go.Figure:
    """The callers' p99 per window against the SLO, with windows where the breaker stayed closed marked."""
    rows = windows.filter(pl.col("breaker") == breaker).sort("window_start")
    fig = go.Figure()
    x = _naive(rows["window_start"])
    fig.add_scatter(x=x, y=(rows["p99_ms"] / 1000).to_list(), mode="lines+markers", name="callers' p99 (s)",
                    line={"color": "#1f77b4"})
    fig.add_scatter(x=x, y=(rows["slo_ms"] / 1000).to_list(), mode="lines", name="SLO (s)", line={"color": "#2ca02c", "dash": "dash"})
    flagged = rows.filter(pl.col("should_have_tripped"))
    fig.add_scatter(x=_naive(flagged["window_start"]), y=(flagged["p99_ms"] / 1000).to_list(), mode="markers",
                    name="should have tripped", marker={"color": "#d62728", "size": 11, "symbol": "x"})
    acted = rows.filter(pl.col("acted"))
    fig.add_scatter(x=_naive(acted["window_start"]), y=(acted["p99_ms"] / 1000).to_list(), mode="markers",
                    name="breaker acted", marker={"color": "#ff7f0e", "size": 9, "symbol": "circle-open"})
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis={"title": "seconds", "rangemode": "tozero"},
                      legend={"orientation": "h", "y": 1.15})
    return fig


PALETTE = ("#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


def saturation_chart(sat: pl.DataFrame, events: pl.DataFrame | None = None) -> go.Figure:
    """Saturation (active/max, %) per pool over time, waiting clients dotted on the right axis, one colour per
    pool. Pools that were never saturated start hidden (click the legend to show them)."""
    fig = go.Figure()
    per_pool = sat.group_by(["pool", "ts"]).agg(
        (pl.col("active").sum() / pl.col("max").sum()).alias("saturation"), pl.col("waiters").sum(),
        pl.col("saturated").any()).sort("ts")
    ranked = per_pool.group_by("pool").agg(pl.col("saturated").any().alias("hit"), pl.col("saturation").max().alias("peak")).sort(
        ["hit", "peak", "pool"], descending=[True, True, False], nulls_last=True)
    for i, (pool, hit) in enumerate(ranked.select("pool", "hit").iter_rows()):
        rows = per_pool.filter(pl.col("pool") == pool)
        colour, visible = PALETTE[i % len(PALETTE)], True if hit else "legendonly"
        fig.add_scatter(x=_naive(rows["ts"]), y=(rows["saturation"] * 100).to_list(), mode="lines", name=f"{pool} busy %",
                        legendgroup=pool, line={"color": colour}, visible=visible)
        fig.add_scatter(x=_naive(rows["ts"]), y=rows["waiters"].to_list(), mode="lines", name=f"{pool} waiting", yaxis="y2",
                        legendgroup=pool, line={"color": colour, "dash": "dot", "width": 1}, visible=visible)
    fig.add_hline(y=100, line={"color": "#d62728", "dash": "dash", "width": 1}, annotation_text="exhausted")
    if events is not None:
        add_event_markers(fig, events)
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h", "y": 1.2},
                      yaxis={"title": "busy %", "rangemode": "tozero"},
                      yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "title": "waiting", "rangemode": "tozero"})
    return fig
