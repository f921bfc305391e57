"""Service graph, degraded services (blast radius through the trace graph) and root-cause ranking.

Edges come from parent→child span pairs whose services differ. Outcome columns (``is_bad``,
``is_error``) come from :func:`analysis.outcome.with_outcome`; when they are absent, errors alone
count as bad.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from analysis.outcome import is_error_expr
from analysis.periods import split_requests
from analysis.trace_tree import with_parent_service
from analysis.traces import sample_traces
from model.schemas import ATTR_PREFIX


def _bad(spans: pl.DataFrame) -> pl.DataFrame:
    if "is_bad" in spans.columns:
        return spans.with_columns(pl.col("is_bad").fill_null(False))
    return spans.with_columns(is_bad=is_error_expr().fill_null(False))


def service_graph(spans_with_outcome: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(nodes, edges)``. Nodes: ``service, spans, bad, bad_rate, p99_ms, is_entry`` (serves root
    spans). Edges: ``caller, callee, calls, bad, bad_rate, p99_ms`` (latency/outcome of the callee's
    spans on that edge)."""
    spans = _bad(spans_with_outcome)
    edges = (
        with_parent_service(spans.select("trace_id", "span_id", "parent_span_id", "service", "operation", "is_bad",
                                         "duration_ms"))
        .filter(pl.col("parent_service").is_not_null() & (pl.col("parent_service") != pl.col("service")))
        .group_by(caller=pl.col("parent_service"), callee=pl.col("service"))
        .agg(calls=pl.len(), bad=pl.col("is_bad").sum(), p99_ms=pl.col("duration_ms").quantile(0.99))
        .with_columns(bad_rate=pl.col("bad") / pl.col("calls"))
        .sort("calls", descending=True)
    )
    return _nodes(spans), edges


def _nodes(spans: pl.DataFrame) -> pl.DataFrame:
    return (
        spans.group_by("service")
        .agg(
            spans=pl.len(),
            bad=pl.col("is_bad").sum(),
            p99_ms=pl.col("duration_ms").quantile(0.99),
            is_entry=pl.col("is_root").any(),
        )
        .with_columns(bad_rate=pl.col("bad") / pl.col("spans"))
        .sort("spans", descending=True)
    )


def blast_radius_services(
    selection: pl.DataFrame,
    baseline: pl.DataFrame,
    *,
    min_count: int = 20,
    p99_ratio: float = 1.5,
    bad_rate_delta: float = 0.05,
) -> pl.DataFrame:
    """Services whose spans degraded in ``selection`` vs ``baseline``.

    A service is degraded when it has at least ``min_count`` spans in the selection and either its
    bad rate rose by ``bad_rate_delta`` (absolute) and by at least half again, or its p99 grew by
    ``p99_ratio``. Services absent from the baseline are compared with a zero bad rate and are not
    judged on latency. Sorted with the degraded ones first, worst first.
    """
    sel, base = _nodes(_bad(selection)), _nodes(_bad(baseline))
    joined = sel.select("service", "spans", "bad_rate", "p99_ms").join(
        base.select(
            "service",
            pl.col("spans").alias("baseline_spans"),
            pl.col("bad_rate").alias("baseline_bad_rate"),
            pl.col("p99_ms").alias("baseline_p99_ms"),
        ),
        on="service",
        how="left",
    )
    rate_up = (pl.col("bad_rate") - pl.col("baseline_bad_rate").fill_null(0.0) >= bad_rate_delta) & (
        pl.col("bad_rate") >= 1.5 * pl.col("baseline_bad_rate").fill_null(0.0)
    )
    return (
        joined.with_columns(
            bad_rate_delta=pl.col("bad_rate") - pl.col("baseline_bad_rate").fill_null(0.0),
            p99_ratio=pl.col("p99_ms") / pl.col("baseline_p99_ms"),
        )
        .with_columns(
            degraded=(pl.col("spans") >= min_count) & (rate_up | (pl.col("p99_ratio").fill_null(0.0) >= p99_ratio))
        )
        .sort(["degraded", "bad_rate_delta", "p99_ratio"], descending=True, nulls_last=True)
    )


