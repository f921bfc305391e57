"""Figures for the Breakers and Pools pages (pure: frames in, plotly figures out)."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from ui.charts import LEGEND_BELOW, add_event_markers

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
                      xaxis={"type": "date", "tickformat": "%H:%M", "nticks": 5, "tickangle": 0}, yaxis={"autorange": "reversed"},
                      legend={**LEGEND_BELOW, "title": "open, seen from "})
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
                      legend=LEGEND_BELOW)
    return fig


def saturation_chart(sat: pl.DataFrame, events: pl.DataFrame | None = None, *, bucket: str = "30s") -> go.Figure:
    """A heatmap of saturation (active/max, %) per pool × time bucket (the bucket's worst sample), pools
    that were saturated longest on top; the hover adds the waiting clients. A pool whose max is unknown
    leaves a gap rather than a guess."""
    per_sample = sat.group_by(["pool", "ts"]).agg(
        (pl.col("active").sum() / pl.col("max").sum()).alias("saturation"), pl.col("waiters").sum(), pl.col("saturated").any())
    per_cell = (
        per_sample.with_columns(pl.col("ts").dt.truncate(bucket).alias("bucket"))
        .group_by(["pool", "bucket"])
        .agg(pl.col("saturation").max(), pl.col("waiters").max(), pl.col("saturated").any())
    )
    ranked = per_cell.group_by("pool").agg(pl.col("saturated").sum().alias("hot"), pl.col("saturation").max().alias("peak")).sort(
        ["hot", "peak", "pool"], descending=[True, True, False], nulls_last=True)
    pools = ranked["pool"].to_list()
    buckets = per_cell.select(pl.col("bucket").unique().sort())
    grid = (
        pl.DataFrame({"pool": pools}).join(buckets, how="cross")
        .join(per_cell, on=["pool", "bucket"], how="left")
        .with_columns((pl.col("saturation") * 100).round(1).alias("pct"))
    )
    z = [grid.filter(pl.col("pool") == p)["pct"].to_list() for p in pools]
    waiting = [grid.filter(pl.col("pool") == p)["waiters"].to_list() for p in pools]
    fig = go.Figure(go.Heatmap(
        x=_naive(buckets["bucket"]), y=pools, z=z, customdata=waiting, zmin=0, zmax=100,
        colorscale=[[0.0, "#f7fbff"], [0.5, "#fdd49e"], [0.8, "#fc8d59"], [1.0, "#b30000"]],
        colorbar={"title": {"text": "busy %", "side": "right"}, "thickness": 10, "len": 0.9}, ygap=2,
        hovertemplate="%{y}<br>%{x|%H:%M:%S} UTC<br>%{z:.0f} % busy, %{customdata} waiting<extra></extra>",
    ))
    if events is not None:
        add_event_markers(fig, events)
    fig.update_layout(height=200 + 34 * max(len(pools), 1), margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend=LEGEND_BELOW,
                      xaxis={"type": "date", "tickformat": "%H:%M", "nticks": 5, "tickangle": 0}, yaxis={"type": "category", "autorange": "reversed"})
    return fig
