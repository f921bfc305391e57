"""Rank services as the likely root cause of a latency fault, from spans alone.

Idea (own design, informed by MicroRank / TraceRCA): latency that a service *adds itself* is what
points at it; latency it merely waits for is its callees'. So we compare **self time** (duration
minus the union of children's intervals) of every (service, operation) between the fault window
and a normal window, never raw durations. Two refinements:

* **Edge time.** A span whose children all live in *another* service is a client call; its self
  time is network + queueing + client work around a remote call, and it can belong to either side
  (a slow network to the callee, or a starved caller). We attribute it by the shape of the anomaly
  on the service graph: a caller whose calls to *many* callees got slow is the suspect; a callee
  that *all its callers* see slow is the suspect. Weight to the callee = in/(in+out), where in =
  share of the callee's inbound edges that are anomalous and out = share of the caller's outbound
  edges that are anomalous.
* **Robust scale.** The anomaly of a group is (fault median − normal median) divided by the normal
  spread (p90 − median, at least 10 % of the median and ``floor_ms``), so sub-millisecond jitter
  on tiny spans does not outrank a real slowdown; groups with fewer than ``min_calls`` spans in
  the fault window are ignored.
"""

from __future__ import annotations

import polars as pl

from analysis.trace_tree import self_time, with_keys

_GROUP = ["service", "operation", "component", "callee"]


def _components(spans: pl.DataFrame) -> pl.DataFrame:
    """Self time per span, tagged ``own`` or ``edge`` (client call into ``callee``)."""
    st = with_keys(self_time(spans))
    kids = (
        st.filter(pl.col("_pid").is_not_null())
        .group_by(pl.col("_pid").alias("_sid"))
        .agg(child_services=pl.col("service").unique())
    )
    return (
        st.join(kids, on="_sid", how="left")
        .with_columns(
            # a client-side call: not a server/consumer span, every child in another service
            remote_only=pl.col("child_services").is_not_null()
            & ~pl.col("child_services").list.contains(pl.col("service"))
            & ~pl.col("kind").fill_null("").is_in(["server", "consumer"])
            & pl.col("parent_span_id").is_not_null()
        )
        .with_columns(
            component=pl.when(pl.col("remote_only")).then(pl.lit("edge")).otherwise(pl.lit("own")),
            callee=pl.when(pl.col("remote_only")).then(pl.col("child_services").list.first()).otherwise(pl.lit("")),
        )
        .select(*_GROUP, "self_ms")
    )


def group_anomalies(
    fault_spans: pl.DataFrame, normal_spans: pl.DataFrame, *, min_calls: int = 3, floor_ms: float = 0.5
) -> pl.DataFrame:
    """Per (service, operation, component, callee): normal and fault self-time medians and the
    robust anomaly score (≥ 0). Groups unseen in the normal window are compared with the service's
    overall normal spread for that component."""
    fault = _components(fault_spans).group_by(_GROUP).agg(
        calls=pl.len(), fault_med_ms=pl.col("self_ms").median(), fault_mean_ms=pl.col("self_ms").mean()
    )
    normal = _components(normal_spans).group_by(_GROUP).agg(
        normal_calls=pl.len(),
        normal_med_ms=pl.col("self_ms").median(),
        normal_p90_ms=pl.col("self_ms").quantile(0.9),
    )
    spread = pl.max_horizontal(
        pl.col("normal_p90_ms") - pl.col("normal_med_ms"), 0.1 * pl.col("normal_med_ms"), pl.lit(floor_ms)
    )
    return (
        fault.filter(pl.col("calls") >= min_calls)
        .join(normal, on=_GROUP, how="left")
        .with_columns(pl.col("normal_med_ms").fill_null(0.0), pl.col("normal_p90_ms").fill_null(0.0))
        .with_columns(
            excess_ms=(pl.col("fault_med_ms") - pl.col("normal_med_ms")).clip(lower_bound=0.0),
            anomaly=((pl.col("fault_med_ms") - pl.col("normal_med_ms")) / spread).clip(lower_bound=0.0),
        )
    )


