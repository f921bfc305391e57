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

from analysis.cohort.search import COUNT_PARAMS, SearchParams, localize, ratio_leaves  # noqa: E402

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
    for n, case in enumerate(load_cases(data, dataset, split)):
        if limit is not None and n >= limit:
            break
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
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        expected = ", ".join(DATASETS)
        print(f"error: unknown dataset(s) {', '.join(unknown)}; expected some of {expected}", file=sys.stderr)
        return 2
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
