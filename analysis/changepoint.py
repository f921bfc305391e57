"""Find when an incident started: the single change-point in the bad-request rate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

# candidate bucket widths, smallest first; the first giving <= MAX_BUCKETS buckets is used
_WIDTHS_S = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
MAX_BUCKETS = 120
MIN_LLR = 10.0  # log-likelihood ratio below which the change is reported as weak


@dataclass(frozen=True)
class ChangePoint:
    """Where the bad rate steps up: ``start`` and the plain-words ``how`` it was found."""

    start: datetime
    rate_before: float
    rate_after: float
    llr: float  # log-likelihood ratio of "two rates" over "one rate"
    bucket_s: int
    clear: bool
    what: str = "bad"

    def describe(self) -> str:
        width = f"{self.bucket_s // 60}-minute" if self.bucket_s >= 60 else f"{self.bucket_s}-second"
        verdict = "detected" if self.clear else "weak change, best guess"
        return (
            f"{verdict}: the {self.what} rate rose from {self.rate_before:.1%} to {self.rate_after:.1%} "
            f"at {self.start:%Y-%m-%d %H:%M:%S} UTC (likelihood-ratio change-point over {width} buckets)"
        )


def _xlogx(count: pl.Expr, total: pl.Expr) -> pl.Expr:
    """count · ln(count / total), with 0 · ln 0 = 0."""
    return pl.when(count > 0).then(count * (count / total).log()).otherwise(0.0)


def _binomial_ll(bad: pl.Expr, total: pl.Expr) -> pl.Expr:
    return _xlogx(bad, total) + _xlogx(total - bad, total)


def change_point(requests: pl.DataFrame, flag: str = "is_bad", ts: str = "start") -> ChangePoint | None:
    """Most likely single step *up* of the rate of ``flag`` over time (None without data).

    Requests are bucketed (≤ 120 buckets); every bucket boundary is scored by the binomial
    log-likelihood ratio of "rate before ≠ rate after" against "one rate"; only increases count.
    """
    bucketed = rate_buckets(requests, flag, ts)
    return change_point_of_buckets(*bucketed, flag) if bucketed is not None else None


def rate_buckets(requests: pl.DataFrame, flag: str = "is_bad", ts: str = "start") -> tuple[pl.DataFrame, int] | None:
    """``bucket, bad, total`` of ``requests`` in the buckets :func:`change_point` uses, and their width
    (None with fewer than two requests)."""
    data = requests.select(pl.col(ts), pl.col(flag).cast(pl.Int64)).drop_nulls()
    if data.height < 2:
        return None
    t0, t1 = data[ts].min(), data[ts].max()
    width_s = bucket_width_s((t1 - t0).total_seconds())  # type: ignore[operator]
    buckets = (
        data.group_by(pl.col(ts).dt.truncate(f"{width_s}s").alias("bucket"))
        .agg(bad=pl.col(flag).sum().cast(pl.Float64), total=pl.len().cast(pl.Float64))
        .sort("bucket")
    )
    return buckets, width_s


def bucket_width_s(span_s: float) -> int:
    """The bucket width :func:`change_point` uses for data spanning ``span_s`` seconds."""
    return next((w for w in _WIDTHS_S if max(span_s, 1.0) / w <= MAX_BUCKETS), _WIDTHS_S[-1])


def change_point_of_buckets(buckets: pl.DataFrame, width_s: int, flag: str = "is_bad") -> ChangePoint | None:
    """:func:`change_point` over counts already bucketed (``bucket``, ``bad``, ``total``; epoch-aligned
    ``width_s`` buckets, sorted), e.g. by a database where the spans are."""
    buckets = buckets.select("bucket", pl.col("bad").cast(pl.Float64), pl.col("total").cast(pl.Float64))
    if buckets.height < 2:
        return None
    b_all, n_all = float(buckets["bad"].sum()), float(buckets["total"].sum())
    b1, n1 = pl.col("bad").cum_sum().shift(1), pl.col("total").cum_sum().shift(1)
    scored = buckets.with_columns(b1=b1, n1=n1).with_columns(b2=b_all - pl.col("b1"), n2=n_all - pl.col("n1"))
    scored = scored.slice(1).with_columns(
        llr=_binomial_ll(pl.col("b1"), pl.col("n1")) + _binomial_ll(pl.col("b2"), pl.col("n2"))
        - _binomial_ll(pl.lit(b_all), pl.lit(n_all)),
        rate_before=pl.col("b1") / pl.col("n1"),
        rate_after=pl.col("b2") / pl.col("n2"),
    ).filter(pl.col("rate_after") > pl.col("rate_before"))
    if scored.height == 0:
        first = buckets["bucket"][0]
        rate = b_all / n_all if n_all else 0.0
        return ChangePoint(first, rate, rate, 0.0, width_s, False, _what(flag))
    best = scored.sort("llr", descending=True).row(0, named=True)
    return ChangePoint(
        start=best["bucket"],
        rate_before=float(best["rate_before"]),
        rate_after=float(best["rate_after"]),
        llr=float(best["llr"]),
        bucket_s=width_s,
        clear=float(best["llr"]) >= MIN_LLR,
        what=_what(flag),
    )


ONSET_Z = 3.0  # a ramp's onset must carry this much excess (Poisson z against the rate before)


def ramp_onset(buckets: pl.DataFrame, found: ChangePoint) -> datetime:
    """Where a slow ramp began: at or before ``found.start`` (the best single step over ``buckets``,
    the ``bucket, bad, total`` series it was found on).

    A single step fitted to a rate that climbs over minutes lands inside the climb, so the time
    before it holds degraded requests too. Walking back from the step bucket by bucket, the
    excess ``Σbad − rate_before · Σtotal`` of the stretch up to the step is scored as a Poisson z
    against ``rate_before``; the start of the stretch with the largest z is the onset (a scan
    statistic: adding ramp buckets raises it, adding normal ones dilutes it), provided that z
    reaches ``ONSET_Z``. Otherwise the step itself is the start.
    """
    rate = max(found.rate_before, 1e-6)
    before = (buckets.select("bucket", pl.col("bad").cast(pl.Float64), pl.col("total").cast(pl.Float64))
              .filter(pl.col("bucket") < found.start).sort("bucket", descending=True))
    if before.height == 0:
        return found.start
    scan = before.with_columns(bad=pl.col("bad").cum_sum(), total=pl.col("total").cum_sum()).with_columns(
        z=(pl.col("bad") - rate * pl.col("total")) / (rate * pl.col("total")).sqrt()
    )
    best = scan.sort(["z", "bucket"], descending=[True, False]).row(0, named=True)
    return best["bucket"] if float(best["z"]) >= ONSET_Z else found.start


@dataclass(frozen=True)
class Onset:
    """A clear step in one cohort's own rate and where its climb began."""

    found: ChangePoint
    start: datetime


def onset_of_buckets(buckets: pl.DataFrame, width_s: int, flag: str = "is_bad") -> Onset | None:
    """The clear change point of a ``bucket, bad, total`` series and its ramp's onset (None: no clear step)."""
    found = change_point_of_buckets(buckets, width_s, flag)
    if found is None or not found.clear:
        return None
    return Onset(found, ramp_onset(buckets, found))


def _what(flag: str) -> str:
    return {"is_error": "error", "is_slow": "slow", "is_bad": "bad"}.get(flag, flag)


def detect_incident_start(requests: pl.DataFrame, flag: str = "is_bad") -> tuple[datetime, str]:
    """``(start, how)``: when the rate of ``flag`` stepped up, and how that was found.

    Without data (or a single bucket) the start is the first request and ``how`` says so.
    """
    found = change_point(requests, flag)
    if found is None:
        first = requests["start"].min() if requests.height else None
        start = first if isinstance(first, datetime) else datetime.now(UTC)
        return start, "not enough data to find a change; using the first request"
    return found.start, found.describe()
