"""Plotly builders for the trace pages: layout of the service graph and figure contents."""

from __future__ import annotations

import plotly.graph_objects as go
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


def test_waterfall_marks_the_critical_path_only_when_some_spans_are_off_it() -> None:
    chain = [span("e1", "c", None, "web", "GET /", 0, 100), span("e1", "a", "c", "api", "call", 10, 80),
             span("e1", "b", "a", "db", "query", 20, 60)]
    chain_fig = waterfall_figure(waterfall_rows(frame(chain)))
    assert "#ff7f0e" not in list(chain_fig.data[0].marker.color)  # all path: colouring it says nothing
    fork = [span("f1", "a", None, "web", "GET /", 0, 100), span("f1", "b", "a", "api", "slow", 5, 90),
            span("f1", "c", "a", "cache", "get", 5, 3)]
    rows = waterfall_rows(frame(fork))
    colours = dict(zip(rows["operation"].to_list(), waterfall_figure(rows).data[0].marker.color, strict=True))
    assert colours["slow"] == "#ff7f0e" and colours["get"] != "#ff7f0e"


def test_waterfall_labels_form_an_indented_tree_with_readable_durations() -> None:
    rows = waterfall_rows(frame([span("a1", "c", None, "web", "GET /", 0, 16_123.352),
                                 span("a1", "a", "c", "api", "call", 10, 412.4),
                                 span("a1", "b", "a", "db", "query", 20, 0.42)]))
    fig = waterfall_figure(rows)
    labels = [a.text.replace("\u00a0", " ") for a in fig.layout.annotations]
    assert labels == ["web: GET /  16.1 s", "└ api: call  412 ms", "   └ db: query  0.42 ms"]
    assert all(a.xanchor == "left" and a.xref == "paper" for a in fig.layout.annotations)  # over the bars, not ticks
    # span ids, for clicks
    assert [c[0] for c in fig.data[0].customdata] == ["c".zfill(16), "a".zfill(16), "b".zfill(16)]


def test_event_markers_carry_their_words_in_the_hover_not_as_overlapping_labels() -> None:
    from datetime import UTC, datetime

    from ui.charts import add_event_markers

    events = pl.DataFrame({
        "ts": [datetime(2026, 3, 14, 2, 30, 5, tzinfo=UTC), datetime(2026, 3, 14, 2, 30, 40, tzinfo=UTC),
               datetime(2026, 3, 14, 2, 47, tzinfo=UTC)],
        "kind": ["breaker_transition", "pool_saturation", "leader_election"],
        "service": ["payments", "payments", "inventory"], "description": ["open", "pool full", "new leader"],
    })
    fig = go.Figure()
    add_event_markers(fig, events)
    assert not fig.layout.annotations, "no text labels that can collide"
    markers = {t.name: t for t in fig.data}
    assert set(markers) == {"breaker transition", "pool saturation", "leader election"}
    assert markers["leader election"].text == ("02:47:00 UTC leader election: inventory new leader",)
    assert len({t.y[0] for t in fig.data}) == 3, "two kinds in one minute sit on different rows"
    assert len(fig.layout.shapes) == 3


def test_durations_read_as_people_say_them_with_thresholds_on_the_rounded_value() -> None:
    from analysis.traces import format_duration_ms

    cases = {0.0: "0 ms", 0.4234: "0.42 ms", 412.4: "412 ms", 999.7: "1.0 s", 16_123.352: "16.1 s",
             59_990.0: "1 min 00 s",
             125_000.0: "2 min 05 s", None: "–", float("nan"): "–"}
    assert {k: format_duration_ms(k) for k in cases} == cases