def rank_root_cause_services(
    fault_spans: pl.DataFrame,
    normal_spans: pl.DataFrame,
    *,
    min_calls: int = 3,
    floor_ms: float = 0.5,
    edge_threshold: float = 3.0,
) -> pl.DataFrame:
    """Services ranked as the likely root cause, most likely first.

    Medians make the ranking robust to noise but blind to a fault that hits only a few requests:
    for a cohort-specific incident pass the selected (bad) traces as ``fault_spans``.

    Columns: ``rank`` (1-based), ``service``, ``score`` (sum of the anomalies attributed to the
    service, in units of normal spread: a starved service is slow on many operations and edges),
    ``own_score`` / ``edge_score`` (largest single own / edge contribution), ``top_operation`` (the
    largest contribution) and ``excess_ms`` (its median self-time increase). Services seen only in the normal window
    get score 0 and rank last.
    """
    groups = group_anomalies(fault_spans, normal_spans, min_calls=min_calls, floor_ms=floor_ms)
    own = groups.filter(pl.col("component") == "own").select(
        pl.col("service").alias("suspect"), "operation", "anomaly", "excess_ms", weight=pl.lit(1.0)
    )
    edges = groups.filter(pl.col("component") == "edge")
    edge_any = edges.group_by(caller=pl.col("service"), callee=pl.col("callee")).agg(
        bad=(pl.col("anomaly") >= edge_threshold).any()
    )
    # the caller's share covers its own operations too: a starved caller is slow everywhere
    own_any = groups.filter(pl.col("component") == "own").group_by(caller=pl.col("service")).agg(
        bad=(pl.col("anomaly") >= edge_threshold).any(), n=pl.len()
    )
    out_frac = pl.concat(
        [edge_any.select("caller", "bad"), own_any.select("caller", "bad")], how="vertical_relaxed"
    ).group_by("caller").agg(out_frac=pl.col("bad").mean())
    in_frac = edge_any.group_by("callee").agg(in_frac=pl.col("bad").mean())
    edges = (
        edges.join(out_frac, left_on="service", right_on="caller", how="left")
        .join(in_frac, on="callee", how="left")
        .with_columns(
            w_callee=pl.when(pl.col("in_frac") + pl.col("out_frac") > 0)
            .then(pl.col("in_frac") / (pl.col("in_frac") + pl.col("out_frac")))
            .otherwise(0.5)
        )
    )
    attributed = pl.concat(
        [
            own,
            edges.select(
                pl.col("service").alias("suspect"), "operation", "anomaly", "excess_ms",
                weight=1.0 - pl.col("w_callee"),
            ),
            edges.select(
                pl.col("callee").alias("suspect"), "operation", "anomaly", "excess_ms", weight=pl.col("w_callee")
            ),
        ],
        how="vertical_relaxed",
    ).with_columns(score=pl.col("anomaly") * pl.col("weight"))
    per_service = (
        attributed.sort(["score", "operation"], descending=[True, False])  # equal scores: the same pick every run
        .group_by("suspect", maintain_order=True)
        .agg(
            score=pl.col("score").sum(),
            top_operation=pl.col("operation").first(),
            excess_ms=pl.col("excess_ms").first(),
            own_score=pl.col("score").filter(pl.col("weight") == 1.0).max(),
            edge_score=pl.col("score").filter(pl.col("weight") < 1.0).max(),
        )
        .rename({"suspect": "service"})
    )
    everyone = pl.concat([fault_spans.select("service"), normal_spans.select("service")]).unique()
    ranked = (
        everyone.join(per_service, on="service", how="left")
        .with_columns(pl.col("score", "own_score", "edge_score").fill_null(0.0))
        .sort(["score", "service"], descending=[True, False])
    )
    return ranked.with_columns(rank=pl.int_range(1, pl.len() + 1)).select(
        "rank", "service", "score", "own_score", "edge_score", "top_operation", "excess_ms"
    )


def _fan_out(spans: pl.DataFrame) -> pl.DataFrame:
    """Per (service, operation): spans and mean number of child spans per span."""
    children = (
        spans.filter(pl.col("parent_span_id").is_not_null())
        .group_by("trace_id", pl.col("parent_span_id").alias("span_id"))
        .agg(children=pl.len())
    )
    return (
        spans.join(children, on=["trace_id", "span_id"], how="left")
        .with_columns(pl.col("children").fill_null(0))
        .group_by("service", "operation")
        .agg(spans=pl.len(), fan_out=pl.col("children").mean())
    )


def rank_by_structure(fault_spans: pl.DataFrame, normal_spans: pl.DataFrame, *, min_calls: int = 5) -> pl.DataFrame:
    """Services ranked by how much of their operations' call fan-out vanished (a code-defect signal).

    An exception (or an early wrong return) aborts a handler before its downstream calls, so the
    faulty operation's spans have fewer children than they normally do, while its callers still
    call it as often. Score per service: the largest relative drop of mean children per span over
    its operations seen at least ``min_calls`` times in both windows and with children normally.
    Blind to defects that change neither timing nor structure (a wrong value passed on
    unchanged); with span status at hand, errors are the better evidence (:mod:`analysis.origin`).
    Columns: ``rank``, ``service``, ``score`` (0–1), ``top_operation``.
    """
    joined = (
        _fan_out(fault_spans)
        .join(_fan_out(normal_spans), on=["service", "operation"], suffix="_normal")
        .filter(pl.col("spans") >= min_calls, pl.col("spans_normal") >= min_calls, pl.col("fan_out_normal") > 0)
        .with_columns(drop=(pl.col("fan_out_normal") - pl.col("fan_out")) / pl.col("fan_out_normal"))
    )
    per_service = (
        joined.sort(["drop", "operation"], descending=[True, False])
        .group_by("service", maintain_order=True)
        .agg(score=pl.col("drop").first(), top_operation=pl.col("operation").first())
    )
    everyone = pl.concat([fault_spans.select("service"), normal_spans.select("service")]).unique()
    ranked = (
        everyone.join(per_service, on="service", how="left")
        .with_columns(pl.col("score").fill_null(0.0))
        .sort(["score", "service"], descending=[True, False])
    )
    return ranked.with_columns(rank=pl.int_range(1, pl.len() + 1)).select("rank", "service", "score", "top_operation")
