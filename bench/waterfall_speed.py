"""How the trace waterfall scales: ``analysis.waterfall.waterfall_rows`` on one wide trace, small vs large.

The trace is a root with ``children`` shard calls of 99 index reads each (the shape of the 5,000-span
test trace). The small trace (a tenth of the children) is the baseline measured in the same run, so the
result is a ratio a busy machine does not skew much: ``scaling_exponent`` = log(time ratio) / log(size
ratio) is about 1 when the waterfall is linear in spans and 2 when it is quadratic.

    .venv/bin/python -m bench.waterfall_speed [--children 50] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analysis.waterfall import waterfall_rows  # noqa: E402
from model.schemas import SPANS  # noqa: E402
from model.validate import validate  # noqa: E402

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PER_CHILD = 99


def wide_trace(children: int) -> pl.DataFrame:
    """A root span, ``children`` shard queries under it, ``PER_CHILD`` index reads under each."""
    ids, operations, starts_ms, durations_ms = ["0" * 15 + "1"], ["GET /search"], [0.0], [10_000.0]
    parents: list[str | None] = [None]
    for i in range(children):
        child = f"{i + 2:016x}"
        ids.append(child)
        parents.append(ids[0])
        operations.append("shard query")
        starts_ms.append(i * 150.0)
        durations_ms.append(140.0)
        for j in range(PER_CHILD):
            ids.append(f"{(i + 1) * 1000 + j + 100_000:016x}")
            parents.append(child)
            operations.append("cache get" if j % 11 == 0 else "index read")
            starts_ms.append(i * 150 + j * 1.3)
            durations_ms.append(1.2)
    n = len(ids)
    frame = pl.DataFrame(
        {
            "trace_id": ["9".zfill(32)] * n,
            "span_id": ids,
            "parent_span_id": parents,
            "service": ["edge"] + [("search" if op == "shard query" else "index") for op in operations[1:]],
            "operation": operations,
            "kind": ["server"] * n,
            "start": [T0 + timedelta(milliseconds=s) for s in starts_ms],
            "duration_ms": durations_ms,
            "status": ["ok"] * n,
            "http_status": [None] * n,
            "is_root": [p is None for p in parents],
        },
        schema=SPANS,
    )
    validate(frame, "spans")
    return frame


def best_seconds(trace: pl.DataFrame, repeat: int) -> float:
    """Fastest of ``repeat`` waterfall runs (at least one)."""
    best = math.inf
    for _ in range(max(repeat, 1)):
        started = time.perf_counter()
        waterfall_rows(trace, max_rows=120)
        best = min(best, time.perf_counter() - started)
    return best


def run(children: int, repeat: int) -> dict[str, float | int]:
    small, large = wide_trace(max(children // 10, 1)), wide_trace(children)
    waterfall_rows(small, max_rows=120)  # warm-up: first-call costs belong to neither size
    small_s, large_s = best_seconds(small, repeat), best_seconds(large, repeat)
    size_ratio, time_ratio = large.height / small.height, large_s / small_s
    return {
        "small_spans": small.height,
        "large_spans": large.height,
        "small_s": round(small_s, 4),
        "large_s": round(large_s, 4),
        "time_ratio": round(time_ratio, 2),
        "size_ratio": round(size_ratio, 2),
        "scaling_exponent": round(math.log(time_ratio) / math.log(size_ratio), 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="How the trace waterfall scales with the number of spans.")
    parser.add_argument("--children", type=int, default=50, help="shard calls in the large trace (99 spans each)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.children, args.repeat)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"waterfall: {result['small_spans']} spans {result['small_s']:.4f} s, {result['large_spans']} spans "
            f"{result['large_s']:.4f} s: ×{result['time_ratio']} time for ×{result['size_ratio']} spans "
            f"(scaling exponent {result['scaling_exponent']}; 1 = linear, 2 = quadratic)"
        )


if __name__ == "__main__":
    main()
