"""One time axis: change events plus markers derived from breakers, pools and spans.

Derived markers (``origin == "derived"``), all in the EVENTS schema:

* ``breaker_transition``: state changes seen in the breakers frame, for breakers that have no
  transition events of their own (the actuator/Hystrix connectors emit those);
* ``pool_saturation``: onset of each saturated pool period (``analysis.pools``);
* ``retry_storm``: request rate and retries spiking right after a leader election, failover,
  restart or breaker recovery (the thundering herd), see :func:`retry_storms`.
"""

from __future__ import annotations

import polars as pl

from analysis.breakers import transitions
from analysis.pools import saturation_periods
from model.schemas import ATTR_PREFIX, EVENTS

RETRY_ATTEMPT = ATTR_PREFIX + "retry_attempt"

TRIGGER_KINDS = ("leader_election", "failover", "restart", "recovery")
RECOVERY_STATES = ("closed", "half_open")


def timeline(
    events: pl.DataFrame | None,
    *,
    breakers: pl.DataFrame | None = None,
    pools: pl.DataFrame | None = None,
    spans: pl.DataFrame | None = None,
    bucket: str = "10s",
) -> pl.DataFrame:
    """Events and derived markers, sorted by time, with an ``origin`` column (``event``|``derived``)."""
    base = events if events is not None else pl.DataFrame(schema=EVENTS)
    parts = [base.select(list(EVENTS)).with_columns(pl.lit("event").alias("origin"))]
    derived = []
    if breakers is not None and breakers.height:
        derived.append(_breaker_markers(breakers, base))
    if pools is not None and pools.height:
        derived.append(_pool_markers(pools))
    if spans is not None and spans.height:
        derived.append(retry_storm_markers(retry_storms(spans, base, bucket=bucket)))
    parts += [d.with_columns(pl.lit("derived").alias("origin")) for d in derived if d.height]
    return pl.concat(parts, how="vertical").sort("ts", maintain_order=True)


