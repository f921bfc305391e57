"""Move a found cohort up or down one attribute when the evidence says it is too narrow or too wide.

Uses only the additive sums of :func:`analysis.cohort.search.cuboid_sums` (a complement's sums are
differences), so no extra pass over the leaves:

* **too narrow** — removing one pair gives a parent whose *rest* (parent minus cohort) moves the
  same way, at least ``rho`` times as strongly, and significantly (``|z| ≥ z_general``): the fault
  is the parent's (``region=eu`` rather than ``region=eu AND bitrate=2000`` when every bitrate in
  eu stalls);
* **too wide** — adding one pair gives a child whose rest (cohort minus child) carries traffic
  but shows no significant movement (``|z| < z_special``) although the child moves at least as
  strongly as the cohort: the fault is the child's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

Row = dict[str, object]
REST_SHARE = 0.02  # "too wide" needs the rest of the cohort to hold at least this share of its exposure


def _stats(sr: float, sf: float, sx: float) -> tuple[float, float, float]:
    """(excess, effect per unit exposure, Poisson-style z) of a set of leaves."""
    excess = sr - sf
    delta = excess / sx if sx > 0 else 0.0
    z = excess / math.sqrt(abs(sf) + 1.0)
    return excess, delta, z


def measure(row: Row, key: str) -> float:
    """A measure column (``sr``, ``sf``, ``sx``, ``gain``) of a cohort row as a float."""
    value = row[key]
    if not isinstance(value, int | float):
        raise TypeError(f"{key} of a cohort row is {type(value).__name__}, not a number")
    return float(value)


def _sums(row: Row) -> tuple[float, float, float]:
    return measure(row, "sr"), measure(row, "sf"), measure(row, "sx")


def _gain(row: Row) -> float:
    value = row["gain"]
    return float(value) if isinstance(value, (int, float)) else 0.0


def _lookup(table: pl.DataFrame, attrs: Sequence[str], pairs: dict[str, object]) -> Row | None:
    cond = [pl.col(a).is_null() if a not in pairs else pl.col(a) == pairs[a] for a in attrs]
    hit = table.filter(*cond)
    return hit.row(0, named=True) if hit.height else None


def refine(
    table: pl.DataFrame,
    row: Row,
    attrs: Sequence[str],
    *,
    rho: float = 0.5,
    z_general: float = 3.0,
    z_special: float = 2.0,
    max_depth: int = 3,
    steps: int = 3,
) -> Row:
    """The cohort ``row`` (a row of the cuboid table) moved to the level the evidence supports."""
    seen = set()
    for _ in range(steps):
        pairs = {a: row[a] for a in attrs if row[a] is not None}
        key = tuple(sorted(pairs.items()))
        if key in seen:
            break
        seen.add(key)
        sr, sf, sx = _sums(row)
        excess, delta, _ = _stats(sr, sf, sx)
        if excess == 0 or delta == 0:
            break
        moved: Row | None = None
        best_z = 0.0
        if len(pairs) > 1:  # too narrow?
            for a in pairs:
                parent = _lookup(table, attrs, {k: v for k, v in pairs.items() if k != a})
                if parent is None:
                    continue
                psr, psf, psx = _sums(parent)
                q_excess, q_delta, q_z = _stats(psr - sr, psf - sf, psx - sx)
                if q_excess * excess > 0 and q_delta / delta >= rho and abs(q_z) >= z_general and abs(q_z) > best_z:
                    moved, best_z = parent, abs(q_z)
        if moved is None and len(pairs) < max_depth:  # too wide?
            cond: list[pl.Expr] = [pl.col("depth") == len(pairs) + 1, *[pl.col(a).eq(v) for a, v in pairs.items()]]
            best_gain = 0.0
            children = table.filter(*cond).sort(list(attrs), nulls_last=True)  # fixed order: ties
            for child in children.iter_rows(named=True):
                csr, csf, csx = _sums(child)
                c_excess, c_delta, _ = _stats(csr, csf, csx)
                _, _, r_z = _stats(sr - csr, sf - csf, sx - csx)
                gain = float(child["gain"])
                # the rest must carry real traffic: no traffic is no evidence it was spared
                has_rest = sx - csx > REST_SHARE * sx
                stronger = c_excess * excess > 0 and c_delta / delta >= 1.0
                if has_rest and stronger and abs(r_z) < z_special and gain > best_gain:
                    moved, best_gain = child, gain
        if moved is None:
            break
        row = moved
    return row



def condition_needed(child: Row, parent: Row, *, z_needed: float, effect_share: float) -> bool:
    """Whether the child's extra ``attr=value`` condition is needed beyond noise.

    The rest (the parent's leaves outside the child) decides. The condition is *not* needed when
    the rest is affected too: its excess is significant (one-sided Poisson z of
    ``Σreal − Σpredict`` over ``√(Σpredict + 1)`` at least ``z_needed``, in the child's
    direction) and material (its effect per unit exposure — the shift of its bad rate — is at
    least ``effect_share`` of the child's). A rest without traffic is no evidence either way: the
    parent, which then describes the same requests, is the simpler answer.
    """
    sr, sf, sx = _sums(child)
    psr, psf, psx = _sums(parent)
    rsr, rsf, rsx = psr - sr, psf - sf, psx - sx
    if rsx <= 1e-9 * max(psx, 1e-12):
        return False
    if sx <= 0 or sr == sf:
        return True
    direction = 1.0 if sr > sf else -1.0
    z_rest = direction * (rsr - rsf) / math.sqrt(abs(rsf) + 1.0)
    delta_child, delta_rest = direction * (sr - sf) / sx, direction * (rsr - rsf) / rsx
    affected_too = z_rest >= z_needed and delta_rest >= effect_share * delta_child
    return not affected_too


def generalise(table: pl.DataFrame, row: Row, attrs: Sequence[str], *, z_needed: float, effect_share: float) -> Row:
    """``row`` without every condition that is not needed beyond noise (:func:`condition_needed`).

    Why a significance test and not a description-length penalty: the noise of bad/total counts
    is known (Poisson), so "is the rest of the parent affected too?" has a calibrated answer
    whatever the number of leaves, while a penalty per condition would need its own scale per
    data set. The squared-gap fit of the search over-specifies when one value holds much of the
    traffic (``bitrate=4000 AND device=adr``): that value soaks up most of the excess, and the
    fault's uneven strength across devices makes the child fit better, although the requests
    outside ``device=adr`` are clearly affected as well — the general cohort is the fault.
    The effect share keeps a small, merely significant shift of a big rest (a window where
    everything got a little worse: a pool exhaustion, a retry storm) from generalising a real
    cohort away; it is measured on the additive scale the search fits (bad-rate shift), not as a
    lift, because a rest at 3 % against 1 % before is ×3 but 2 points. Of several removable conditions, the one whose
    parent gains most goes first; repeated until every remaining condition is needed.
    """
    while True:
        pairs = {a: row[a] for a in attrs if row[a] is not None}
        if len(pairs) < 2:
            return row
        best: Row | None = None
        for a in pairs:
            parent = _lookup(table, attrs, {k: v for k, v in pairs.items() if k != a})
            if parent is None or condition_needed(row, parent, z_needed=z_needed, effect_share=effect_share):
                continue
            if best is None or _gain(parent) > _gain(best):
                best = parent
        if best is None:
            return row
        row = best
