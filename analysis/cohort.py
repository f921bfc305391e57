"""The cohort finder: who is affected — selection vs. baseline over every attribute (pure polars).

Public API (requests = root spans with the outcome columns of :func:`analysis.outcome.with_outcome`):

* :func:`discover_attributes` — the columns that may describe a cohort (ids and near-unique
  columns are never offered);
* :func:`rank_values` — one row per ``attribute=value``: shares, rates, coverage, lift, p/q-values;
* :func:`find_cohorts` — the smallest set of 1–3-attribute cohorts explaining the excess bad
  requests, as :class:`Cohort` objects (``describe()`` gives plain words);
* :func:`detect_incident_start` (re-exported from :mod:`analysis.changepoint`).

A *selection* is ``(start, end)`` (an incident window; the baseline is the time before ``start``,
or the rest when nothing precedes it), a boolean ``pl.Expr``/``pl.Series`` (a brushed band, a
clicked cohort; the baseline is the rest), or ``None`` (the incident start is detected from the
bad rate and the window runs from there to the end).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Union

import polars as pl

from analysis.changepoint import detect_incident_start
from analysis.cohort_search import COUNT_PARAMS
from analysis.cohort_counts import class_counts
from analysis.cohort_stats import excess_z, two_proportion_z, with_bh, with_p_values
from analysis.outcome import Outcome, outcome_column
from model.schemas import ATTR_PREFIX

__all__ = [
    "Cohort", "Selection", "Split", "COUNT_PARAMS", "cohort_key", "column_for_key", "detect_incident_start",
    "discover_attributes", "find_cohorts", "rank_values", "split_requests",
]

Selection = Union[tuple[datetime | None, datetime | None], pl.Expr, pl.Series, None]

# plain columns of spans that can describe a cohort (besides every attr.* column)
_PLAIN = ("service", "operation", "kind")
# names of per-request / per-person identifiers, client addresses and secrets: never a cohort,
# whatever their cardinality in this sample (a tenant or region id is fine: cardinality decides)
_ID_NAME = re.compile(
    r"(^|[._\-])(uuid|guid|email)$"
    r"|(trace|span|parent|request|correlation|causation|session|user|customer|order|transaction"
    r"|message|event|device|visitor|client)[._\-]?id"
    r"|idempotency|nonce|token|secret|password|_key$|\.key$"
    r"|(client|peer|source|remote|forwarded)[._\-]?(address|addr|ip)|forwarded_for",
    re.IGNORECASE,
)
MAX_VALUES = 1000  # more distinct values than this: an identifier, not a cohort
MIN_REQUESTS_PER_VALUE = 5.0  # ... or fewer requests per value on average (most carry their own)

SEARCH_ATTRIBUTES = 8  # the combination search looks at the attributes with the strongest single values


def cohort_key(column: str) -> str:
    """Attribute key as the source names it (``attr.cloud.region`` → ``cloud.region``)."""
    return column[len(ATTR_PREFIX):] if column.startswith(ATTR_PREFIX) else column


def column_for_key(key: str, columns: list[str]) -> str:
    """Inverse of :func:`cohort_key` for a frame with ``columns``."""
    return key if key in columns and not (ATTR_PREFIX + key) in columns else ATTR_PREFIX + key


def discover_attributes(requests: pl.DataFrame) -> list[str]:
    """Columns that may describe a cohort: ``attr.*`` plus service/operation/kind, minus identifiers.

    A column is dropped when its name reads like a per-request or per-person identifier (user id,
    trace id, request id, correlation id, idempotency key, session id, …), when it has more than
    ``MAX_VALUES`` distinct values or fewer than ``MIN_REQUESTS_PER_VALUE`` requests per value on
    average (near-unique values: an id whatever its name), or when it is constant.
    """
    candidates = [c for c in requests.columns if c.startswith(ATTR_PREFIX) or c in _PLAIN]
    candidates = [c for c in candidates if not _ID_NAME.search(cohort_key(c))]
    if not candidates or requests.height == 0:
        return []
    counts = requests.select(pl.col(c).n_unique().alias(c) for c in candidates).row(0, named=True)
    limit = max(2.0, requests.height / MIN_REQUESTS_PER_VALUE)
    return [c for c in candidates if 1 < counts[c] <= MAX_VALUES and (counts[c] <= limit or requests.height < 20)]


@dataclass(frozen=True)
class Split:
    """Requests labelled ``_sel``/``_base`` (booleans) plus how the selection was chosen."""

    frame: pl.DataFrame
    start: datetime | None
    start_detected: bool
    how: str


def split_requests(requests: pl.DataFrame, selection: Selection = None, outcome: Outcome = "bad") -> Split:
    """Label every request as selection, baseline or neither (see the module docstring)."""
    if isinstance(selection, (pl.Expr, pl.Series)):
        mask = selection if isinstance(selection, pl.Expr) else pl.lit(selection)
        frame = requests.with_columns(_sel=mask.fill_null(False)).with_columns(_base=~pl.col("_sel"))
        return Split(frame, None, False, "the selection against the rest")
    detected, how = False, "given window against the time before it"
    if selection is None:
        start, how = detect_incident_start(requests, outcome_column(outcome))
        end, detected = None, True
    else:
        start, end = selection
    ts = pl.col("start")
    in_window = pl.lit(True)
    if start is not None:
        in_window = in_window & (ts >= start)
    if end is not None:
        in_window = in_window & (ts < end)
    before = ts < start if start is not None else pl.lit(False)
    frame = requests.with_columns(_sel=in_window, _before=before)
    if not frame["_before"].any():
        frame, how = frame.with_columns(_before=~pl.col("_sel")), how + " (nothing before it: against the rest)"
    return Split(frame.rename({"_before": "_base"}), start, detected, how)


def rank_values(
    requests: pl.DataFrame,
    selection: Selection = None,
    outcome: Outcome = "bad",
    attributes: list[str] | None = None,
    *,
    split: Split | None = None,
) -> pl.DataFrame:
    """One row per ``attribute=value`` (BubbleUp-style), strongest excess first.

    Columns: ``attribute`` (key without ``attr.``), ``column``, ``value``, ``selection_count``,
    ``baseline_count``, ``selection_share``, ``baseline_share`` (of all requests of each side),
    ``bad_share`` (of the selection's bad requests: compare with ``selection_share``, BubbleUp-style),
    ``bad``/``total`` (selection), ``precision`` (bad rate in the cohort), ``baseline_rate``,
    ``expected_bad``, ``excess_bad``, ``coverage`` (share of the excess bad requests explained),
    ``lift`` (precision ÷ baseline rate), ``p_value`` (selection rate > baseline rate),
    ``q_value`` (Benjamini–Hochberg over all rows), ``significant`` (q < 0.05, excess > 0) and
    ``stands_out``: the value's share of the excess bad requests (``coverage``) is significantly
    above its share of the selection's traffic (BH-controlled) — during a big incident every value
    gets "significantly" worse, only the ones behind it stand out, and a chronically bad value
    (its baseline already bad) does not. Sorted by stands_out, significant,
    excess.
    """
    split = split or split_requests(requests, selection, outcome)
    attrs = attributes if attributes is not None else discover_attributes(requests)
    flag = outcome_column(outcome)
    if not attrs or split.frame.height == 0:
        return _empty_ranking()
    sel, base = pl.col("_sel"), pl.col("_base")
    bad = pl.col(flag).fill_null(False).cast(pl.UInt8)
    # 0 baseline good, 1 baseline bad, 2 selection good, 3 selection bad, null neither
    cls = pl.when(sel).then(bad + 2).when(base).then(bad).otherwise(None)
    frame = split.frame.select(*attrs, _cls=cls)  # columns are shared, not copied; the class computed once
    long = class_counts(frame, attrs, "_cls").with_columns(attribute=pl.col("column").str.strip_prefix(ATTR_PREFIX))
    sides = long.filter(pl.col("column") == attrs[0]).group_by("cls").agg(pl.col("n").sum())
    n = dict(zip(sides["cls"].to_list(), sides["n"].to_list()))
    if not n:
        return _empty_ranking()
    sel_n, base_n = n.get(2, 0) + n.get(3, 0), n.get(0, 0) + n.get(1, 0)
    base_rate_all = (n.get(1, 0) + 0.5) / (base_n + 1.0)  # half a pseudo-event: never exactly 0
    sel_bad_all = n.get(3, 0)
    wide = long.group_by("attribute", "column", "value").agg(
        *[pl.col("n").filter(pl.col("cls") == c).sum().alias(f"c{c}") for c in range(4)]
    )
    expected_total = sel_n * base_rate_all
    return _score(wide, sel_n, base_n, base_rate_all, sel_bad_all - expected_total, sel_bad_all)


def _score(
    wide: pl.DataFrame, sel_n: int, base_n: int, base_rate_all: float, excess_all: float, sel_bad_all: int = 0
) -> pl.DataFrame:
    c0, c1, c2, c3 = (pl.col(f"c{i}").cast(pl.Float64) for i in range(4))
    prior = 10.0  # pseudo-requests at the overall baseline rate: a value never seen before is "normal"
    out = wide.lazy().with_columns(
        selection_count=(c2 + c3).cast(pl.Int64),
        baseline_count=(c0 + c1).cast(pl.Int64),
        bad=c3.cast(pl.Int64),
        total=(c2 + c3).cast(pl.Int64),
        baseline_bad=c1.cast(pl.Int64),
    ).with_columns(
        selection_share=pl.col("selection_count") / max(sel_n, 1),
        bad_share=pl.col("bad") / max(sel_bad_all, 1),
        baseline_share=pl.col("baseline_count") / max(base_n, 1),
        precision=pl.when(pl.col("total") > 0).then(c3 / (c2 + c3)).otherwise(0.0),
        baseline_rate=(c1 + prior * base_rate_all) / (c0 + c1 + prior),
    ).with_columns(
        expected_bad=pl.col("total") * pl.col("baseline_rate"),
    ).with_columns(
        excess_bad=pl.col("bad") - pl.col("expected_bad"),
        lift=pl.when(pl.col("baseline_rate") > 0).then(pl.col("precision") / pl.col("baseline_rate")).otherwise(None),
    ).with_columns(
        coverage=pl.col("excess_bad") / excess_all if excess_all > 0 else pl.lit(0.0),
    )
    out = with_p_values(out, {
        "p_value": pl.when(pl.col("baseline_count") > 0)
        .then(two_proportion_z(c3, c2 + c3, c1, c0 + c1))
        .otherwise(excess_z(c3, pl.col("expected_bad"), c2 + c3)),
        # does the value hold more of the *excess* than its share of the traffic would? (its own
        # baseline expectation plus a traffic-proportional part of the excess)
        "p_stands_out": excess_z(
            c3, pl.col("expected_bad") + pl.col("selection_share") * max(excess_all, 0.0), c2 + c3
        ),
    })
    out = with_bh(with_bh(out.collect()), "p_stands_out", "q_stands_out")
    out = out.with_columns(
        significant=(pl.col("q_value") < 0.05) & (pl.col("excess_bad") > 0),
        stands_out=(pl.col("q_stands_out") < 0.05) & (pl.col("coverage") > pl.col("selection_share")),
    )
    return out.select(_RANK_COLUMNS).sort(["stands_out", "significant", "excess_bad"], descending=True)


_RANK_COLUMNS = [
    "attribute", "column", "value", "selection_count", "baseline_count", "selection_share", "baseline_share",
    "bad_share", "bad", "total", "baseline_bad", "precision", "baseline_rate", "expected_bad", "excess_bad", "coverage",
    "lift", "p_value", "q_value", "significant", "stands_out",
]


def _empty_ranking() -> pl.DataFrame:
    return _score(
        pl.DataFrame(schema={"attribute": pl.String, "column": pl.String, "value": pl.String,
                             **{f"c{i}": pl.UInt32 for i in range(4)}}), 0, 0, 0.0, 0.0,
    )


from analysis.cohort_find import Cohort, find_cohorts  # noqa: E402  (re-export; needs the helpers above)
