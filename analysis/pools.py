"""Connection pools: saturation over time, saturated periods, and the exhaustion chain.

The chain answers "who is holding the pool and who pays for it": saturated pool periods →
the backends holding connections (``pool_holders``, longest transaction first) → spans stuck
acquiring a connection during those periods → the root spans (users) of those traces.
Holders are matched to a period by time, preferring holders of the same ``source`` (a
pgbouncer source reports both); spans are matched by time and by what they are (see
:data:`ACQUIRE_PATTERN`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from analysis.cohort.attributes import named_candidates
from analysis.intervals import runs
from model.schemas import ATTR_PREFIX
from model.semconv import Roles, resolve_roles

KEY = ["source", "pool", "instance"]
# Span operations that are a connection acquire (HikariCP, database/sql, pgx, generic OTel names).
ACQUIRE_PATTERN = r"(?i)(\bacquire\b|acquire.?connection|connection.?acquire|getconnection|pool\.(wait|checkout)|conn.?wait)"
# SQL statements as span names (OTel uses the verb + table), and JDBC proxies (HikariProxyPreparedStatement.executeQuery).
DB_OPERATION_PATTERN = r"(?i)(^\s*(select|insert|update|delete|with|begin|commit|call)\b|\bexecute(query|update|batch)?\b)"
DB_SYSTEM, DB_POOL = ATTR_PREFIX + "db.system", ATTR_PREFIX + "db.pool"


def saturation(pools: pl.DataFrame, *, threshold: float = 1.0) -> pl.DataFrame:
    """Per pool×ts: ``saturation = active/max`` (null when max unknown), waiters, acquire time,
    ``timeouts_delta`` (rise of the timeouts counter since the previous sample; resets count from 0)
    and ``saturated``: saturation >= ``threshold``, or waiters while no connection is idle."""
    frame = pools.sort([*KEY, "ts"])
    diff = pl.col("timeouts") - pl.col("timeouts").shift(1).over(KEY)
    ratio = pl.when(pl.col("max") > 0).then(pl.col("active") / pl.col("max")).otherwise(None)
    frame = frame.with_columns(
        ratio.alias("saturation"),
        pl.col("pending").fill_null(0).alias("waiters"),
        pl.when(diff < 0).then(pl.col("timeouts")).otherwise(diff).fill_null(0).alias("timeouts_delta"),
    )
    saturated = (pl.col("saturation") >= threshold).fill_null(False) | (
        (pl.col("waiters") > 0) & (pl.col("idle").fill_null(0) == 0)
    )
    return frame.with_columns(saturated.alias("saturated"))


def saturation_periods(pools: pl.DataFrame, *, threshold: float = 1.0) -> pl.DataFrame:
    """Maximal saturated runs per (source, pool, instance) with their peak waiters/acquire time and timeouts."""
    sat = saturation(pools, threshold=threshold).with_columns(pl.col("instance").fill_null(""))
    periods = runs(sat, KEY, pl.col("saturated"))
    if periods.height == 0:
        return periods.with_columns(*(pl.lit(None, dtype=t).alias(c) for c, t in
                                      (("peak_waiters", pl.Int64), ("peak_acquire_ms", pl.Float64), ("timeouts", pl.Int64))))
    inside = periods.join(sat, on=KEY, how="left").filter(
        (pl.col("ts") >= pl.col("start")) & ((pl.col("ts") < pl.col("end")) | pl.col("end").is_null())
    )
    stats = inside.group_by([*KEY, "start"]).agg(
        pl.col("waiters").max().alias("peak_waiters"),
        pl.col("acquire_p99_ms").max().alias("peak_acquire_ms"),
        pl.col("timeouts_delta").sum().alias("timeouts"),
    )
    out = periods.join(stats, on=[*KEY, "start"], how="left")
    return out.with_columns(pl.when(pl.col("instance") == "").then(None).otherwise(pl.col("instance")).alias("instance")).sort("start")


@dataclass(frozen=True)
class ExhaustionChain:
    periods: pl.DataFrame  # saturation_periods
    holders: pl.DataFrame  # pool_holders rows in a period + pool, running_ms, xact_ms (longest first)
    stuck_spans: pl.DataFrame  # spans acquiring/waiting on the db during a period
    cohort: pl.DataFrame  # attribute, value, requests, share, baseline_share, lift (roots of stuck traces)
    affected_requests: int = 0  # root spans of traces with a stuck span
    affected_users: int | None = None  # distinct users among them (the user role); None: spans carry no user

    @property
    def found(self) -> bool:
        return self.periods.height > 0


def exhaustion_chain(
    pools: pl.DataFrame,
    pool_holders: pl.DataFrame,
    spans: pl.DataFrame,
    *,
    threshold: float = 1.0,
    min_stuck_ms: float = 500.0,
    top_values: int = 5,
    roles: Roles | None = None,
) -> ExhaustionChain:
    """Pool waiters → holding backends and their queries → stuck spans → the users behind them.

    A span is *stuck* when it overlaps a saturated period and either its operation matches
    :data:`ACQUIRE_PATTERN`, or it is a database call (``attr.db.system`` set, or an SQL-looking
    operation) lasting ``>= min_stuck_ms``. A span that names its pool (``attr.db.pool``) only
    counts for that pool. ``roles`` (resolved from the span columns when not given) names the user.
    """
    periods = saturation_periods(pools, threshold=threshold).with_row_index("period")
    stuck = _stuck(periods, spans, min_stuck_ms)
    roots = spans.filter(pl.col("is_root") & pl.col("trace_id").is_in(stuck.get_column("trace_id").unique().implode()))
    roles = roles if roles is not None else resolve_roles(spans.columns)
    user = roles.user
    users = roots.get_column(user).drop_nulls().n_unique() if user is not None else None
    return ExhaustionChain(periods, _holders(periods, pool_holders), stuck, _cohort(spans, stuck, top_values, roles),
                           affected_requests=roots.height, affected_users=users)


def _holders(periods: pl.DataFrame, holders: pl.DataFrame) -> pl.DataFrame:
    if periods.height == 0 or holders.height == 0:
        return holders.clear().with_columns(pl.lit(None, pl.String).alias("pool"), pl.lit(None, pl.Float64).alias("running_ms"),
                                             pl.lit(None, pl.Float64).alias("xact_ms"))
    cross = periods.select("period", "pool", pl.col("source").alias("pool_source"), "start", "end").join(holders, how="cross")
    inside = cross.filter((pl.col("ts") >= pl.col("start")) & ((pl.col("ts") <= pl.col("end")) | pl.col("end").is_null()))
    same = pl.col("source") == pl.col("pool_source")
    inside = inside.filter(same | ~same.any().over("period"))
    latest = inside.sort("ts").group_by(["period", "pid"], maintain_order=True).last()
    return latest.with_columns(
        ((pl.col("ts") - pl.col("query_start")).dt.total_microseconds() / 1000.0).alias("running_ms"),
        ((pl.col("ts") - pl.col("xact_start")).dt.total_microseconds() / 1000.0).alias("xact_ms"),
    ).drop("pool_source", "start", "end").sort(["period", "xact_ms", "running_ms"], descending=[False, True, True], nulls_last=True)


def _stuck(periods: pl.DataFrame, spans: pl.DataFrame, min_stuck_ms: float) -> pl.DataFrame:
    cols = ["trace_id", "span_id", "service", "operation", "start", "duration_ms"]
    if periods.height == 0 or spans.height == 0:
        return spans.select(cols).clear().with_columns(pl.lit(None, pl.String).alias("pool"), pl.lit(None, pl.Boolean).alias("acquire"))
    is_db = pl.col("operation").cast(pl.String).str.contains(DB_OPERATION_PATTERN)
    if DB_SYSTEM in spans.columns:
        is_db = is_db | pl.col(DB_SYSTEM).is_not_null()
    acquire = pl.col("operation").cast(pl.String).str.contains(ACQUIRE_PATTERN)
    named_pool = pl.col(DB_POOL) if DB_POOL in spans.columns else pl.lit(None, pl.String)
    lo, hi = periods["start"].min(), periods["end"].max() if periods["end"].null_count() == 0 else None
    span_end = pl.col("start") + pl.duration(microseconds=(pl.col("duration_ms") * 1000).cast(pl.Int64))
    window = (span_end >= lo) & ((pl.col("start") <= hi) if hi is not None else pl.lit(True))
    candidates = spans.filter(window & (acquire | (is_db & (pl.col("duration_ms") >= min_stuck_ms)))).select(
        *cols, acquire.alias("acquire"), named_pool.alias("__span_pool"))
    joined = candidates.join(periods.select("pool", pl.col("start").alias("p_start"), pl.col("end").alias("p_end")), how="cross")
    overlap = (span_end >= pl.col("p_start")) & ((pl.col("start") <= pl.col("p_end")) | pl.col("p_end").is_null())
    same_pool = pl.col("__span_pool").is_null() | (pl.col("__span_pool") == pl.col("pool"))  # a span naming its pool must match
    return joined.filter(overlap & same_pool).unique(["trace_id", "span_id"], keep="first", maintain_order=True).select(
        *cols, "pool", "acquire").sort("start")


def _cohort(spans: pl.DataFrame, stuck: pl.DataFrame, top_values: int, roles: Roles) -> pl.DataFrame:
    schema = {"attribute": pl.String, "value": pl.String, "requests": pl.UInt32, "share": pl.Float64,
              "baseline_share": pl.Float64, "lift": pl.Float64}
    attrs = named_candidates(spans, roles, plain=False)  # the cohort engine's never-a-cohort rule (ids, user, duplicates)
    if stuck.height == 0 or not attrs:
        return pl.DataFrame(schema=schema)
    roots = spans.filter(pl.col("is_root")).select("trace_id", *attrs)
    hit = roots.filter(pl.col("trace_id").is_in(stuck.get_column("trace_id").unique().implode()))
    counts, base = _requests_per_value(hit, attrs, "requests"), _requests_per_value(roots, attrs, "__base")
    out = counts.join(base, on=["attribute", "value"], how="left").with_columns(
        (pl.col("requests") / max(hit.height, 1)).alias("share"), (pl.col("__base") / max(roots.height, 1)).alias("baseline_share"),
    ).with_columns((pl.col("share") / pl.col("baseline_share")).alias("lift"))
    ranked = out.sort(["requests", "lift"], descending=True).group_by("attribute", maintain_order=True).head(top_values)
    return ranked.with_columns(pl.col("attribute").str.strip_prefix(ATTR_PREFIX)).select(list(schema)).cast(schema)


def _requests_per_value(roots: pl.DataFrame, attrs: list[str], name: str) -> pl.DataFrame:
    """``attribute, value, <name>``: distinct traces per attribute value (nulls left out).

    One group-by per column instead of unpivoting every root × attribute into one long frame (at a
    million requests that frame has tens of millions of rows); when no trace has two roots, distinct
    traces are rows, so no id set is built at all.
    """
    one_root_per_trace = roots.get_column("trace_id").n_unique() == roots.height
    parts = []
    for column in attrs:
        pairs = roots.select("trace_id", pl.col(column).cast(pl.String).alias("value")).drop_nulls("value")
        counted = (pairs.group_by("value").len(name) if one_root_per_trace
                   else pairs.group_by("value").agg(pl.col("trace_id").n_unique().alias(name)))
        parts.append(counted.select(pl.lit(column).alias("attribute"), "value", pl.col(name).cast(pl.UInt32)))
    schema = {"attribute": pl.String, "value": pl.String, name: pl.UInt32}
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)