def _breaker_markers(breakers: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    covered = transitions(events).get_column("breaker").unique().implode()
    frame = breakers.filter(~pl.col("breaker").is_in(covered)).sort(["source", "breaker", "instance", "ts"])
    prev = pl.col("state").shift(1).over(["source", "breaker", "instance"])
    moves = frame.with_columns(prev.alias("prev")).filter(pl.col("prev").is_not_null() & (pl.col("state") != pl.col("prev")).fill_null(False))
    return moves.select(
        "ts", pl.lit("breaker_transition").alias("kind"), pl.col("breaker").alias("service"),
        pl.format("breaker {} {} -> {} (scraped)", "breaker", "prev", "state").alias("description"),
        pl.struct("breaker", "instance", pl.col("prev").alias("from_state"), pl.col("state").alias("to_state"), "source")
        .struct.json_encode().alias("attrs"),
    ).cast(dict(EVENTS))


def _pool_markers(pools: pl.DataFrame) -> pl.DataFrame:
    periods = saturation_periods(pools)
    return periods.select(
        pl.col("start").alias("ts"), pl.lit("pool_saturation").alias("kind"), pl.col("pool").alias("service"),
        pl.format("pool {} saturated ({} waiting at peak)", "pool", pl.col("peak_waiters").fill_null(0)).alias("description"),
        pl.struct("source", "pool", "instance", "end", "peak_waiters", "peak_acquire_ms", "timeouts").struct.json_encode().alias("attrs"),
    ).cast(dict(EVENTS))


def _triggers(events: pl.DataFrame) -> pl.DataFrame:
    moves = transitions(events).filter(pl.col("to_state").is_in(RECOVERY_STATES) & pl.col("from_state").is_in(["open", "half_open"]))
    plain = events.filter(pl.col("kind").is_in(TRIGGER_KINDS)).select(pl.col("ts").alias("trigger_ts"), pl.col("kind").alias("trigger_kind"))
    recov = moves.select(pl.col("ts").alias("trigger_ts"), pl.lit("breaker_recovery").alias("trigger_kind"))
    return pl.concat([plain, recov]).unique(maintain_order=True).sort("trigger_ts")


def retry_storms(
    spans: pl.DataFrame,
    events: pl.DataFrame,
    *,
    bucket: str = "10s",
    before_s: int = 300,
    after_s: int = 120,
    rate_factor: float = 2.0,
    retry_factor: float = 3.0,
    min_retries: int = 5,
) -> pl.DataFrame:
    """For each trigger event, the first bucket within ``after_s`` where the request rate (root spans)
    is ``>= rate_factor`` × its mean over the ``before_s`` before, and retries (spans with
    ``attr.retry_attempt > 0``) are ``>= retry_factor`` × their mean before and at least
    ``min_retries``. Without a retry column only the rate counts. One row per trigger that stormed:
    ``trigger_ts, trigger_kind, ts (onset), delay_s, baseline_rps, peak_rps, baseline_retries, peak_retries``.
    """
    schema = {"trigger_ts": pl.Datetime("us", "UTC"), "trigger_kind": pl.String, "ts": pl.Datetime("us", "UTC"), "delay_s": pl.Float64,
              "baseline_rps": pl.Float64, "peak_rps": pl.Float64, "baseline_retries": pl.Float64, "peak_retries": pl.Int64}
    triggers = _triggers(events)
    if triggers.height == 0 or spans.height == 0:
        return pl.DataFrame(schema=schema)
    has_retry = RETRY_ATTEMPT in spans.columns
    retry = pl.col(RETRY_ATTEMPT).cast(pl.String).cast(pl.Int64, strict=False).fill_null(0) > 0 if has_retry else pl.lit(False)
    counted = spans.with_columns(pl.col("start").dt.truncate(bucket).alias("bucket"), retry.alias("retry")).group_by("bucket").agg(
        pl.col("is_root").sum().alias("requests"), pl.col("retry").sum().alias("retries"))
    grid = pl.DataFrame({"bucket": pl.datetime_range(counted["bucket"].min(), counted["bucket"].max(), bucket, eager=True,
                                                     time_zone="UTC", time_unit="us")})
    counted = grid.join(counted, on="bucket", how="left").fill_null(0)
    bucket_s = (grid["bucket"][1] - grid["bucket"][0]).total_seconds() if grid.height > 1 else 10.0
    pairs = triggers.join(counted, how="cross").with_columns(
        ((pl.col("bucket") - pl.col("trigger_ts")).dt.total_milliseconds() / 1000.0).alias("offset_s"))
    before = pairs.filter((pl.col("offset_s") < 0) & (pl.col("offset_s") >= -before_s)).group_by("trigger_ts").agg(
        pl.col("requests").mean().alias("base_req"), pl.col("retries").mean().alias("baseline_retries"))
    after = pairs.filter((pl.col("offset_s") >= -bucket_s) & (pl.col("offset_s") <= after_s)).join(before, on="trigger_ts", how="inner")
    storm = (pl.col("requests") >= rate_factor * pl.col("base_req")) & (pl.col("base_req") > 0)
    if has_retry:
        storm = storm & (pl.col("retries") >= pl.max_horizontal(retry_factor * pl.col("baseline_retries"), pl.lit(min_retries)))
    flagged = after.with_columns(storm.alias("storm")).group_by(["trigger_ts", "trigger_kind"]).agg(
        pl.col("bucket").filter(pl.col("storm")).min().alias("ts"),
        pl.col("base_req").first().alias("base_req"), pl.col("baseline_retries").first(),
        pl.col("requests").max().alias("peak_req"), pl.col("retries").max().cast(pl.Int64).alias("peak_retries"),
    ).filter(pl.col("ts").is_not_null()).sort("trigger_ts")
    # Triggers inside an earlier stormy trigger's window (six breakers recovering at once) are the same storm.
    reach = (pl.col("trigger_ts") + pl.duration(seconds=after_s)).cum_max().shift(1)
    flagged = flagged.filter(reach.is_null() | (pl.col("trigger_ts") > reach))
    return flagged.select(
        "trigger_ts", "trigger_kind", "ts", ((pl.col("ts") - pl.col("trigger_ts")).dt.total_milliseconds() / 1000.0).alias("delay_s"),
        (pl.col("base_req") / bucket_s).alias("baseline_rps"), (pl.col("peak_req") / bucket_s).alias("peak_rps"),
        "baseline_retries", "peak_retries",
    ).cast(schema).sort("ts")


def retry_storm_markers(storms: pl.DataFrame) -> pl.DataFrame:
    """``retry_storms`` rows as ``retry_storm`` events."""
    return storms.select(
        "ts", pl.lit("retry_storm").alias("kind"), pl.lit(None, pl.String).alias("service"),
        pl.format("retry storm {}s after {}: {} req/s (baseline {})", pl.col("delay_s").round(0), "trigger_kind",
                  pl.col("peak_rps").round(1), pl.col("baseline_rps").round(1)).alias("description"),
        pl.struct(pl.exclude("ts")).struct.json_encode().alias("attrs"),
    ).cast(dict(EVENTS))
