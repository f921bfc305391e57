"""Multi-attribute root-cause localisation on an aggregated *leaf* frame.

A leaf frame has one row per attribute combination (attribute columns) and two additive measure
columns: ``real`` (what was observed in the selection) and ``predict`` (what was expected there),
plus optionally ``exposure`` (what a fault scales: ``predict`` itself by default, the request count
for bad/total data — see :func:`ratio_leaves`).
Spans reach it through a ``group_by`` (bad requests vs. the bad requests the baseline rate
predicts); the RCA benchmarks' leaf tables are already in this shape.

The search is our own greedy "explain and peel":

* a cohort (a conjunction of ``attr=value`` pairs) *explains* the anomaly when moving every leaf
  inside it by one common effect (``delta × exposure``; with exposure = predict this is the
  ripple effect of Squeeze: a fault scales all of a cohort's traffic alike) removes a large share
  of the weighted squared gap between ``real`` and ``predict``; the gain comes from additive sums
  per cohort, so every cuboid costs one ``group_by``;
* the best cohort is taken, but an ancestor (fewer pairs) that explains nearly as much wins —
  the most general description is the one an on-call engineer can act on;
* the pick is then moved up or down one attribute when the rest of its parent moves too, or the
  rest of it does not (:mod:`analysis.cohort.refine`);
* its leaves are then marked explained (``predict = real``) and the search repeats on what is
  left, until the best gain is a small share of the original gap or within the noise;
* finally two picks give way to their common ancestor when it alone explains nearly as much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import polars as pl

from analysis.cohort.refine import generalise, measure, refine

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SearchParams:
    """Knobs of the search (fixed on the benchmarks' dev split)."""

    max_depth: int = 3
    max_elements: int = 5
    min_gain: float = 0.005  # stop when the best cohort removes < this share of the original squared gap
    noise_factor: float = 30.0  # ... or less than this many times the per-leaf noise variance
    same_direction: bool = False  # True: only cohorts moving the same way as the whole (more bad, not fewer)
    floor_quantile: float = 0.1  # leaf weights use max(predict, this quantile of positive predicts)
    min_floor: float = 0.0  # ... and at least this (counts: ~1 expected event, the Poisson floor)
    refine: bool = True  # move each pick up/down one attribute on the evidence (analysis.cohort.refine)
    rho: float = 0.5
    z_general: float = 3.0
    z_special: float = 2.0
    merge: float = 0.0  # two found cohorts give way to their common ancestor if it explains (1 - merge) of both
    generality: float = 0.10  # an ancestor within 10 % of the best gain is preferred
    min_share: float = 0.0  # ignore cohorts whose |excess| is below this share of the total excess
    weight_power: float = 2  # leaf weight 1/max(predict, floor)^p: 0 = plain squares, 1 = chi-square
    poisson: bool = False  # counts: min_gain is a share of the gap *beyond* Poisson noise (see localize)
    z_needed: float = 0.0  # > 0: drop every condition not needed beyond noise (analysis.cohort.refine.generalise)
    effect_share: float = 0.2  # ... the rest of its parent is "affected too" from this share of the cohort's effect


# bad/total counts (requests, viewers): Poisson-like noise → chi-square weights with a floor of one
# expected event; only more bad counts; fragments merge; a condition only when needed beyond noise.
# Fixed on the RS dev split (z_needed/effect_share: the best point of bench.rca_benchmark.GRIDS), used
# unchanged by the product.
COUNT_PARAMS = SearchParams(
    max_depth=3, weight_power=1.0, generality=0.3, min_gain=0.2, same_direction=True,
    refine=True, rho=0.3, z_general=3.0, z_special=2.0, merge=0.2, min_floor=1.0, poisson=True,
    z_needed=3.0, effect_share=0.2,
)


@dataclass(frozen=True)
class Element:
    """One cohort found by :func:`localize`; ``real``/``predict`` summed over its leaves."""

    pairs: Pairs
    real: float
    predict: float
    gain: float  # share of the original squared gap this cohort removed


def _cuboids(attrs: Sequence[str], max_depth: int) -> list[tuple[str, ...]]:
    return [c for d in range(1, max_depth + 1) for c in combinations(attrs, d)]


def cuboid_sums(leaves: pl.LazyFrame, attrs: Sequence[str], max_depth: int) -> pl.DataFrame:
    """Per cohort (every conjunction of up to ``max_depth`` attributes): sums for the ripple gain.

    Returns the attribute columns (null where the cohort does not constrain that attribute),
    ``depth`` and ``sr, sf, sx, sxd, sxx`` (Σreal, Σpredict, Σexposure, Σw·x·(r−f), Σw·x²),
    where ``w`` is the leaf weight and ``x`` its exposure.
    """
    r, f, w, x = pl.col("real"), pl.col("predict"), pl.col("w"), pl.col("exposure")
    aggs = [
        r.sum().alias("sr"),
        f.sum().alias("sf"),
        x.sum().alias("sx"),
        (w * x * (r - f)).sum().alias("sxd"),
        (w * x * x).sum().alias("sxx"),
    ]
    frames = [
        leaves.group_by(list(cub)).agg(aggs).with_columns(depth=pl.lit(len(cub), pl.Int32))
        for cub in _cuboids(attrs, max_depth)
    ]
    parts = pl.collect_all(frames)
    return pl.concat(parts, how="diagonal_relaxed").select(
        *attrs, "depth", "sr", "sf", "sx", "sxd", "sxx",
    )


def ripple_gain(sums: pl.DataFrame) -> pl.DataFrame:
    """Add ``delta`` and ``gain`` for each cohort.

    The cohort's effect is estimated from its aggregate, ``delta = (Σreal − Σpredict) / Σexposure``
    (with exposure = predict this is Squeeze's ripple ratio minus one; with exposure = requests it
    is the shift of the bad rate), and ``gain`` is how much of the weighted squared gap
    ``Σw·(real − predict)²`` disappears when every leaf inside moves by ``delta · exposure``:
    ``2·delta·Σw·x·d − delta²·Σw·x²``. A cohort that mixes hit and unhit leaves fits badly.
    """
    ok = pl.col("sx") > 0
    delta = pl.when(ok).then((pl.col("sr") - pl.col("sf")) / pl.col("sx")).otherwise(0.0)
    return sums.with_columns(delta=delta).with_columns(
        gain=2 * pl.col("delta") * pl.col("sxd") - pl.col("delta") ** 2 * pl.col("sxx"),
    )


def _pairs(row: dict[str, object], attrs: Sequence[str]) -> tuple[tuple[str, object], ...]:
    return tuple((a, row[a]) for a in attrs if row[a] is not None)


def _in_cohort(pairs: Sequence[tuple[str, object]]) -> pl.Expr:
    expr = pl.lit(True)
    for key, value in pairs:
        expr = expr & (pl.col(key) == value)
    return expr


def _ordered(scored: pl.DataFrame, attrs: Sequence[str], by: list[str], descending: list[bool]) -> pl.DataFrame:
    """``scored`` sorted by ``by``; equal rows by depth and attribute codes, never by group-by order."""
    keys = [*by, *(["depth"] if "depth" not in by else []), *attrs]
    return scored.sort(keys, descending=[*descending, *[False] * (len(keys) - len(by))], nulls_last=True)


def _pick(scored: pl.DataFrame, attrs: Sequence[str], generality: float) -> dict[str, object]:
    """The best cohort, or its most general ancestor whose gain is within ``generality`` of it."""
    # the top gain without sorting the whole table; equal gains by depth and attribute codes
    best = _ordered(scored.filter(pl.col("gain") == pl.col("gain").max()), attrs, ["gain"], [True]).row(0, named=True)
    best_pairs = set(_pairs(best, attrs))
    floor = (1.0 - generality) * float(best["gain"])
    # ancestors: every constrained attribute of the candidate matches the best cohort's value
    anc = scored.filter(pl.col("gain") >= floor, pl.col("depth") < best["depth"])
    for a in attrs:
        value = best[a]
        anc = anc.filter(pl.col(a).is_null() if value is None else (pl.col(a).is_null() | (pl.col(a) == value)))
    if anc.height:
        top = _ordered(anc, attrs, ["depth", "gain"], [False, True]).row(0, named=True)
        if set(_pairs(top, attrs)) <= best_pairs:
            return top
    return best


def localize(
    leaves: pl.DataFrame,
    attrs: Sequence[str],
    params: SearchParams = SearchParams(),
) -> list[Element]:
    """Smallest set of cohorts explaining the gap between ``real`` and ``predict``, best first.

    ``leaves`` has the ``attrs`` columns (any dtype, compared as strings) and Float ``real`` and
    ``predict``. Leaves with both zero are dropped (they add nothing to any sum).
    """
    if not attrs or leaves.height == 0:
        return []
    # attributes as small-int codes: every cuboid group_by is on integers, not strings
    values = {
        a: leaves.select(pl.col(a).cast(pl.String).drop_nulls().unique().sort()).to_series().to_list() for a in attrs
    }
    work = leaves.select(
        *[pl.col(a).cast(pl.String).cast(pl.Enum(values[a])).to_physical().cast(pl.Int32) for a in attrs],
        pl.col("real").cast(pl.Float64),
        pl.col("predict").cast(pl.Float64),
        (pl.col("exposure") if "exposure" in leaves.columns else pl.col("predict")).cast(pl.Float64).alias("exposure"),
    ).filter((pl.col("real") != 0) | (pl.col("predict") != 0))
    positive = work.filter(pl.col("predict").abs() > 0)["predict"].abs()
    floor = max(float(positive.quantile(params.floor_quantile) or 0.0), 1e-9) if positive.len() else 1.0
    floor = max(floor, params.min_floor)
    work = work.with_columns(w=1.0 / pl.max_horizontal(pl.col("predict").abs(), pl.lit(floor)) ** params.weight_power)
    total_gap = float(work.select((pl.col("w") * (pl.col("real") - pl.col("predict")) ** 2).sum()).item() or 0.0)
    total_excess = float(work.select((pl.col("real") - pl.col("predict")).sum()).item() or 0.0)
    if total_gap <= 0:
        return []
    depth = min(params.max_depth, len(attrs))
    if params.poisson:
        # Counts: the noise is known, E[w·(real − predict)²] = w·predict per leaf. With many sparse
        # leaves most of the gap is that noise, so min_gain is a share of the gap beyond it; with few
        # large leaves a median-based estimate would call the signal itself noise. Pure noise gives
        # each candidate cohort a gain of ~χ²(1): demand twice the largest of those too.
        expected = float(work.select((pl.col("w") * pl.col("predict").abs()).sum()).item() or 0.0)
        signal_gap = max(total_gap - expected, 0.0)
        noise = expected / max(work.height, 1)
        candidates = sum(math.comb(len(attrs), d) for d in range(1, depth + 1)) * max(work.height, 2)
        chance = 4.0 * math.log(candidates)
    else:
        # per-leaf noise: the median weighted squared gap is ~0.455 σ² for Gaussian noise
        squares = pl.col("w") * (pl.col("real") - pl.col("predict")) ** 2
        signal_gap, chance = total_gap, 0.0
        noise = float(work.select(squares.median()).item() or 0.0) / 0.455
    threshold = max(params.min_gain * signal_gap, params.noise_factor * noise, chance)
    original = work
    found: list[Element] = []
    for _ in range(params.max_elements):
        scored = ripple_gain(cuboid_sums(work.lazy(), attrs, depth))
        full = scored
        if params.min_share > 0 and total_excess != 0:
            scored = scored.filter((pl.col("sr") - pl.col("sf")) / total_excess >= params.min_share)
        if params.same_direction:
            scored = scored.filter((pl.col("sr") - pl.col("sf")) * total_excess > 0)
        scored = scored.filter(pl.col("gain") > 0)
        if scored.height == 0 or float(scored.select(pl.col("gain").max()).item()) < threshold:
            break
        row = _pick(scored, attrs, params.generality)
        if params.refine:
            row = refine(full, row, attrs, rho=params.rho, z_general=params.z_general,
                         z_special=params.z_special, max_depth=depth)
        if params.z_needed > 0:
            row = generalise(full, row, attrs, z_needed=params.z_needed, effect_share=params.effect_share)
        pairs = _pairs(row, attrs)
        gain = measure(row, "gain") / total_gap
        # pairs hold attribute codes until the return below maps them to their values
        found.append(Element(pairs, measure(row, "sr"), measure(row, "sf"), gain))  # type: ignore[arg-type]
        work = work.with_columns(
            predict=pl.when(_in_cohort(pairs)).then(pl.col("real")).otherwise(pl.col("predict"))
        )
    if params.merge > 0 and len(found) > 1:
        found = _merge(found, original, total_gap, params.merge)
    return [replace(e, pairs=tuple((a, values[a][int(code)]) for a, code in e.pairs)) for e in found]


def _gain_of(leaves: pl.DataFrame, pairs: Pairs) -> tuple[float, float, float]:
    """(Σreal, Σpredict, gain) of one cohort on ``leaves``."""
    r, f, w, x = pl.col("real"), pl.col("predict"), pl.col("w"), pl.col("exposure")
    sums = leaves.filter(_in_cohort(pairs)).select(
        sr=r.sum(), sf=f.sum(), sx=x.sum(), sxd=(w * x * (r - f)).sum(), sxx=(w * x * x).sum()
    )
    row = ripple_gain(sums).row(0, named=True)
    return float(row["sr"] or 0.0), float(row["sf"] or 0.0), float(row["gain"] or 0.0)


def _merge(found: list[Element], leaves: pl.DataFrame, total_gap: float, tolerance: float) -> list[Element]:
    """Replace two cohorts by their common ancestor when it alone explains nearly as much.

    Fragments of one fault (``bitrate=500 & device=C1`` and ``bitrate=500 & device=C5``, or a
    cohort and a leftover of its parent) are reported as the one general cohort they belong to.
    """
    merged = True
    while merged and len(found) > 1:
        merged = False
        for i, j in combinations(range(len(found)), 2):
            a, b = found[i], found[j]
            common = tuple(p for p in a.pairs if p in b.pairs)
            if not common:
                continue
            real, predict, gain = _gain_of(leaves, common)
            if gain / total_gap >= (1.0 - tolerance) * (a.gain + b.gain):
                rest = [e for k, e in enumerate(found) if k not in (i, j)]
                found = sorted([*rest, Element(common, real, predict, gain / total_gap)], key=lambda e: -e.gain)
                merged = True
                break
    return found


def ratio_leaves(
    leaves: pl.DataFrame,
    attrs: Sequence[str],
    *,
    prior_weight: float = 30.0,
    effect: str = "rate",
    iterations: int = 3,
) -> pl.DataFrame:
    """Turn bad/total counts into additive ``real``/``predict`` (derived-measure support).

    ``leaves`` has ``bad``, ``total`` (selection) and ``base_bad``, ``base_total`` (baseline).
    ``real`` is the selection's bad count; ``predict`` is ``total`` times the leaf's baseline bad
    rate, shrunk (by ``prior_weight`` pseudo-requests) towards a prior built from the leaf's single
    attribute values: overall rate × Π(value effect), a log-linear main-effects model fitted to the
    baseline by a few rounds of iterative proportional fitting. A leaf of a chronically bad tenant
    therefore expects many bad requests even when the leaf itself was rarely seen before — a
    problem already there in the baseline is not an anomaly — while the tenant's badness does not
    leak into leaves of other tenants. Cohort ratios stay Σbad/Σtotal because only counts are
    summed. ``effect`` says what a fault changes: ``"rate"`` (the bad rate shifts; exposure =
    requests) or ``"ratio"`` (bad counts scale; exposure = predict).
    """
    base_bad, base_total = pl.col("base_bad").cast(pl.Float64), pl.col("base_total").cast(pl.Float64)
    g_bad = float(leaves["base_bad"].sum() or 0.0)
    g_total = float(leaves["base_total"].sum() or 0.0)
    global_rate = (g_bad + 0.5) / (g_total + 1.0)  # half a pseudo-event: never exactly 0
    out = leaves.with_columns(_prior=pl.lit(global_rate))
    for _ in range(iterations):  # iterative proportional fitting of the main effects
        for a in attrs:
            # observed ÷ fitted baseline events per value, one pseudo-event each: a value never
            # seen bad is not "never bad"
            per_value = out.group_by(a).agg(
                _ratio=(base_bad.sum() + 1.0) / ((base_total * pl.col("_prior")).sum() + 1.0)
            )
            out = out.join(per_value, on=a, how="left", nulls_equal=True).with_columns(
                _prior=(pl.col("_prior") * pl.col("_ratio")).clip(0.0, 1.0)
            ).drop("_ratio")
    out = out.with_columns(pl.col("_prior").clip(0.0, 1.0))
    rate = (base_bad + prior_weight * pl.col("_prior")) / (base_total + prior_weight)
    return out.with_columns(
        real=pl.col("bad").cast(pl.Float64),
        predict=pl.col("total").cast(pl.Float64) * rate,
        # "rate": a fault shifts the cohort's bad rate; "ratio": it multiplies its bad count
        exposure=pl.col("total").cast(pl.Float64) * (1.0 if effect == "rate" else rate),
    ).drop("_prior")
