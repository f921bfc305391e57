"""Circuit breakers: when they were open, which are open now, and when they should have tripped.

Inputs are the common frames (``model.schemas``). Breaker transitions in the events frame use
``kind == "breaker_transition"`` and a JSON ``attrs`` with ``breaker``, ``instance`` (optional),
``from_state`` and ``to_state`` (lowercase BREAKER_STATES); ``name``/``from``/``to`` and the
actuator's ``stateTransition`` (``CLOSED_TO_OPEN``) are accepted too.

Breaker configuration, for ``should_have_tripped``, is a small frame (``BREAKER_CONFIG``) with one
row per breaker — built by hand, or by :func:`config_from_events` from events of kind
``breaker_config`` whose attrs carry the same keys (the actuator and Hystrix connectors emit them).
"""

from __future__ import annotations

import polars as pl

from analysis.intervals import merge_intervals, runs
from analysis.outcome import with_outcome
from analysis.trace_tree import with_parent_service
from config import SloConfig
from model.schemas import ATTR_PREFIX

OPEN_STATES = ("open", "forced_open")
KEY = ["breaker", "instance"]

BREAKER_CONFIG = pl.Schema(
    {
        "breaker": pl.String,
        "failure_rate_threshold": pl.Float64,  # 0..1
        "slow_call_rate_threshold": pl.Float64,  # 0..1
        "slow_call_duration_threshold_ms": pl.Float64,
        "minimum_number_of_calls": pl.Int64,
        "timeout_ms": pl.Float64,
    }
)

OPEN_PERIODS = pl.Schema(
    {"breaker": pl.String, "instance": pl.String, "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
     "ongoing": pl.Boolean, "duration_s": pl.Float64, "evidence": pl.String, "blocked_calls": pl.Int64}
)


def transitions(events: pl.DataFrame | None) -> pl.DataFrame:
    """Breaker transition events as ``ts, breaker, instance, from_state, to_state``."""
    schema = {"ts": pl.Datetime("us", "UTC"), "breaker": pl.String, "instance": pl.String, "from_state": pl.String, "to_state": pl.String}
    if events is None or events.height == 0:
        return pl.DataFrame(schema=schema)
    rows = events.filter(pl.col("kind") == "breaker_transition")
    if rows.height == 0:
        return pl.DataFrame(schema=schema)
    attrs = rows.get_column("attrs").str.json_decode(
        pl.Struct({k: pl.String for k in ("breaker", "name", "instance", "from_state", "to_state", "from", "to", "stateTransition")})
    )
    parsed = rows.select("ts", "service").with_columns(attrs.alias("a")).unnest("a")
    pair = pl.col("stateTransition").str.to_lowercase().str.split("_to_")
    return parsed.select(
        "ts",
        pl.coalesce("breaker", "name", "service").alias("breaker"),
        pl.col("instance"),
        pl.coalesce(pl.col("from_state"), pl.col("from"), pair.list.get(0, null_on_oob=True)).str.to_lowercase().alias("from_state"),
        pl.coalesce(pl.col("to_state"), pl.col("to"), pair.list.get(1, null_on_oob=True)).str.to_lowercase().alias("to_state"),
    ).sort("ts")


