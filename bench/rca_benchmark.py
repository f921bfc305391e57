"""Exact-match micro-F1 of the cohort finder on the multi-dimensional RCA benchmarks.

Datasets (see ``<data>/README.md``): Squeeze B0 (additive), RiskLoc S (additive, noisy) and
RobustSpot RS (real incidents, stalled/total ratio). Usage::

    python -m bench.rca_benchmark [--data DIR] [--split dev|holdout|all] [--limit N] [--json] [--cv K]

Timing covers the algorithm only (leaf frame in, cohort set out), not file reading.

``--cv K`` adds the honest figure: K-fold cross-validated F1 beside the dev F1. Every tunable
parameter of :data:`GRIDS` is chosen on the other K−1 folds (best micro F1 there, ties to the
first grid point) and scored on the held-out fold; the held-out counts are pooled into one micro
F1. Folds are fixed (case ``i`` in the dataset's order goes to fold ``i mod K``; B0's order
interleaves its settings, so every fold holds each setting).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# E402: these need the sys.path insert above (the script runs as `python bench/...`)
from analysis.cohort.search import COUNT_PARAMS, SearchParams, localize, ratio_leaves  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "bench-data"
DATASETS = ("B0", "S", "RS")

# the declared grids of --cv: a few values per tunable parameter (the product's defaults among them)
GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "B0": {"z_needed": (0.0, 3.0)},
    "S": {"z_needed": (0.0, 3.0)},
    "RS": {"z_needed": (2.0, 3.0), "effect_share": (0.1, 0.2, 0.3)},
}


@dataclass(frozen=True)
class Case:
    dataset: str
    case_id: str
    leaves: pl.DataFrame
    attrs: tuple[str, ...]
    truth: frozenset[str]
    ratio: bool


def _label_set(text: str) -> frozenset[str]:
    return frozenset("&".join(sorted(el.split("&"))) for el in str(text).split(";") if el)


def _split_ids(data: Path, name: str, split: str) -> set[str] | None:
    path = data / "splits" / f"{name}.csv"
    if not path.exists():
        return None
    frame = pl.read_csv(path, infer_schema=False)
    wanted = {"dev", "holdout"} if split == "all" else {split}
    return set(frame.filter(pl.col("split").is_in(wanted))[frame.columns[0]].to_list())


def _squeeze_entries(folder: Path, keep: set[str] | None) -> list[tuple[Path, str, str]]:
    """(file, case id, label) of the cases of one setting folder that are present."""
    info = pl.read_csv(folder / "injection_info.csv", infer_schema=False)
    out = []
    for row in info.sort("timestamp").iter_rows(named=True):
        path = folder / f"{row['timestamp']}.csv.gz"
        if (keep is None or row["timestamp"] in keep) and path.exists():
            out.append((path, f"{folder.name}/{row['timestamp']}", row["set"]))
    return out


def _squeeze_case(dataset: str, path: Path, case_id: str, label: str) -> Case:
    frame = pl.read_csv(path, infer_schema=False)
    attrs = tuple(c for c in frame.columns if c not in ("real", "predict"))
    leaves = frame.with_columns(pl.col("real", "predict").cast(pl.Float64))
    return Case(dataset, case_id, leaves, attrs, _label_set(label), False)


def _rs(data: Path, keep: set[str] | None) -> Iterator[Case]:
    folder = data / "RS_prepared"
    labels = pl.read_csv(folder / "labels.csv", infer_schema=False)
    for row in labels.sort("case").iter_rows(named=True):
        path = folder / f"{row['case']}.csv"
        if (keep is not None and row["case"] not in keep) or not path.exists():
            continue
        frame = pl.read_csv(path, infer_schema=False)
        attrs = tuple(row["attributes"].split("|"))
        num = [pl.col(c).cast(pl.Float64) for c in ("real_a", "real_b", "predict_a", "predict_b")]
        ra, rb, pa, pb = num
        # RS counts viewers (b) and non-stalled viewers (a); bad = stalled = b - a
        leaves = frame.select(
            *attrs, bad=rb - ra, total=rb, base_bad=pb - pa, base_total=pb
        )
        yield Case("RS", row["case"], leaves, attrs, _label_set(row["set"]), True)


def load_cases(data: Path, dataset: str, split: str) -> Iterator[Case]:
    """Cases of one dataset on ``split`` whose files are present."""
    if dataset == "B0":
        keep = _split_ids(data, "squeeze_B0", split)
        folders = [f for f in sorted((data / "squeeze_B0").iterdir()) if f.is_dir()]
        per_setting = [_squeeze_entries(f, keep) for f in folders]
        # round-robin over the settings, so that --limit N still covers every (layer, n_ele)
        for rank in range(max((len(e) for e in per_setting), default=0)):
            for entries in per_setting:
                if rank < len(entries):
                    yield _squeeze_case("B0", *entries[rank])
    elif dataset == "S":
        if split in ("dev", "all"):  # S is dev-only here (L is the holdout, kept elsewhere)
            for entry in _squeeze_entries(data / "riskloc_synthetic" / "S", None):
                yield _squeeze_case("S", *entry)
    elif dataset == "RS":
        yield from _rs(data, _split_ids(data, "RS", split))


def default_params(case: Case) -> SearchParams:
    """The search's settings for one case when nothing is tuned."""
    if case.ratio:  # bad/total counts: the product's own settings (analysis.cohort uses the same)
        return COUNT_PARAMS
    # additive forecasts: relative (multiplicative) noise, both directions, every depth
    return SearchParams(max_depth=len(case.attrs), z_needed=3.0, effect_share=0.2)


