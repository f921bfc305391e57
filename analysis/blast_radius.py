"""How far the incident reaches: bad requests, users, tenants and regions, in excess of the baseline.

Works on requests (root spans) with outcome columns. The *selection* is the incident period, the
*baseline* the time before it (:mod:`analysis.periods`). Users, tenants and regions are the
attributes of those roles (:mod:`model.semconv`): OpenTelemetry names first, or as configured. Excess is what the baseline's bad rate does not explain:
``excess_bad = bad - total * baseline_rate``. Users rarely send enough requests to have their own
baseline, so the excess of affected users is taken against the number of users expected to see
at least one bad request at the baseline rate: ``Σ_u 1 - (1 - p0)^n_u``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from analysis.periods import split_requests
from model.semconv import Roles, resolve_roles

MIN_GROUP_REQUESTS = 20
Z_AFFECTED = 3.0


@dataclass(frozen=True)
class BlastRadius:
    """Who and what the selection's bad requests reach, beyond what the baseline rate explains.

    ``users_*``, ``tenants_affected`` and ``regions_*`` are None when the data carries no
    attribute of that role (not 0: nothing was measured); :meth:`why_unknown` says why.
    """

    requests: int
    bad: int
    baseline_rate: float
    incident_rate: float
    excess_bad: float
    users_affected: int | None
    users_expected: float | None
    tenants_affected: tuple[str, ...] | None
    regions_affected: tuple[str, ...] | None
    regions_unaffected: tuple[str, ...] | None
    unknown: tuple[tuple[str, str], ...] = ()  # (role, why) for every role the data does not carry

    @property
    def excess_users(self) -> float | None:
        if self.users_affected is None or self.users_expected is None:
            return None
        return max(0.0, self.users_affected - self.users_expected)

    def why_unknown(self, role: str) -> str | None:
        """Why a figure is None ("no user attribute in the data (looked for enduser.id, …)"), else None."""
        return dict(self.unknown).get(role)


def split_periods(requests: pl.DataFrame, incident_start: datetime,
                  incident_end: datetime | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(selection, baseline) of :func:`analysis.periods.split_requests` for the window from ``incident_start``."""
    return split_requests(requests, (incident_start, incident_end)).parts()


def blast_radius(selection: pl.DataFrame, baseline: pl.DataFrame, outcome_col: str = "is_bad",
                 roles: Roles | None = None) -> BlastRadius:
    """Blast radius of the selection against the baseline (both frames of requests with outcome columns).

    ``roles`` says which attribute is the user, the tenant and the region (resolved from the
    selection's columns by the semantic conventions when not given).
    """
    roles = roles if roles is not None else resolve_roles(selection.columns)
    p0 = _rate(baseline, outcome_col)
    total = selection.height
    bad = int(selection.get_column(outcome_col).sum()) if total else 0
    users_affected: int | None = None
    users_expected: float | None = None
    if roles.user is not None:
        users_affected, users_expected = 0, 0.0
        if total:
            per_user = selection.group_by(roles.user).agg(n=pl.len(), bad=pl.col(outcome_col).sum())
            users_affected = per_user.filter(pl.col("bad") > 0).height
            users_expected = float(per_user.select((1 - (1 - p0) ** pl.col("n")).sum()).item())
    tenants = _affected_groups(selection, baseline, roles.tenant, outcome_col, p0)
    regions = _affected_groups(selection, baseline, roles.region, outcome_col, p0)
    unaffected = None
    if roles.region is not None and regions is not None:
        all_regions = set(selection.get_column(roles.region).drop_nulls().unique())
        unaffected = tuple(sorted(all_regions - set(regions)))
    unknown = tuple((role, why) for role, why in roles.missing if role in ("user", "tenant", "region"))
    return BlastRadius(
        requests=total, bad=bad, baseline_rate=p0, incident_rate=bad / total if total else 0.0,
        excess_bad=max(0.0, bad - total * p0), users_affected=users_affected, users_expected=users_expected,
        tenants_affected=tenants, regions_affected=regions, regions_unaffected=unaffected, unknown=unknown,
    )


def _rate(frame: pl.DataFrame, outcome_col: str) -> float:
    return float(frame.select(pl.col(outcome_col).mean()).item() or 0.0) if frame.height else 0.0


def _affected_groups(selection: pl.DataFrame, baseline: pl.DataFrame, column: str | None, outcome_col: str,
                     p0: float) -> tuple[str, ...] | None:
    """Groups whose bad rate in the selection is significantly above their own baseline rate.

    A group that was already bad before (a chronically failing tenant) is compared with itself,
    so it only counts when it got worse. None when there is no such column.
    """
    if column is None:
        return None
    if column not in selection.columns or selection.height == 0:
        return ()
    before = baseline.group_by(column).agg(n0=pl.len(), bad0=pl.col(outcome_col).sum()) if column in baseline.columns \
        else pl.DataFrame(schema={column: pl.String, "n0": pl.UInt32, "bad0": pl.UInt32})
    during = selection.group_by(column).agg(n=pl.len(), bad=pl.col(outcome_col).sum())
    return affected_of_counts(during.join(before, on=column, how="left"), column, p0)


def affected_of_counts(joined: pl.DataFrame, column: str, p0: float) -> tuple[str, ...]:
    """The affected groups from per-group counts ``column, n, bad`` (selection) and ``n0, bad0`` (baseline,
    null when the group was not seen before), as :func:`_affected_groups` counts them (any engine's)."""
    joined = joined.with_columns(
        # the group's own baseline rate, shrunk towards the global rate when it has few requests
        p_base=((pl.col("bad0").fill_null(0) + p0 * MIN_GROUP_REQUESTS) / (pl.col("n0").fill_null(0) + MIN_GROUP_REQUESTS)),
    ).with_columns(
        expected=pl.col("n") * pl.col("p_base"),
    ).with_columns(
        z=(pl.col("bad") - pl.col("expected")) / (pl.col("expected") * (1 - pl.col("p_base"))).clip(1e-9).sqrt(),
    )
    hit = joined.filter(pl.col("n") >= MIN_GROUP_REQUESTS, pl.col("z") >= Z_AFFECTED,
                        pl.col("bad") >= pl.col("expected") * 1.5 + 2)
    return tuple(sorted(str(v) for v in hit.get_column(column).drop_nulls()))


def bad_rate_series(requests: pl.DataFrame, every: str = "1m", outcome_col: str = "is_bad") -> pl.DataFrame:
    """Per time bucket: requests, bad, error, slow and the bad rate."""
    if requests.height == 0:
        return pl.DataFrame(schema={"bucket": pl.Datetime("us", "UTC"), "requests": pl.UInt32, "bad": pl.Int64,
                                    "errors": pl.Int64, "slow": pl.Int64, "bad_rate": pl.Float64})
    return (
        requests.sort("start")
        .group_by_dynamic("start", every=every)
        .agg(requests=pl.len(), bad=pl.col(outcome_col).sum().cast(pl.Int64),
             errors=pl.col("is_error").sum().cast(pl.Int64), slow=pl.col("is_slow").sum().cast(pl.Int64))
        .rename({"start": "bucket"})
        .with_columns(bad_rate=pl.col("bad") / pl.col("requests"))
    )


def burn_rate(rate: float, objective: float) -> float:
    """How many times faster than allowed the error budget burns (1.0 = exactly on budget)."""
    budget = 1.0 - objective
    return math.inf if budget <= 0 else rate / budget