def open_periods(breakers: pl.DataFrame, events: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every period a breaker was open, merged from three kinds of evidence.

    * ``state``: runs of scraped samples in open/forced_open (end = first later sample not open);
    * ``transition``: transition events into and out of open;
    * ``not_permitted_calls``: the blocked-calls counter rose between two samples that both say
      closed — a short open the scrape interval missed (resilience4j#164). The period is the
      interval between those two samples.

    Overlapping periods of one (breaker, instance) are merged; ``evidence`` lists their kinds
    joined with ``+``; ``blocked_calls`` is the rise of the counter inside the period.
    """
    frame = breakers.sort([*KEY, "ts"]).with_columns(pl.col("instance").fill_null(""))
    by_state = runs(frame, KEY, pl.col("state").is_in(OPEN_STATES)).with_columns(pl.lit("state").alias("evidence"))
    trans = transitions(events).with_columns(pl.col("instance").fill_null(""))
    by_event = runs(trans, KEY, pl.col("to_state").is_in(OPEN_STATES)).with_columns(pl.lit("transition").alias("evidence"))
    deltas = _blocked_deltas(frame)
    closed = pl.col("state").fill_null("closed") == "closed"
    inferred = deltas.filter((pl.col("blocked") > 0) & closed & pl.col("prev_state").fill_null("closed").eq("closed")).select(
        *KEY, pl.col("prev_ts").alias("start"), pl.col("ts").alias("end"), pl.lit(False).alias("ongoing"),
        pl.lit("not_permitted_calls").alias("evidence"),
    )
    cols = [*KEY, "start", "end", "ongoing", "evidence"]
    pieces = [p.select(cols) for p in (by_state, by_event, inferred) if p.height]
    if not pieces:
        return pl.DataFrame(schema=OPEN_PERIODS)
    merged = merge_intervals(pl.concat(pieces), KEY)
    blocked = (
        merged.join(deltas.select(*KEY, "ts", "blocked"), on=KEY, how="left")
        .filter((pl.col("ts") >= pl.col("start")) & ((pl.col("ts") <= pl.col("end")) | pl.col("end").is_null()))
        .group_by([*KEY, "start"]).agg(pl.col("blocked").sum().alias("blocked_calls"))
    )
    last_seen = frame.group_by(KEY).agg(pl.col("ts").max().alias("last_ts"))
    out = merged.join(blocked, on=[*KEY, "start"], how="left").join(last_seen, on=KEY, how="left")
    return out.select(
        "breaker",
        pl.when(pl.col("instance") == "").then(None).otherwise(pl.col("instance")).alias("instance"),
        "start", "end", "ongoing",
        ((pl.coalesce("end", "last_ts") - pl.col("start")).dt.total_milliseconds() / 1000.0).alias("duration_s"),
        "evidence",
        pl.col("blocked_calls").fill_null(0).cast(pl.Int64),
    ).cast(dict(OPEN_PERIODS)).sort(["start", "breaker"])


def _blocked_deltas(frame: pl.DataFrame) -> pl.DataFrame:
    """Per sample: calls blocked since the previous sample of the same breaker (a counter reset counts from 0)."""
    diff = pl.col("not_permitted_calls") - pl.col("not_permitted_calls").shift(1).over(KEY)
    return frame.with_columns(
        pl.col("ts").shift(1).over(KEY).alias("prev_ts"),
        pl.col("state").shift(1).over(KEY).alias("prev_state"),
        pl.when(diff < 0).then(pl.col("not_permitted_calls")).otherwise(diff).fill_null(0).alias("blocked"),
    ).filter(pl.col("prev_ts").is_not_null())


def open_now(breakers: pl.DataFrame) -> pl.DataFrame:
    """The latest sample of each (source, breaker, instance) that is not closed, with when that state began."""
    keys = ["source", "breaker", "instance"]
    frame = breakers.sort([*keys, "ts"]).with_columns(pl.col("instance").fill_null(""))
    run_id = (pl.col("state") != pl.col("state").shift(1)).fill_null(True).cum_sum().over(keys)
    frame = frame.with_columns(run_id.alias("run"))
    since = frame.group_by([*keys, "run"]).agg(pl.col("ts").min().alias("since"))
    latest = frame.group_by(keys).agg(pl.all().sort_by("ts").last())
    out = latest.join(since, on=[*keys, "run"], how="left").filter(pl.col("state").is_in([*OPEN_STATES, "half_open"]))
    return out.select(
        *keys[:2], pl.when(pl.col("instance") == "").then(None).otherwise(pl.col("instance")).alias("instance"),
        "state", "since", pl.col("ts").alias("last_seen"), "failure_rate", "not_permitted_calls",
    ).sort(["since", "breaker"])


def config_from_events(events: pl.DataFrame | None) -> pl.DataFrame:
    """The latest ``breaker_config`` event per breaker as a BREAKER_CONFIG frame."""
    if events is None or events.filter(pl.col("kind") == "breaker_config").height == 0:
        return pl.DataFrame(schema=BREAKER_CONFIG)
    rows = events.filter(pl.col("kind") == "breaker_config").sort("ts")
    decoded = rows.get_column("attrs").str.json_decode(pl.Struct(dict(BREAKER_CONFIG)))
    frame = rows.select("service").with_columns(decoded.alias("c")).unnest("c")
    frame = frame.with_columns(pl.coalesce("breaker", "service").alias("breaker"))
    return frame.group_by("breaker", maintain_order=True).last().select(list(BREAKER_CONFIG))



def should_have_tripped(
    breakers: pl.DataFrame,
    caller_spans: pl.DataFrame,
    slo: SloConfig,
    config: pl.DataFrame | None = None,
    *,
    window: str = "1m",
    max_bad_rate: float = 0.05,
    min_calls: int = 20,
    match_column: str | None = None,
    windows: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Windows where the callers' p99 or bad rate blew past the SLO while the breaker stayed closed.

    The flagged rows of :func:`breaker_windows` (see there for matching and the episode rule),
    with the breaker's ``config`` columns (BREAKER_CONFIG; see :func:`config_from_events`) and
    ``reason`` (the first applicable cause) / ``reasons`` (all, ``; ``-joined):
    ``slow_call_threshold_above_latency``, ``minimum_calls_not_reached``,
    ``timeout_longer_than_slo``, ``failure_threshold_above_error_rate``, else
    ``config_unknown``/``unexplained``. ``windows``: :func:`breaker_windows` of the same arguments, when
    the caller already has them (they are not computed twice).
    """
    if windows is None:
        windows = breaker_windows(breakers, caller_spans, slo, window=window, max_bad_rate=max_bad_rate,
                                  min_calls=min_calls, match_column=match_column)
    flagged = windows.filter(pl.col("should_have_tripped")).drop("degraded", "should_have_tripped")
    cfg = config if config is not None else pl.DataFrame(schema=BREAKER_CONFIG)
    flagged = flagged.join(cfg, on="breaker", how="left")
    return flagged.with_columns(_reasons()).with_columns(
        pl.col("reasons").list.first().alias("reason"), pl.col("reasons").list.join("; ").alias("reasons")
    ).sort(["window_start", "breaker"])


def breaker_windows(
    breakers: pl.DataFrame,
    caller_spans: pl.DataFrame,
    slo: SloConfig,
    *,
    window: str = "1m",
    max_bad_rate: float = 0.05,
    min_calls: int = 20,
    match_column: str | None = None,
) -> pl.DataFrame:
    """Callers' latency next to the breaker's behaviour, per breaker × window (every window with calls).

    ``caller_spans`` are the calls guarded by breakers (client spans, or the callee's server
    spans); ``match_column`` names the column holding the breaker name — by default the first of
    ``attr.breaker``, ``attr.peer.service``, ``service`` present, except that breakers named
    ``caller->callee`` match the callee's spans whose parent span belongs to the caller. Outcome
    columns (``is_bad``, ``is_error``, ``slo_ms``) are added from ``slo`` when missing.

    Columns: ``breaker, window_start, calls, p99_ms, bad_rate, error_rate, slo_ms, acted`` (a sample
    in a non-closed state — the last one before a window counts when it has none), ``blocked``
    (calls refused), ``breaker_failure_rate``, ``degraded`` (``>= min_calls`` calls and
    ``p99 > slo_ms`` or ``bad_rate > max_bad_rate``) and ``should_have_tripped``: degraded while the
    breaker never acted (no open state, no blocked call) in the whole episode of consecutive
    degraded-or-acting windows around it.
    """
    spans = caller_spans if "is_bad" in caller_spans.columns else with_outcome(caller_spans, slo)
    # only what the windows read: the edge join below would otherwise copy every attribute column
    matchable = [c for c in (match_column, ATTR_PREFIX + "breaker", ATTR_PREFIX + "peer.service") if c and c in spans.columns]
    read = ["trace_id", "span_id", "parent_span_id", "service", "operation", "start", "duration_ms", "is_bad", "is_error",
            "slo_ms"]
    spans = spans.select(*dict.fromkeys(c for c in [*read, *matchable] if c in spans.columns))
    names = breakers.get_column("breaker").unique()
    if match_column is None and names.str.contains("->").any():
        spans = _with_edge(spans)  # "caller->callee" breakers guard the callee's spans whose parent is the caller
        column = "__edge"
    else:
        column = match_column or next((c for c in (ATTR_PREFIX + "breaker", ATTR_PREFIX + "peer.service", "service") if c in spans.columns), "service")
    calls = (  # lazily: the filter then reads only the columns the windows need, no copy of the rest
        spans.lazy().filter(pl.col(column).is_in(names.implode()))
        .with_columns(pl.col(column).alias("breaker"), pl.col("start").dt.truncate(window).alias("window_start"))
        .group_by(["breaker", "window_start"])
        .agg(
            pl.len().alias("calls"),
            pl.col("duration_ms").quantile(0.99, "linear").alias("p99_ms"),
            pl.col("is_bad").mean().alias("bad_rate"),
            pl.col("is_error").mean().alias("error_rate"),
            pl.col("slo_ms").max().alias("slo_ms"),
        )
        .collect()
    )
    samples = breakers.with_columns(pl.col("instance").fill_null("")).sort([*KEY, "ts"])
    diff = pl.col("not_permitted_calls") - pl.col("not_permitted_calls").shift(1).over(KEY)
    state = (
        samples.with_columns(pl.col("ts").dt.truncate(window).alias("window_start"),
                             pl.when(diff < 0).then(pl.col("not_permitted_calls")).otherwise(diff).fill_null(0).alias("__blocked"))
        .sort("ts")
        .group_by(["breaker", "window_start"])
        .agg(
            (pl.col("state").fill_null("closed") != "closed").any().alias("acted"),
            pl.col("__blocked").sum().alias("blocked"),
            pl.col("state").last().alias("last_state"),
            pl.col("failure_rate").drop_nulls().last().alias("breaker_failure_rate"),
        )
    )
    joined = calls.join(state, on=["breaker", "window_start"], how="left").sort(["breaker", "window_start"])
    carried = pl.col("last_state").forward_fill().shift(1).over("breaker")
    joined = joined.with_columns(
        pl.col("acted").fill_null(carried.fill_null("closed") != "closed"),
        pl.col("blocked").fill_null(0),
    ).drop("last_state")
    degraded = (pl.col("calls") >= min_calls) & ((pl.col("p99_ms") > pl.col("slo_ms")) | (pl.col("bad_rate") > max_bad_rate))
    acted = pl.col("acted") | (pl.col("blocked") > 0)
    # An episode is a run of consecutive windows that were degraded or where the breaker acted; a breaker
    # that opened even briefly during the episode (even one the gauge missed) did its job.
    involved = degraded | acted
    episode = (involved != involved.shift(1).over("breaker")).fill_null(True).cast(pl.Int64).cum_sum().over("breaker")
    joined = joined.with_columns(degraded.alias("degraded"), acted.alias("__acted"), episode.alias("__episode"))
    return joined.with_columns(
        (pl.col("degraded") & ~pl.col("__acted").any().over(["breaker", "__episode"])).alias("should_have_tripped")
    ).drop("__acted", "__episode")


def _with_edge(spans: pl.DataFrame) -> pl.DataFrame:
    """Add ``__edge = "<parent service>-><service>"`` for spans whose parent is in another service."""
    edge = pl.when(pl.col("parent_service") != pl.col("service")).then(pl.concat_str("parent_service", pl.lit("->"), "service"))
    return with_parent_service(spans).with_columns(edge.alias("__edge")).drop("parent_service", "parent_operation")


def _reasons() -> pl.Expr:
    """All applicable reasons, most specific first, as a list column named ``reasons``."""
    checks = [
        ((pl.col("slow_call_duration_threshold_ms") >= pl.col("p99_ms")) & (pl.col("p99_ms") > pl.col("slo_ms")),
         "slow_call_threshold_above_latency"),
        ((pl.col("minimum_number_of_calls") > pl.col("calls")) | pl.col("breaker_failure_rate").is_null()
         & pl.col("minimum_number_of_calls").is_not_null(), "minimum_calls_not_reached"),
        (pl.col("timeout_ms") > pl.col("slo_ms"), "timeout_longer_than_slo"),
        (pl.col("failure_rate_threshold") > pl.col("error_rate"), "failure_threshold_above_error_rate"),
    ]
    found = pl.concat_list([pl.when(cond.fill_null(False)).then(pl.lit(name)).otherwise(None) for cond, name in checks]).list.drop_nulls()
    known = pl.any_horizontal([pl.col(c).is_not_null() for c in list(BREAKER_CONFIG)[1:]])
    fallback = pl.when(known).then(pl.lit(["unexplained"])).otherwise(pl.lit(["config_unknown"]))
    return pl.when(found.list.len() > 0).then(found).otherwise(fallback).alias("reasons")
