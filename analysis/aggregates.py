"""The seam between the cohort analysis and whatever engine counts the requests.

The cohort analysis needs counts, never the requests themselves: per-value class counts for the
ranking, leaf counts over the attributes the search chose, per-group and per-user counts for the
blast radius, a rate series for the change point. :class:`CohortAggregates` names them; two
engines implement it:

* :class:`PolarsAggregates` over requests in memory (the existing polars functions);
* ``connectors.clickhouse.ClickHouseConnector.aggregates(...)``, computed where the spans are
  (only the counts cross the wire).

:func:`investigate_aggregates` runs :func:`analysis.cohort.investigate`'s steps on either and gives
the same :class:`~analysis.cohort.report.Investigation`, plus what it was computed over.

Classes of a request, as everywhere in the cohort engine: 0 baseline good, 1 baseline bad,
2 selection good, 3 selection bad, null neither.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import polars as pl

from analysis.blast_radius import BlastRadius, affected_of_counts
from analysis.changepoint import Onset, bucket_width_s, change_point_of_buckets, onset_of_buckets
from analysis.cohort.attributes import _ID_NAME, MAX_VALUES, MIN_REQUESTS_PER_VALUE, PLAIN, never_a_cohort
from analysis.cohort.counts import class_counts
from analysis.cohort.describe import Cohort
from analysis.cohort.find import cohort_mask, cohorts_of_leaves, search_attributes
from analysis.cohort.rank import rank_counts
from analysis.cohort.report import Investigation, StartSource, refined_how
from analysis.outcome import Outcome, outcome_column
from model.periods import Window
from model.schemas import ATTR_PREFIX, MISSING, SPANS
from model.semconv import Roles, resolve_roles

ID_KEY_PATTERN = "(?i)" + _ID_NAME.pattern  # the never-a-cohort name rule, as RE2 (for SQL engines) and re
COUNT_COLUMNS = ("bad", "total", "base_bad", "base_total")


class CohortAggregates(Protocol):
    """The counts the cohort analysis reads, for one window of requests, SLO and outcome."""

    outcome: Outcome

    def summary(self) -> tuple[int, datetime | None, datetime | None]:
        """``(requests, first start, last start)``."""
        ...

    def over(self) -> str:
        """What the results are computed over, in words ("all 48,210,333 requests in …")."""
        ...

    def columns(self) -> list[str]:
        """Every ``attr.<key>`` column the requests carry (identifiers too: the user role is one)."""
        ...

    def within(self, pairs: Sequence[tuple[str, str]]) -> CohortAggregates:
        """The same aggregates over only one cohort's requests (``(key, value)`` pairs as a cohort has them:
        ``service`` or an attribute key without ``attr.``; ``"(missing)"`` matches an absent attribute)."""
        ...

    def rate_series(self, bucket_s: int = 60) -> pl.DataFrame:
        """``bucket, requests, bad, …`` per epoch-aligned bucket (``bad`` = the outcome's)."""
        ...

    def attribute_cardinality(self, id_key_pattern: str) -> pl.DataFrame:
        """``column, n_present, n_values, n_requests`` of every column that may describe a cohort."""
        ...

    def class_counts(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        """``column, value, cls, n`` (missing values as a null value)."""
        ...

    def leaf_counts(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        """``<columns>…, bad, total, base_bad, base_total`` per value combination (strings, null = missing)."""
        ...

    def group_counts(self, split: Window, column: str) -> pl.DataFrame:
        """``value, bad, total, base_bad, base_total`` per value of ``column`` (null = missing)."""
        ...

    def per_user_counts(self, split: Window, column: str) -> pl.DataFrame:
        """``n, users, users_bad``: selection users (the missing value as one more) by their request count."""
        ...

    def distinct_per_period(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        """``period, column, requests, distinct, distinct_bad`` (missing values not counted)."""
        ...


class PolarsAggregates:
    """:class:`CohortAggregates` over requests (root spans with outcome columns) in memory."""

    def __init__(self, requests: pl.DataFrame, outcome: Outcome = "bad", what: str = "requests") -> None:
        self.requests = requests
        self.outcome: Outcome = outcome
        self.what = what

    def summary(self) -> tuple[int, datetime | None, datetime | None]:
        if self.requests.height == 0:
            return 0, None, None
        first, last = self.requests["start"].min(), self.requests["start"].max()
        assert isinstance(first, datetime) and isinstance(last, datetime)
        return self.requests.height, first, last

    def over(self) -> str:
        return f"all {self.requests.height:,} {self.what}"

    def columns(self) -> list[str]:
        return [c for c in self.requests.columns if c.startswith(ATTR_PREFIX)]

    def within(self, pairs: Sequence[tuple[str, str]]) -> PolarsAggregates:
        own = self.requests.filter(cohort_mask(pairs, self.requests.columns))
        return PolarsAggregates(own, self.outcome, self.what)

    def rate_series(self, bucket_s: int = 60) -> pl.DataFrame:
        flag = pl.col(outcome_column(self.outcome)).cast(pl.Int64)
        return (self.requests.group_by(pl.col("start").dt.truncate(f"{bucket_s}s").alias("bucket"))
                .agg(requests=pl.len(), bad=flag.sum()).sort("bucket")
                .with_columns(bad_rate=pl.col("bad") / pl.col("requests")))

    def attribute_cardinality(self, id_key_pattern: str) -> pl.DataFrame:
        pattern = re.compile(id_key_pattern)
        columns = [c for c in self.requests.columns
                   if (c in PLAIN or c.startswith(ATTR_PREFIX)) and not pattern.search(c.removeprefix(ATTR_PREFIX))]
        stats = self.requests.select(
            *[pl.struct(n_present=pl.col(c).is_not_null().sum().cast(pl.Int64),
                        n_values=pl.col(c).n_unique().cast(pl.Int64)).alias(c) for c in columns])
        return (pl.DataFrame({"column": columns, "s": [stats[c][0] for c in columns]},
                             schema={"column": pl.String, "s": pl.Struct({"n_present": pl.Int64,
                                                                          "n_values": pl.Int64})})
                .unnest("s").filter(pl.col("n_present") > 0)
                .with_columns(n_requests=pl.lit(self.requests.height, dtype=pl.Int64)).sort("column"))

    def _classed(self, split: Window) -> pl.DataFrame:
        ts, bad = pl.col("start"), pl.col(outcome_column(self.outcome)).fill_null(False).cast(pl.Int8)
        in_sel = ts >= split.start
        if split.end is not None:
            in_sel = in_sel & (ts < split.end)
        in_base = ~in_sel if split.baseline == "rest" else ts < split.start
        cls = pl.when(in_sel).then(bad + 2).when(in_base).then(bad).otherwise(None)
        return self.requests.with_columns(_cls=cls).filter(pl.col("_cls").is_not_null())

    def class_counts(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        return class_counts(self._classed(split), list(columns), "_cls")

    def _sums(self, frame: pl.DataFrame, by: list[str] | pl.Expr) -> pl.DataFrame:
        cls = pl.col("_cls")
        return frame.group_by(by).agg(bad=(cls == 3).sum().cast(pl.Int64), total=(cls >= 2).sum().cast(pl.Int64),
                                      base_bad=(cls == 1).sum().cast(pl.Int64),
                                      base_total=(cls < 2).sum().cast(pl.Int64))

    def leaf_counts(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        leaves = self._sums(self._classed(split), list(columns))
        return leaves.with_columns(pl.col(c).cast(pl.String) for c in columns)

    def group_counts(self, split: Window, column: str) -> pl.DataFrame:
        return self._sums(self._classed(split), pl.col(column).cast(pl.String).alias("value"))

    def per_user_counts(self, split: Window, column: str) -> pl.DataFrame:
        users = (self._classed(split).filter(pl.col("_cls") >= 2).group_by(column)
                 .agg(n=pl.len().cast(pl.Int64), b=(pl.col("_cls") == 3).sum()))
        return users.group_by("n").agg(users=pl.len().cast(pl.Int64),
                                       users_bad=(pl.col("b") > 0).sum().cast(pl.Int64)).sort("n")

    def distinct_per_period(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        frame = self._classed(split).with_columns(period=pl.when(pl.col("_cls") >= 2).then(pl.lit("selection"))
                                                  .otherwise(pl.lit("baseline")))
        parts = [frame.group_by("period").agg(
            pl.lit(c).alias("column"), pl.len().cast(pl.Int64).alias("requests"),
            pl.col(c).drop_nulls().n_unique().cast(pl.Int64).alias("distinct"),
            pl.col(c).filter(pl.col("_cls") % 2 == 1).drop_nulls().n_unique().cast(pl.Int64).alias("distinct_bad"))
            for c in columns]
        return pl.concat(parts).sort("period", "column") if parts else pl.DataFrame()


@dataclass(frozen=True)
class CountedInvestigation:
    """An :class:`Investigation` and what its counts were computed over."""

    investigation: Investigation
    over: str


def investigate_aggregates(
    aggregates: CohortAggregates,
    attributes: Mapping[str, str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    top: int = 10,
) -> CountedInvestigation:
    """:func:`analysis.cohort.investigate` over counts from ``aggregates`` (any engine): the same answer.

    ``attributes``: the configured role overrides (``AppConfig.attributes``). A detected start is
    re-detected on the first cohort's own rate and the search runs again, as ``investigate`` does.
    """
    n_requests, first, last = aggregates.summary()
    how = "given window against the time before it"
    detected = start is None and end is None
    if detected:
        start, how = _detect_start(aggregates, first, last)
    if start is None:  # only an end given: the window runs from the first request
        start = first or datetime.now().astimezone()
    card = aggregates.attribute_cardinality(ID_KEY_PATTERN)
    roles = resolve_roles([*SPANS.names(), *aggregates.columns()], attributes)
    attrs = _cohort_columns(card, roles, n_requests)
    window, how = _window(start, end, first, how)
    ranking, cohorts = _search(aggregates, window, attrs, top)
    source: StartSource = "given"
    first_start, first_how = None, ""
    if detected:
        source, first_start, first_how = "total", window.start, how
        pairs = tuple((k, str(v)) for k, v in cohorts[0].pairs) if cohorts else ()
        onset = _cohort_onset(aggregates, pairs) if pairs else None
        if onset is not None and onset.start != window.start:
            again_window, _ = _window(onset.start, None, first, "")
            again_ranking, again = _search(aggregates, again_window, attrs, top)
            if again:  # nothing found over the refined window: the first answer stands
                window, ranking, cohorts, source = again_window, again_ranking, again, "cohort"
                how = refined_how(pairs, onset)
    radius = _blast_radius(aggregates, window, roles)
    found = Investigation(aggregates.outcome, window.start, end, detected, how, roles, ranking, tuple(cohorts),
                          radius, source, first_start, first_how)
    return CountedInvestigation(found, aggregates.over())


def _window(start: datetime, end: datetime | None, first: datetime | None, how: str) -> tuple[Window, str]:
    """The window from ``start``, against the time before it, or the rest when nothing precedes it."""
    if first is None or start <= first:
        return Window(start, end, "rest"), how + " (nothing before it: against the rest)"
    return Window(start, end, "before"), how


def _search(aggregates: CohortAggregates, window: Window, attrs: list[str], top: int) -> tuple[pl.DataFrame,
                                                                                                list[Cohort]]:
    """The ranking of every value and the cohorts over the combinations the ranking chose."""
    ranking = rank_counts(aggregates.class_counts(window, attrs), attrs)
    columns = search_attributes(ranking)
    if not columns:
        return ranking, []
    leaves = aggregates.leaf_counts(window, columns).with_columns(pl.col(c).fill_null(MISSING) for c in columns)
    return ranking, cohorts_of_leaves(leaves, columns, aggregates.outcome, "before", top=top)


def _cohort_onset(aggregates: CohortAggregates, pairs: Sequence[tuple[str, str]]) -> Onset | None:
    """:func:`analysis.cohort.report.cohort_split`'s step and onset, over the cohort's own rate series."""
    own = aggregates.within(pairs)
    n, t0, t1 = own.summary()
    if n < 2 or t0 is None or t1 is None:
        return None
    width_s = bucket_width_s((t1 - t0).total_seconds())
    buckets = own.rate_series(width_s).select("bucket", "bad", total="requests")
    return onset_of_buckets(buckets, width_s, outcome_column(aggregates.outcome))


def _detect_start(aggregates: CohortAggregates, first: datetime | None, last: datetime | None) -> tuple[datetime, str]:
    """:func:`analysis.changepoint.detect_incident_start` over the engine's rate series."""
    if first is None or last is None:
        return datetime.now().astimezone(), "not enough data to find a change; using the first request"
    width_s = bucket_width_s((last - first).total_seconds())
    series = aggregates.rate_series(width_s).select("bucket", "bad", total="requests")
    found = change_point_of_buckets(series, width_s, outcome_column(aggregates.outcome))
    if found is None:
        return first, "not enough data to find a change; using the first request"
    return found.start, found.describe()


def _cohort_columns(card: pl.DataFrame, roles: Roles, n_requests: int) -> list[str]:
    """:func:`analysis.cohort.discover_attributes`' rule over per-column cardinalities."""
    if n_requests == 0:
        return []
    limit = max(2.0, n_requests / MIN_REQUESTS_PER_VALUE)
    kept = card.filter((pl.col("n_values") > 1) & (pl.col("n_values") <= MAX_VALUES)
                       & ((pl.col("n_values") <= limit) | (n_requests < 20)))
    return sorted(c for c in kept["column"].to_list() if not never_a_cohort(c, roles))


def _blast_radius(aggregates: CohortAggregates, window: Window, roles: Roles) -> BlastRadius:
    """:func:`analysis.blast_radius.blast_radius` from group counts."""
    sums = aggregates.group_counts(window, "service").select(pl.col(c).sum() for c in COUNT_COLUMNS).row(0, named=True)
    total, bad = int(sums["total"] or 0), int(sums["bad"] or 0)
    p0 = (sums["base_bad"] or 0) / sums["base_total"] if sums["base_total"] else 0.0
    users_affected: int | None = None
    users_expected: float | None = None
    if roles.user is not None:
        users_affected, users_expected = 0, 0.0
        if total:
            users = aggregates.per_user_counts(window, roles.user)
            users_affected = int(users["users_bad"].sum())
            users_expected = float(users.select((pl.col("users") * (1 - (1 - p0) ** pl.col("n"))).sum()).item())

    def affected(column: str | None) -> tuple[tuple[str, ...] | None, set[str]]:
        if column is None:
            return None, set()
        if total == 0:
            return (), set()
        groups = aggregates.group_counts(window, column).filter(pl.col("total") > 0).select(
            pl.col("value").alias(column), n="total", bad="bad",
            n0=pl.when(pl.col("base_total") > 0).then("base_total"),
            bad0=pl.when(pl.col("base_total") > 0).then("base_bad"))
        return affected_of_counts(groups, column, p0), set(groups[column].drop_nulls().to_list())

    tenants, _ = affected(roles.tenant)
    regions, seen_regions = affected(roles.region)
    unaffected = tuple(sorted(seen_regions - set(regions))) if regions is not None else None
    unknown = tuple((role, why) for role, why in roles.missing if role in ("user", "tenant", "region"))
    return BlastRadius(
        requests=total, bad=bad, baseline_rate=p0, incident_rate=bad / total if total else 0.0,
        excess_bad=max(0.0, bad - total * p0), users_affected=users_affected, users_expected=users_expected,
        tenants_affected=tenants, regions_affected=regions, regions_unaffected=unaffected, unknown=unknown,
    )
