"""Plotly builders for the Traces and Service map pages (pure: frames in, figures out)."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import polars as pl

from analysis.traces import duration_text
from ui.charts import LEGEND_BELOW

CRITICAL = "#ff7f0e"
ERROR = "#d62728"
NORMAL = "#7f9fbf"
SLOW_OUTLINE = "#8c564b"


BAR_SHIFT = 0.22  # a row's bar sits just under its label
INDENT = "\u00a0\u00a0\u00a0"  # plotly collapses ordinary spaces in tick labels; no-break spaces keep the tree


def tree_labels(rows: pl.DataFrame) -> list[str]:
    """Span labels indented by call depth, children marked with ``└``, so the call tree reads top-down."""
    return rows.select(
        pl.when(pl.col("depth") > 0)
        .then(pl.concat_str([pl.lit(INDENT).repeat_by(pl.col("depth").cast(pl.UInt32) - 1).list.join(""),
                             pl.lit("└ "), pl.col("label")]))
        .otherwise(pl.col("label"))
    ).to_series().to_list()


def row_labels(rows: pl.DataFrame, durations: list[str]) -> list[str]:
    """One label per waterfall row: the indented tree, then the row's duration."""
    return [f"{t}\u00a0\u00a0{d}" for t, d in zip(tree_labels(rows), durations, strict=True)]


def critical_path_is_informative(rows: pl.DataFrame) -> bool:
    """The critical path tells something only when some rows are off it (a single chain is all path)."""
    on_path = rows["on_critical_path"].fill_null(False)
    return bool(on_path.any()) and not bool(on_path.all())


def waterfall_figure(rows: pl.DataFrame) -> go.Figure:
    """Horizontal bars from ``analysis.waterfall.waterfall_rows``, each under its label: the span tree
    indented by depth with the row's duration. Labels sit inside the plot, left-aligned over their bar, so
    on a phone they take no width from the bars (tick labels would). Errors red, the critical path orange
    (only when some spans are off it), slow spans outlined; folded sibling runs show ``×n``. Each bar
    carries its ``span_id`` (customdata[0]) for clicks."""
    highlight = critical_path_is_informative(rows)
    colours = [
        ERROR if err else CRITICAL if crit and highlight else NORMAL
        for err, crit in zip(rows["is_error"].to_list(), rows["on_critical_path"].to_list(), strict=True)
    ]
    outline = [SLOW_OUTLINE if slow else "rgba(0,0,0,0)" for slow in rows["is_slow"].to_list()]
    text = rows.select(
        duration_text(pl.col("duration_ms").cast(pl.Float64)).alias("d"),
        duration_text(pl.col("offset_ms").cast(pl.Float64)).alias("o"),
        duration_text(pl.col("self_ms").cast(pl.Float64)).alias("s"),
    )
    labels = row_labels(rows, text["d"].to_list())
    fig = go.Figure(
        go.Bar(
            y=[i + BAR_SHIFT for i in range(rows.height)],
            x=rows["duration_ms"].to_list(),
            base=rows["offset_ms"].to_list(),
            orientation="h", width=0.36,
            marker={"color": colours, "line": {"color": outline, "width": 2}},
            customdata=list(zip(rows["span_id"].to_list(), rows["label"].to_list(), text["o"].to_list(),
                                text["d"].to_list(), text["s"].to_list(), rows["count"].to_list(), strict=True)),
            hovertemplate="%{customdata[1]}<br>starts at +%{customdata[2]}, takes %{customdata[3]}"
            "<br>self %{customdata[4]}, %{customdata[5]} span(s)<extra></extra>",
        )
    )
    for i, label in enumerate(labels):
        fig.add_annotation(x=0, xref="paper", y=i - 0.22, yref="y", text=label, showarrow=False, xanchor="left",
                           yanchor="middle",
                           font={"family": "DejaVu Sans Mono, monospace", "size": 11, "color": "#31333f"})
    fig.update_layout(
        height=max(200, 34 * rows.height + 60),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"title": "ms since the trace started", "rangemode": "tozero", "side": "top"},
        yaxis={"range": [rows.height - 0.4, -0.6], "showticklabels": False, "showgrid": False, "zeroline": False},
        showlegend=False,
        clickmode="event+select",
    )
    return fig


def diff_figure(diff: pl.DataFrame, top: int = 12) -> go.Figure:
    """Extra self time per trace (selection − baseline) for the nodes that gained the most."""
    shown = diff.head(top)
    names = [f"{s}: {o}" for s, o in zip(shown["service"].to_list(), shown["operation"].to_list(), strict=True)]
    extra = shown["extra_self_ms_per_trace"].to_list()
    fig = go.Figure(
        go.Bar(
            x=extra, y=names, orientation="h",
            marker_color=[ERROR if v > 0 else NORMAL for v in extra],
            customdata=list(zip(shown["path"].to_list(), shown["sel_calls_per_trace"].to_list(),
                                shown["base_calls_per_trace"].to_list(), strict=True)),
            hovertemplate="%{customdata[0]}<br>%{x:+.1f} ms self time per trace<br>calls per trace "
            "%{customdata[1]:.2f} vs %{customdata[2]:.2f}<extra></extra>",
        )
    )
    fig.update_layout(height=max(220, 28 * len(names) + 60), margin={"l": 10, "r": 10, "t": 10, "b": 30},
                      yaxis={"autorange": "reversed", "automargin": True},
                      xaxis={"title": "extra self time per trace (ms), selection − baseline"})
    return fig


