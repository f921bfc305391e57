"""Plotly builders for the trace pages: layout of the service graph and figure contents."""

from __future__ import annotations

import polars as pl

from analysis.service_map import service_graph
from analysis.traces import retry_amplification, trace_diff, waterfall_rows
from tests.span_builders import frame, span
from ui.charts_traces import diff_figure, graph_layout, retry_figure, service_map_figure, waterfall_figure


def _nodes_edges(pairs: list[tuple[str, str]], entry: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    services = sorted({s for p in pairs for s in p})
    nodes = pl.DataFrame({"service": services, "spans": [10] * len(services), "bad_rate": [0.0] * len(services),
                          "is_entry": [s == entry for s in services]})
    edges = pl.DataFrame({"caller": [a for a, _ in pairs], "callee": [b for _, b in pairs],
                          "calls": [5] * len(pairs), "bad_rate": [0.1] * len(pairs)})
    return nodes, edges


def test_graph_layout_layers_by_longest_call_depth_and_survives_cycles() -> None:
    nodes, edges = _nodes_edges([("gw", "api"), ("api", "db"), ("gw", "db"), ("db", "api")], "gw")
    pos = graph_layout(nodes, edges)
    assert pos["gw"][0] == 0 and pos["api"][0] >= 1 and pos["db"][0] >= 1
    assert len({p for p in pos.values()}) == 3  # no two services drawn on top of each other
    nodes, edges = _nodes_edges([("a", "b"), ("b", "c")], "a")
    assert [graph_layout(nodes, edges)[s][0] for s in "abc"] == [0.0, 1.0, 2.0]


def test_service_map_figure_rings_degraded_services_and_carries_names_for_clicks() -> None:
    nodes, edges = _nodes_edges([("gw", "pay"), ("pay", "fraud"), ("gw", "cart")], "gw")
    fig = service_map_figure(nodes, edges, {"pay", "fraud"}, ["fraud", "pay", "gw"], focus="cart")
    node_trace = fig.data[-1]
    widths = dict(zip(node_trace.text, node_trace.marker.line.width, strict=True))
    assert widths == {"cart": 3, "fraud": 4, "gw": 1, "pay": 4}
    assert [c[0] for c in node_trace.customdata] == list(node_trace.text)
    hot = [t for t in fig.data[:-1] if t.line.color == "#d62728"]
    assert len(hot) == 2  # fraud→pay and pay→gw drawn as the propagation path


def test_waterfall_diff_and_retry_figures_reflect_their_frames() -> None:
    rows = [span("c1", "r", None, "web", "GET /", 0, 100),
            span("c1", "a", "r", "db", "query", 10, 80, status="error")]
    wf = waterfall_rows(frame(rows))
    fig = waterfall_figure(wf)
    assert list(fig.data[0].x) == [100.0, 80.0] and list(fig.data[0].base) == [0.0, 10.0]
    assert fig.data[0].marker.color[1] == "#d62728"
    diff = trace_diff(frame(rows), frame([dict(r, duration_ms=r["duration_ms"] / 2) for r in rows]))
    assert diff_figure(diff).data[0].x[0] > 0
    retry_rows = [span("d1", "r", None, "web", "GET /", 0, 50)] + [
        span("d1", f"k{i}", "r", "web", "POST /pay", 5 + 10 * i, 8, kind="client", retry_attempt=str(i))
        for i in range(3)
    ]
    fig = retry_figure(retry_amplification(frame(retry_rows)))
    assert fig.data[0].y[0] == 3.0 and "no idempotency key" in fig.data[0].name
    nodes, edges = service_graph(frame(retry_rows))
    assert service_map_figure(nodes, edges).data[-1].text == ("web",)
