"""The leaf-frame engine (analysis.cohort.search) and the statistics helpers (analysis.cohort.stats)."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace
from typing import Any

import polars as pl
import pytest

from analysis.cohort.refine import condition_needed
from analysis.cohort.search import COUNT_PARAMS, SearchParams, localize, ratio_leaves
from analysis.cohort.stats import excess_z, two_proportion_z, upper_tail_expr, with_bh, with_p_values

ATTRS = ("a", "b", "c", "d")
CARDS = (4, 6, 5, 3)


def _grid(effects: dict[tuple[tuple[str, str], ...], float], noise: float = 0.01, seed: int = 3) -> pl.DataFrame:
    """Full cross product of a..d; ``real = predict × factor`` inside each affected cohort."""
    rng = random.Random(seed)
    rows = []
    for combo in itertools.product(*[[f"{a}{i}" for i in range(1, n + 1)] for a, n in zip(ATTRS, CARDS)]):
        leaf = dict(zip(ATTRS, combo))
        predict = rng.uniform(20, 200)
        factor = 1.0
        for pairs, f in effects.items():
            if all(leaf[k] == v for k, v in pairs):
                factor = f
        rows.append({**leaf, "predict": predict, "real": predict * factor * (1 + rng.gauss(0, noise))})
    return pl.DataFrame(rows)


def _found(leaves: pl.DataFrame, **kwargs: object) -> set[tuple[tuple[str, str], ...]]:
    params = SearchParams(max_depth=3, **kwargs)  # type: ignore[arg-type]
    return {tuple(sorted(e.pairs)) for e in localize(leaves, list(ATTRS), params)}


@pytest.mark.parametrize(
    "truth",
    [
        {(("b", "b2"),): 0.3},
        {(("a", "a1"), ("c", "c3")): 0.2},
        {(("a", "a2"), ("b", "b5"), ("d", "d1")): 2.5},
        {(("a", "a1"),): 0.4, (("b", "b3"), ("c", "c2")): 1.9},  # two cohorts, two cuboids, both directions
    ],
)
def test_additive_leaves_exact_cohorts(truth: dict[tuple[tuple[str, str], ...], float]) -> None:
    assert _found(_grid(truth)) == set(truth)


def test_no_anomaly_no_cohort() -> None:
    assert _found(_grid({}, noise=0.01)) == set()


def test_most_general_cohort_wins_over_its_children() -> None:
    """Zero leaves make a 3-attribute child explain as much as its 2-attribute parent."""
    leaves = _grid({(("a", "a3"), ("b", "b1")): 0.1}).with_columns(
        pl.when((pl.col("a") == "a3") & (pl.col("b") == "b1") & (pl.col("c") != "c1"))
        .then(0.0).otherwise(pl.col("predict")).alias("predict"),
    ).with_columns(pl.when(pl.col("predict") == 0).then(0.0).otherwise(pl.col("real")).alias("real"))
    assert _found(leaves) == {(("a", "a3"), ("b", "b1"))}


def _ratio_leaves_frame() -> pl.DataFrame:
    """bad/total leaves over x (3 values) × y (2 values); x=x1 has its rate raised in the selection."""
    rows = []
    for x, y in itertools.product(("x1", "x2", "x3"), ("y1", "y2")):
        total = 1000 if y == "y1" else 10  # very unequal leaf sizes: mean of ratios ≠ ratio of sums
        base_total = total
        base_bad = round(0.02 * base_total)
        bad = round((0.5 if (x == "x1" and y == "y1") else 0.05 if x == "x1" else 0.02) * total)
        rows.append({"x": x, "y": y, "bad": bad, "total": total, "base_bad": base_bad, "base_total": base_total})
    return pl.DataFrame(rows)


def test_ratio_measure_aggregates_as_sum_of_bad_over_sum_of_total() -> None:
    leaves = ratio_leaves(_ratio_leaves_frame(), ["x", "y"])
    found = localize(leaves, ["x", "y"], SearchParams(max_depth=2, weight_power=1.0, same_direction=True))
    assert [e.pairs for e in found][:1] in ([(("x", "x1"),)], [(("x", "x1"), ("y", "y1"))])
    x1 = leaves.filter(pl.col("x") == "x1")
    element = found[0]
    cohort_bad = float(x1.filter(pl.col("y") == "y1")["bad"].sum() if len(element.pairs) == 2 else x1["bad"].sum())
    assert element.real == pytest.approx(cohort_bad)
    # Σbad/Σtotal for x=x1 is 500.5/1010 ≈ 0.4955; the mean of leaf ratios would be 0.275
    assert x1["bad"].sum() / x1["total"].sum() == pytest.approx(0.4955, abs=1e-3)
    assert element.real / float(x1["total"].sum() if len(element.pairs) == 1 else 1000) > 0.45


def test_ratio_leaves_chronic_value_expects_its_own_rate() -> None:
    frame = pl.DataFrame({
        "tenant": ["acme", "globex", "acme", "globex"], "region": ["eu", "eu", "us", "us"],
        "bad": [50, 1, 50, 1], "total": [100, 100, 100, 100],
        "base_bad": [100, 2, 0, 2], "base_total": [200, 200, 0, 200],  # acme×us never seen before
    })
    out = ratio_leaves(frame, ["tenant", "region"])
    acme_us = out.filter(pl.col("tenant") == "acme", pl.col("region") == "us").row(0, named=True)
    globex_us = out.filter(pl.col("tenant") == "globex", pl.col("region") == "us").row(0, named=True)
    assert acme_us["predict"] > 30  # the tenant's chronic ~50 % carries over to the unseen leaf
    assert globex_us["predict"] < 5


def test_normal_tail_and_tests() -> None:
    z = pl.DataFrame({"z": [-1.0, 0.0, 1.0, 1.6448536, 3.0]})
    tails = z.select(upper_tail_expr(pl.col("z")).alias("p"))["p"].to_list()
    expected = [0.5 * math.erfc(v / math.sqrt(2)) for v in z["z"]]
    assert tails == pytest.approx(expected, abs=1e-6)
    frame = pl.DataFrame({"b1": [30.0, 5.0], "n1": [100.0, 100.0], "b2": [5.0, 5.0], "n2": [100.0, 100.0]})
    out = with_p_values(frame, {
        "p": two_proportion_z(pl.col("b1"), pl.col("n1"), pl.col("b2"), pl.col("n2")),
        "e": excess_z(pl.col("b1"), pl.col("b2"), pl.col("n1")),
    })
    assert out.columns == [*frame.columns, "p", "e"]  # the staged z-scores are not left behind
    assert out["p"][0] < 1e-5 and out["p"][1] > 0.4
    assert out["e"][0] < 1e-10 and out["e"][1] > 0.4
    empty = pl.DataFrame({"b1": [0.0], "n1": [0.0], "b2": [0.0], "n2": [10.0]})
    assert with_p_values(empty, {"p": two_proportion_z(*map(pl.col, ["b1", "n1", "b2", "n2"]))})["p"][0] == 1.0


def test_benjamini_hochberg() -> None:
    frame = pl.DataFrame({"p_value": [0.01, 0.04, 0.03, 0.005, 0.5]})
    q = with_bh(frame)["q_value"].to_list()
    # sorted p: 0.005, 0.01, 0.03, 0.04, 0.5 → raw p·m/rank: 0.025, 0.025, 0.05, 0.05, 0.5
    assert q == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])


def _counts(rates: dict[tuple[tuple[str, str], ...], float], seed: int = 5) -> pl.DataFrame:
    """bad/total leaves over x × y × z: a 5 % baseline; ``rates`` set the selection's bad rate inside
    cohorts (later entries win). ``y=y1`` holds most of the traffic."""
    rng = random.Random(seed)
    rows = []
    for x, y, z in itertools.product(["x1", "x2", "x3", "x4"], ["y1", "y2", "y3"], ["z1", "z2", "z3"]):
        leaf = {"x": x, "y": y, "z": z}
        total = 1000 if y == "y1" else 400
        rate = 0.05
        for pairs, r in rates.items():
            if all(leaf[k] == v for k, v in pairs):
                rate = r
        bad = sum(rng.random() < rate for _ in range(total))
        base_bad = sum(rng.random() < 0.05 for _ in range(total))
        rows.append({**leaf, "bad": bad, "total": total, "base_bad": base_bad, "base_total": total})
    return pl.DataFrame(rows)


def _found_counts(leaves: pl.DataFrame, **kwargs: Any) -> set[tuple[tuple[str, str], ...]]:
    attrs = ["x", "y", "z"]
    params = replace(COUNT_PARAMS, **kwargs)
    return {tuple(sorted(e.pairs)) for e in localize(ratio_leaves(leaves, attrs), attrs, params)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_condition_not_needed_beyond_noise_is_dropped(seed: int) -> None:
    """All of x1 is hit, the big y1 part of it harder: the fit alone (no refinement, no preference
    for ancestors) appends y=y1; the rest of x1 is clearly affected too (18 % against 5 %), so the
    condition is not needed and the generalisation step alone returns the general cohort."""
    leaves = _counts({(("x", "x1"),): 0.18, (("x", "x1"), ("y", "y1")): 0.6}, seed)
    fit_only = {"refine": False, "generality": 0.0}
    assert _found_counts(leaves, z_needed=0.0, **fit_only) == {(("x", "x1"), ("y", "y1"))}  # over-specific
    assert _found_counts(leaves, **fit_only) == {(("x", "x1"),)}
    assert _found_counts(leaves) == {(("x", "x1"),)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_condition_needed_when_the_rest_is_spared(seed: int) -> None:
    """Only x1 ∧ y1 is hit; the rest of x1 stays at the baseline rate, so y=y1 is needed."""
    leaves = _counts({(("x", "x1"), ("y", "y1")): 0.45}, seed)
    assert _found_counts(leaves) == {(("x", "x1"), ("y", "y1"))}


def test_condition_needed_rules() -> None:
    child: dict[str, object] = {"sr": 900.0, "sf": 150.0, "sx": 3000.0}
    spared: dict[str, object] = {"sr": 900.0 + 60.0, "sf": 150.0 + 60.0, "sx": 4200.0}  # rest: 60 bad where 60 expected
    hit_too: dict[str, object] = {"sr": 900.0 + 180.0, "sf": 150.0 + 60.0, "sx": 4200.0}  # rest: 180 where 60 expected
    # significant, immaterial
    drift: dict[str, object] = {"sr": 900.0 + 10_600.0, "sf": 150.0 + 10_000.0, "sx": 200_000.0}
    assert (10_600.0 - 10_000.0) / math.sqrt(10_001.0) > 3.0
    assert condition_needed(child, spared, z_needed=3.0, effect_share=0.2)
    assert not condition_needed(child, hit_too, z_needed=3.0, effect_share=0.2)
    assert condition_needed(child, drift, z_needed=3.0, effect_share=0.2)
    assert not condition_needed(child, dict(child), z_needed=3.0, effect_share=0.2)  # no rest: the parent is as good
