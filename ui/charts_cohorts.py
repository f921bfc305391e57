"""Figures for the Cohorts page: latency scatter to brush, and selection-vs-baseline share bars."""

from __future__ import annotations

from datetime import UTC, datetime

import plotly.graph_objects as go
import polars as pl

from ui.charts import LEGEND_BELOW

MAX_POINTS = 15_000


def latency_scatter(requests: pl.DataFrame, box: dict[str, list[float | str]] | None, seed: int = 0) -> go.Figure:
    """Requests as points (time × duration in s), bad ones in red; the active brush is redrawn.

    The y axis is linear on purpose: a box selection on a log axis comes back in log units.
    """
    sample = requests if requests.height <= MAX_POINTS else requests.sample(MAX_POINTS, seed=seed)
    fig = go.Figure()
    for is_bad, colour, name in ((False, "rgba(31,119,180,0.35)", "good"), (True, "rgba(214,39,40,0.7)", "bad")):
        part = sample.filter(pl.col("is_bad") == is_bad)
        fig.add_scattergl(x=part.get_column("start").dt.replace_time_zone(None).to_list(),
                          y=(part.get_column("duration_ms") / 1000).to_list(), mode="markers", name=name,
                          marker={"size": 4, "color": colour},
                          hovertemplate="%{y:.2f} s at %{x}<extra>" + name + "</extra>")
    if box:
        fig.add_shape(type="rect", x0=box["x"][0], x1=box["x"][1], y0=box["y"][0], y1=box["y"][1],
                      line={"color": "#ff7f0e", "width": 2}, fillcolor="rgba(255,127,14,0.08)", yref="y")
    fig.update_layout(height=330, margin={"l": 10, "r": 10, "t": 30, "b": 10}, dragmode="select",
                      yaxis={"title": "duration (s)", "rangemode": "tozero"}, xaxis={"title": "time (UTC)"},
                      legend=LEGEND_BELOW)
    return fig


def share_bars(ranking: pl.DataFrame, attribute: str, max_values: int = 12) -> go.Figure:
    """BubbleUp-style, per value: its share of the baseline's requests, of the selection's requests and of
    the selection's bad requests. A value that is 30 % of traffic but 95 % of the bad requests stands
    out; one whose traffic share jumped (a retry storm from one client) shows in the first two bars."""
    rows = ranking.filter(pl.col("attribute") == attribute).sort("bad_share", descending=True).head(max_values)
    values = rows.get_column("value").fill_null("(none)").to_list()
    custom = [[attribute, v] for v in values]
    fig = go.Figure()
    for column, whose, colour in (("baseline_share", "the baseline's", "rgba(127,127,127,0.25)"),
                                  ("selection_share", "the selection's", "rgba(127,127,127,0.7)"),
                                  ("bad_share", "the selection's bad", "#d62728")):
        fig.add_bar(x=values, y=(rows.get_column(column) * 100).to_list(), name=f"{whose} requests",
                    marker_color=colour, customdata=custom,
                    hovertemplate="%{x}: %{y:.1f} % of " + whose + " requests<extra></extra>")
    fig.update_layout(barmode="group", height=230, margin={"l": 10, "r": 10, "t": 36, "b": 10},
                      title={"text": attribute, "font": {"size": 14}}, yaxis={"title": "% of requests"},
                      showlegend=False, clickmode="event+select")
    return fig


def parse_box(box: dict[str, list[float | str]]) -> tuple[datetime, datetime, float, float]:
    """A plotly box selection on the scatter as (t0, t1, lo_ms, hi_ms), sorted (the frontend doesn't sort)."""
    t0, t1 = sorted(datetime.fromisoformat(str(x)) for x in box["x"])
    lo, hi = sorted(float(y) * 1000 for y in box["y"])  # the axis is in seconds
    return t0.replace(tzinfo=UTC), t1.replace(tzinfo=UTC), lo, hi
