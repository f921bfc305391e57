"""Exact-match micro-F1 of the cohort finder on the multi-dimensional RCA benchmarks.

Datasets (see ``<data>/README.md``): Squeeze B0 (additive), RiskLoc S (additive, noisy) and
RobustSpot RS (real incidents, stalled/total ratio). Usage::

    python -m bench.rca_benchmark [--data DIR] [--split dev|holdout|all] [--limit N] [--json]

Timing covers the algorithm only (leaf frame in, cohort set out), not file reading.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analysis.cohort_search import COUNT_PARAMS, SearchParams, localize, ratio_leaves  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "bench-data"
DATASETS = ("B0", "S", "RS")


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


def _squeeze_like(folder: Path, dataset: str, keep: set[str] | None) -> Iterator[Case]:
    info = pl.read_csv(folder / "injection_info.csv", infer_schema=False)
    for row in info.sort("timestamp").iter_rows(named=True):
        ts = row["timestamp"]
        path = folder / f"{ts}.csv.gz"
        if (keep is not None and ts not in keep) or not path.exists():
            continue
        frame = pl.read_csv(path, infer_schema=False)
        attrs = tuple(c for c in frame.columns if c not in ("real", "predict"))
        leaves = frame.with_columns(pl.col("real", "predict").cast(pl.Float64))
        yield Case(dataset, f"{folder.name}/{ts}", leaves, attrs, _label_set(row["set"]), False)


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
        for folder in sorted((data / "squeeze_B0").iterdir()):
            if folder.is_dir():
                yield from _squeeze_like(folder, "B0", keep)
    elif dataset == "S":
        if split in ("dev", "all"):  # S is dev-only here (L is the holdout, kept elsewhere)
            yield from _squeeze_like(data / "riskloc_synthetic" / "S", "S", None)
    elif dataset == "RS":
        yield from _rs(data, _split_ids(data, "RS", split))


def predict(case: Case, params: SearchParams | None = None) -> frozenset[str]:
    """The cohort finder's answer for one case, as evaluator strings."""
    leaves = case.leaves
    if case.ratio:  # bad/total counts: the product's own settings (analysis.cohort uses the same)
        leaves = ratio_leaves(leaves, case.attrs)
        params = params or COUNT_PARAMS
    # additive forecasts: relative (multiplicative) noise, both directions, every depth
    params = params or SearchParams(max_depth=len(case.attrs))
    found = localize(leaves, case.attrs, params)
    return frozenset("&".join(sorted(f"{k}={v}" for k, v in el.pairs)) for el in found)


def evaluate(data: Path, dataset: str, split: str, limit: int | None, verbose: bool = False) -> dict[str, float]:
    """Micro precision/recall/F1 (exact match) and mean seconds per case."""
    tp = fp = fn = cases = 0
    seconds = 0.0
    for case in load_cases(data, dataset, split):
        if limit is not None and cases >= limit:
            break
        t0 = time.perf_counter()
        pred = predict(case)
        seconds += time.perf_counter() - t0
        hit = len(pred & case.truth)
        tp, fp, fn, cases = tp + hit, fp + len(pred) - hit, fn + len(case.truth) - hit, cases + 1
        if verbose and pred != case.truth:
            print(f"{case.case_id}: truth={sorted(case.truth)} pred={sorted(pred)}", file=sys.stderr)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=("dev", "holdout", "all"), default="dev")
    parser.add_argument("--limit", type=int, default=None, help="at most N cases per dataset")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of B0,S,RS")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print every missed case on stderr")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: benchmark data not found at {args.data}", file=sys.stderr)
        return 2
    results = {
        name: evaluate(args.data, name, args.split, args.limit, args.verbose)
        for name in args.datasets.split(",")
    }
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'dataset':<8}{'cases':>7}{'F1':>8}{'P':>8}{'R':>8}{'s/case':>9}")
    for name, r in results.items():
        print(f"{name:<8}{r['cases']:>7}{r['f1']:>8.3f}{r['precision']:>8.3f}{r['recall']:>8.3f}{r['s_per_case']:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