def retry_figure(amp: pl.DataFrame, top_edges: int = 6) -> go.Figure:
    """Attempts per logical request over time for the edges that retry most; edges that retry
    without an idempotency key are drawn red and dashed."""
    fig = go.Figure()
    worst = (
        amp.group_by("caller", "callee")
        .agg(retries=pl.col("retries").sum(), unsafe=pl.col("retries_without_idempotency").any())
        .filter(pl.col("retries") > 0)
        .sort("retries", descending=True)
        .head(top_edges)
    )
    for caller, callee, _, unsafe in worst.iter_rows():
        series = amp.filter((pl.col("caller") == caller) & (pl.col("callee") == callee)).sort("bucket")
        fig.add_scatter(
            x=series["bucket"].to_list(), y=series["attempts_per_request"].to_list(), mode="lines+markers",
            name=f"{caller} → {callee}" + (" (no idempotency key)" if unsafe else ""),
            line={"dash": "dash", "color": ERROR} if unsafe else {},
            hovertemplate="%{y:.2f} attempts per request<extra>" + f"{caller} → {callee}</extra>",
        )
    fig.add_hline(y=1.0, line={"dash": "dot", "color": "#999"})
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      yaxis={"title": "attempts per logical request", "rangemode": "tozero"},
                      legend=LEGEND_BELOW)
    return fig


def graph_layout(nodes: pl.DataFrame, edges: pl.DataFrame) -> dict[str, tuple[float, float]]:
    """Layered positions: x = call depth from the entry services (longest path, cycles cut),
    y = spread within the layer. Loops over services, not spans."""
    services = nodes["service"].to_list()
    callees: dict[str, list[str]] = {s: [] for s in services}
    for caller, callee in edges.select("caller", "callee").iter_rows():
        if caller in callees and callee in callees and caller != callee:
            callees[caller].append(callee)
    entries = nodes.filter(pl.col("is_entry"))["service"].to_list() or services[:1]
    layer = {s: 0 for s in entries}
    for _ in range(len(services)):  # relax longest-path depths; bounded, so cycles cannot loop forever
        changed = False
        for caller in list(layer):
            for callee in callees[caller]:
                if layer.get(callee, -1) < layer[caller] + 1 and layer[caller] + 1 < len(services):
                    layer[callee] = layer[caller] + 1
                    changed = True
        if not changed:
            break
    for s in services:
        layer.setdefault(s, 0)
    by_layer: dict[int, list[str]] = {}
    for s in sorted(services):
        by_layer.setdefault(layer[s], []).append(s)
    return {
        s: (float(x), (i + 1) / (len(members) + 1))
        for x, members in by_layer.items() for i, s in enumerate(members)
    }


def service_map_figure(
    nodes: pl.DataFrame, edges: pl.DataFrame, degraded: set[str] | None = None, path: list[str] | None = None,
    focus: str | None = None,
) -> go.Figure:
    """Service graph: node colour = bad rate, size = traffic, degraded services ringed red, the
    propagation path drawn thick red. Node points carry the service name in ``customdata`` so a
    click can set the service filter."""
    degraded = degraded or set()
    on_path = set(zip(path or [], (path or [])[1:], strict=False))
    pos = graph_layout(nodes, edges)
    fig = go.Figure()
    max_calls = max(edges["calls"].max() or 1, 1) if edges.height else 1
    for caller, callee, calls, bad_rate in edges.select("caller", "callee", "calls", "bad_rate").iter_rows():
        if caller not in pos or callee not in pos:
            continue
        hot = (callee, caller) in on_path
        (x0, y0), (x1, y1) = pos[caller], pos[callee]
        fig.add_scatter(
            x=[x0, x1], y=[y0, y1], mode="lines", hoverinfo="skip", showlegend=False,
            line={"width": 5 if hot else 1 + 4 * math.log1p(calls) / math.log1p(max_calls),
                  "color": ERROR if hot else f"rgba(120,120,120,{0.3 + 0.6 * min(bad_rate * 5, 1):.2f})"},
        )
    names = nodes["service"].to_list()
    traffic = nodes["spans"].to_list()
    biggest = max(traffic) if traffic else 1
    fig.add_scatter(
        x=[pos[s][0] for s in names], y=[pos[s][1] for s in names], mode="markers+text", text=names,
        textposition="top center", customdata=[[s] for s in names], showlegend=False,
        marker={
            "size": [14 + 36 * math.sqrt(t / biggest) for t in traffic],
            "color": nodes["bad_rate"].to_list(), "colorscale": "YlOrRd", "cmin": 0.0,
            "cmax": max(0.05, float(nodes["bad_rate"].max() or 0)), "showscale": True,
            "colorbar": {"title": {"text": "bad rate", "side": "right"}, "tickformat": ".0%", "thickness": 10,
                         "len": 0.7},
            "line": {"color": [ERROR if s in degraded else "#333" for s in names],
                     "width": [4 if s in degraded else (3 if s == focus else 1) for s in names]},
        },
        hovertemplate="%{customdata[0]}<br>%{marker.color:.2%} bad<extra>click to filter</extra>",
    )
    fig.update_layout(height=460, margin={"l": 10, "r": 10, "t": 10, "b": 10}, clickmode="event+select",
                      xaxis={"visible": False}, yaxis={"visible": False, "range": [-0.05, 1.1]})
    return fig
