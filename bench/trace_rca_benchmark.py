"""Service-level root-cause ranking on Nezha (FSE'23) traces: AS@1/3/5.

For every copied fault of the chosen split, the fault window is the spans of its three minute
files that start at or after the injection time (the incident start an on-call engineer knows);
the normal window is the fault-free ``construct_data`` minute of the same date plus the
pre-injection spans of the first file. When the date has no fault-free minute (2022-08-22), only
the pre-injection spans are used. The ranker never sees the label.

The headline (AS@1/3/5) is over the latency-visible faults; every fault type with traces is scored
too, in a per-fault-type table (AS@1/AS@3). What traces cannot show: Nezha's spans carry no status
or exception field, so an injected exception or a wrong return value that does not change timing
leaves only call-structure traces (fewer or different downstream calls), which the latency ranker
does not read — its code-defect rows are near chance. The table's ``struct`` columns score a
second, separate ranker on that structure (:func:`analysis.trace_rca.rank_by_structure`: where
the call fan-out vanished); the two are reported side by side, not combined, since choosing one
per fault would need the fault type, which is the label. Where errors do reach spans (status,
``http.status_code``, exception events), :mod:`analysis.origin` finds them from the spans: the
node where a cohort's *own* errors (no failed child) rise against the baseline.

    python -m bench.trace_rca_benchmark --data ../shared/bench-data/nezha --split dev [--json] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# E402: these need the sys.path insert above (the script runs as `python bench/...`)
from analysis.service_map import rank_root_cause_services  # noqa: E402
from analysis.trace_rca import rank_by_structure  # noqa: E402
from bench.nezha_data import read_minutes  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "bench-data" / "nezha"


@dataclass(frozen=True)
class Fault:
    system: str
    date: str
    inject_ts: int
    root_cause_service: str
    inject_type: str
    visibility: str
    trace_files: tuple[Path, ...]


def load_faults(data: Path, split: str) -> list[Fault]:
    """Copied faults of ``split`` (``dev``, ``holdout`` or ``all``) whose files are present."""
    faults = []
    with (data / "faults_index.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["copied"] != "yes" or (split != "all" and row["split"] != split):
                continue
            files = tuple(data / "rca_data" / row["date"] / "trace" / f for f in row["trace_files"].split(";"))
            if not all(f.exists() for f in files):
                continue
            faults.append(
                Fault(row["system"], row["date"], int(row["inject_timestamp"]), row["root_cause_service"],
                      row["inject_type"], row["visibility"], files)
            )
    return faults


def windows(data: Path, fault: Fault) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fault spans, normal spans) for one fault."""
    spans = read_minutes(list(fault.trace_files))
    after = pl.col("start") >= pl.lit(fault.inject_ts * 1_000_000).cast(pl.Datetime("us", "UTC"))
    construct = sorted((data / "construct_data" / fault.date / "trace").glob("*.csv.gz"))
    normal = pl.concat([spans.filter(~after), read_minutes(construct)], how="diagonal_relaxed")
    return spans.filter(after), normal


def _at(ranks: list[int], k: int) -> float:
    return sum(r <= k for r in ranks) / len(ranks) if ranks else 0.0


def _rank(ranked: pl.DataFrame, service: str) -> int:
    hit = ranked.filter(pl.col("service") == service)["rank"]
    return int(hit[0]) if hit.len() else 10_000


def rank_of_truth(data: Path, fault: Fault) -> tuple[int, int, list[str]]:
    """(rank of the labelled service by latency, by structure, the latency top three) for one
    fault; 10 000 when not ranked."""
    fault_spans, normal_spans = windows(data, fault)
    ranked = rank_root_cause_services(fault_spans, normal_spans)
    structure = rank_by_structure(fault_spans, normal_spans)
    service = fault.root_cause_service
    return _rank(ranked, service), _rank(structure, service), ranked["service"].head(3).to_list()