def predict(case: Case, params: SearchParams | None = None) -> frozenset[str]:
    """The cohort finder's answer for one case, as evaluator strings."""
    leaves = ratio_leaves(case.leaves, case.attrs) if case.ratio else case.leaves
    params = params or default_params(case)
    found = localize(leaves, case.attrs, params)
    return frozenset("&".join(sorted(f"{k}={v}" for k, v in el.pairs)) for el in found)


def _scores(tp: int, fp: int, fn: int, cases: int, seconds: float) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {
        "f1": round(f1, 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "cases": cases,
        "s_per_case": round(seconds / cases, 4) if cases else 0.0,
    }


def evaluate_groups(
    data: Path, dataset: str, split: str, limit: int | None, verbose: bool = False
) -> dict[str, dict[str, float]]:
    """Micro precision/recall/F1 (exact match) and mean seconds per case, for the whole dataset
    (key ``""``) and per setting folder (B0's ``B_cuboid_layer_k_n_ele_m``)."""
    counts: dict[str, list[float]] = {}
    for case in itertools.islice(load_cases(data, dataset, split), limit):
        t0 = time.perf_counter()
        pred = predict(case)
        elapsed = time.perf_counter() - t0
        hit = len(pred & case.truth)
        setting = case.case_id.split("/")[0] if "/" in case.case_id else ""
        for key in {"", setting}:
            c = counts.setdefault(key, [0, 0, 0, 0, 0.0])
            c[0] += hit
            c[1] += len(pred) - hit
            c[2] += len(case.truth) - hit
            c[3] += 1
            c[4] += elapsed
        if verbose and pred != case.truth:
            print(f"{case.case_id}: truth={sorted(case.truth)} pred={sorted(pred)}", file=sys.stderr)
    counts.setdefault("", [0, 0, 0, 0, 0.0])
    return {k: _scores(int(c[0]), int(c[1]), int(c[2]), int(c[3]), c[4]) for k, c in sorted(counts.items())}


def evaluate(data: Path, dataset: str, split: str, limit: int | None, verbose: bool = False) -> dict[str, float]:
    """Micro precision/recall/F1 (exact match) and mean seconds per case over one dataset."""
    return evaluate_groups(data, dataset, split, limit, verbose)[""]


Counts = tuple[int, int, int]  # (true positives, false positives, false negatives)


def _f1(counts: Sequence[Counts]) -> float:
    tp, fp, fn = (sum(c[i] for c in counts) for i in range(3))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def grid_points(dataset: str) -> list[dict[str, Any]]:
    """Every combination of the dataset's declared grid, in declaration order."""
    grid = GRIDS.get(dataset, {})
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


@dataclass(frozen=True)
class CvResult:
    """Dev F1 with the default settings beside the cross-validated F1 and each fold's choice."""

    cases: int
    dev_f1: float
    cv_f1: float
    grid_points: int
    chosen: tuple[dict[str, Any], ...]


def cross_validate(data: Path, dataset: str, split: str, limit: int | None, folds: int) -> CvResult:
    """Dev F1 (default settings, every case) and ``folds``-fold cross-validated F1 (see module doc).

    Each case is solved once per grid point; the folds only choose among those answers.
    """
    cases = list(itertools.islice(load_cases(data, dataset, split), limit))
    points = grid_points(dataset)
    # per grid point, per case: (tp, fp, fn)
    counts: list[list[Counts]] = [[] for _ in points]
    dev: list[Counts] = []
    for case in cases:
        base = default_params(case)
        for k, point in enumerate(points):
            pred = predict(case, replace(base, **point))
            hit = len(pred & case.truth)
            counts[k].append((hit, len(pred) - hit, len(case.truth) - hit))
        pred = predict(case, base)
        hit = len(pred & case.truth)
        dev.append((hit, len(pred) - hit, len(case.truth) - hit))
    held_out: list[Counts] = []
    chosen: list[dict[str, Any]] = []
    for fold in range(folds):
        train = [i for i in range(len(cases)) if i % folds != fold]
        test = [i for i in range(len(cases)) if i % folds == fold]
        if not test:
            continue
        best = max(range(len(points)), key=lambda k: (_f1([counts[k][i] for i in train]), -k))
        chosen.append(points[best])
        held_out.extend(counts[best][i] for i in test)
    return CvResult(len(cases), round(_f1(dev), 4), round(_f1(held_out), 4), len(points), tuple(chosen))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=("dev", "holdout", "all"), default="dev")
    parser.add_argument("--limit", type=int, default=None, help="at most N cases per dataset")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of B0,S,RS")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print every missed case on stderr")
    parser.add_argument("--cv", type=int, default=0, metavar="K", help="K-fold cross-validated F1 beside the dev F1")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: benchmark data not found at {args.data}", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        expected = ", ".join(DATASETS)
        print(f"error: unknown dataset(s) {', '.join(unknown)}; expected some of {expected}", file=sys.stderr)
        return 2
    if args.cv:
        if args.cv < 2:
            print("error: --cv needs at least 2 folds", file=sys.stderr)
            return 2
        results = {name: cross_validate(args.data, name, args.split, args.limit, args.cv) for name in names}
        if args.json:
            print(json.dumps({name: asdict(r) for name, r in results.items()}))
            return 0
        print(f"{'dataset':<10}{'cases':>7}{'dev F1':>9}{f'cv{args.cv} F1':>9}{'grid':>6}  chosen per fold")
        for name, cv in results.items():
            picks = "; ".join(",".join(f"{k}={v:g}" for k, v in p.items()) for p in cv.chosen)
            print(f"{name:<10}{cv.cases:>7}{cv.dev_f1:>9.3f}{cv.cv_f1:>9.3f}{cv.grid_points:>6}  {picks}")
        return 0
    groups = {name: evaluate_groups(args.data, name, args.split, args.limit, args.verbose) for name in names}
    if args.json:
        print(json.dumps({name: g[""] for name, g in groups.items()}))
        return 0
    print(f"{'dataset':<34}{'cases':>7}{'F1':>8}{'P':>8}{'R':>8}{'s/case':>9}")
    for name, g in groups.items():
        if not g[""]["cases"]:
            print(f"{name:<34}{0:>7}  no {args.split} cases in this copy of the data")
            continue
        for key, r in g.items():
            if key and len(g) <= 2:
                continue  # a single setting: the dataset row says it all
            label = name if not key else f"  {key}"
            print(
                f"{label:<34}{r['cases']:>7}{r['f1']:>8.3f}{r['precision']:>8.3f}{r['recall']:>8.3f}"
                f"{r['s_per_case']:>9.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