def propagation_path(
    selection: pl.DataFrame, baseline: pl.DataFrame, *, min_count: int = 20, p99_ratio: float = 1.5
) -> pl.DataFrame:
    """The path the degradation travelled: from the deepest degraded service (one whose degraded
    callees are none) up through callers that are degraded too, to an entry service.

    Returns ``hop`` (0 = the origin), ``service``, ``calls_to_previous`` (calls on the edge from
    this service to the previous hop). Empty when nothing degraded. Walks services, not spans.
    """
    radius = blast_radius_services(selection, baseline, min_count=min_count, p99_ratio=p99_ratio)
    return _path_from(radius, lambda: service_graph(selection)[1])


def _path_from(radius: pl.DataFrame, selection_edges: Callable[[], pl.DataFrame]) -> pl.DataFrame:
    degraded = set(radius.filter(pl.col("degraded"))["service"].to_list())
    empty = pl.DataFrame(schema={"hop": pl.Int64, "service": pl.String, "calls_to_previous": pl.Int64})
    if not degraded:
        return empty
    edges = selection_edges()
    bad_edges = edges.filter(pl.col("caller").is_in(list(degraded)) & pl.col("callee").is_in(list(degraded)))
    has_bad_callee = set(bad_edges["caller"].to_list())
    leaves = [s for s in radius.filter(pl.col("degraded"))["service"].to_list() if s not in has_bad_callee]
    origin = leaves[0] if leaves else radius["service"][0]
    callers: dict[str, list[tuple[str, int]]] = {}
    for caller, callee, calls in bad_edges.select("caller", "callee", "calls").iter_rows():
        callers.setdefault(callee, []).append((caller, calls))
    hops, calls_col, cur = [origin], [0], origin
    while callers.get(cur):
        nxt, calls = max((c for c in callers[cur] if c[0] not in hops), key=lambda c: c[1], default=(None, 0))
        if nxt is None:
            break
        hops.append(nxt)
        calls_col.append(calls)
        cur = nxt
    return pl.DataFrame(
        {"hop": list(range(len(hops))), "service": hops, "calls_to_previous": calls_col}, schema=empty.schema
    )


@dataclass(frozen=True)
class ServiceMapView:
    """Everything the Service map page draws, computed once per (spans, period)."""

    nodes: pl.DataFrame
    edges: pl.DataFrame
    radius: pl.DataFrame | None  # None: no baseline (nothing before the period under the filter)
    path: list[str]
    ranked: pl.DataFrame | None
    requests: int  # root spans the view was computed over


def service_map_view(spans: pl.DataFrame, start: datetime, end: datetime | None, *, max_rank_traces: int,
                     max_baseline_traces: int) -> ServiceMapView:
    """The graph of the incident period (all of ``spans`` when it is empty), the degraded services and
    the path, and the likely origin, for ``spans`` split at ``[start, end)`` (the rest is the baseline).

    The same results as calling :func:`service_graph`, :func:`blast_radius_services`,
    :func:`propagation_path` and :func:`rank_root_cause_services` one by one, with each graph built once.
    """
    # no attribute is read here: without them, the period splits and span joins below copy a third as much
    spans = spans.select(c for c in spans.columns if not c.startswith(ATTR_PREFIX))
    selection, baseline = split_requests(spans, (start, end)).parts()
    nodes, edges = service_graph(selection if selection.height else spans)
    requests = int(spans.get_column("is_root").sum())
    if not (selection.height and baseline.height):
        return ServiceMapView(nodes, edges, None, [], None, requests)
    radius = blast_radius_services(selection, baseline)
    path = _path_from(radius, lambda: edges)["service"].to_list()
    bad_traces = selection.filter(pl.col("is_root") & pl.col("is_bad")).select("trace_id")
    fault = selection.join(bad_traces, on="trace_id", how="semi") if bad_traces.height else selection
    ranked = rank_root_cause_services(sample_traces(fault, max_rank_traces),
                                      sample_traces(baseline, max_baseline_traces))
    return ServiceMapView(nodes, edges, radius, path, ranked, requests)


from analysis.trace_rca import rank_root_cause_services  # noqa: E402  (re-exported: one import site for pages)

__all__ = [
    "ServiceMapView",
    "blast_radius_services",
    "propagation_path",
    "rank_root_cause_services",
    "service_graph",
    "service_map_view",
    "with_parent_service",
]