def run(
    data: Path, split: str, limit: int | None = None, verbose: bool = False, *, all_types: bool = False
) -> dict[str, object]:
    """AS@1/3/5 over the latency-visible faults; with ``all_types`` every fault with traces is
    scored too, and ``by_type`` holds AS@1/AS@3 per injected fault type."""
    loaded = load_faults(data, split)
    kinds = ["latency_visible"] + ([v for v in dict.fromkeys(f.visibility for f in loaded) if v != "latency_visible"]
                                   if all_types else [])
    # --limit N: the first N faults of each visibility, so a short run still scores every kind
    faults = [f for kind in kinds for f in [g for g in loaded if g.visibility == kind][:limit]]
    ranks: list[int] = []
    per_type: dict[str, list[int]] = {}
    per_type_structure: dict[str, list[int]] = {}
    visibility: dict[str, str] = {}
    t0 = time.perf_counter()
    for fault in faults:
        rank, structure_rank, top = rank_of_truth(data, fault)
        per_type.setdefault(fault.inject_type, []).append(rank)
        per_type_structure.setdefault(fault.inject_type, []).append(structure_rank)
        visibility[fault.inject_type] = fault.visibility
        if fault.visibility == "latency_visible":
            ranks.append(rank)
        if verbose:
            print(f"{fault.date} {fault.inject_type:15s} {fault.root_cause_service:30s} rank {rank:3d}  "
                  f"top: {', '.join(top)}")
    n = len(ranks)
    by_type = {
        kind: {
            "faults": len(r), "visibility": visibility[kind], "as1": _at(r, 1), "as3": _at(r, 3),
            "structure_as1": _at(per_type_structure[kind], 1), "structure_as3": _at(per_type_structure[kind], 3),
        }
        for kind, r in sorted(per_type.items(), key=lambda kv: (visibility[kv[0]] != "latency_visible", kv[0]))
    }
    return {
        "as1": _at(ranks, 1), "as3": _at(ranks, 3), "as5": _at(ranks, 5), "faults": n,
        "mean_rank": sum(ranks) / n if n else None,
        "seconds": round(time.perf_counter() - t0, 2),
        **({"by_type": by_type} if all_types else {}),
    }


def type_table(by_type: dict[str, dict[str, object]]) -> str:
    """The per-fault-type table: faults, AS@1, AS@3 per injected type (latency ranker, then the
    structure ranker :func:`analysis.trace_rca.rank_by_structure`)."""
    lines = [f"{'fault type':<16}{'visibility':<17}{'faults':>7}{'AS@1':>7}{'AS@3':>7}{'struct@1':>10}{'struct@3':>10}"]
    for kind, row in by_type.items():
        lines.append(
            f"{kind:<16}{row['visibility']!s:<17}{row['faults']!s:>7}{row['as1']:>7.0%}{row['as3']:>7.0%}"
            f"{row['structure_as1']:>10.0%}{row['structure_as3']:>10.0%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=("dev", "holdout", "all"), default="dev")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--latency-only", action="store_true", help="skip the code-defect faults (no per-type table)")
    args = parser.parse_args(argv)
    if not (args.data / "faults_index.csv").exists():
        print(f"no Nezha data at {args.data} (faults_index.csv missing)", file=sys.stderr)
        return 2
    result = run(args.data, args.split, args.limit, verbose=not args.json, all_types=not args.latency_only)
    if args.json:
        print(json.dumps(result))
    elif not result["faults"]:
        print(f"latency-visible faults: 0  (no {args.split} faults in this copy of the data)")
    else:
        print(
            f"latency-visible faults: {result['faults']}  AS@1 {result['as1']:.0%}  AS@3 {result['as3']:.0%}  "
            f"AS@5 {result['as5']:.0%}  mean rank {result['mean_rank']}  ({result['seconds']} s)"
        )
    by_type = result.get("by_type")
    if isinstance(by_type, dict) and by_type and not args.json:
        print(type_table(by_type))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
