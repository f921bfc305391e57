"""How the demo incident generator scales: seconds, rows per frame kind and peak RSS per size.

Each size runs ``connectors.demo.demo_frames(seed, requests, full_trace_limit)`` in a fresh
subprocess, so the peak resident set size (``ru_maxrss``) belongs to that size alone. The
import time of polars/numpy is excluded from the seconds but included in the peak.

    .venv/bin/python -m bench.demo_scale                     # 200k and 1M
    .venv/bin/python -m bench.demo_scale --max 10000000      # ... and 10M
    .venv/bin/python -m bench.demo_scale --sizes 200000 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIZES = (200_000, 1_000_000, 10_000_000)
KINDS = ("spans", "breakers", "pools", "pool_holders", "events")


def measure_one(requests: int, seed: int, full_trace_limit: int) -> dict[str, object]:
    """Generate once in this process; seconds, rows per kind and peak RSS (MiB)."""
    from connectors.demo import demo_frames

    started, cpu_started = time.perf_counter(), time.process_time()
    frames = demo_frames(seed, requests, full_trace_limit)
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {
        "requests": requests, "seconds": round(seconds, 2), "cpu_s": round(cpu_s, 2), "peak_rss_mib": round(peak_mib),
        "rows": {kind: frames[kind].height for kind in KINDS},
        "spans_mib": round(frames["spans"].estimated_size("mb")),
    }


def measure(requests: int, seed: int, full_trace_limit: int, timeout_s: float) -> dict[str, object]:
    """Run ``measure_one`` in a fresh interpreter so peak memory is per size."""
    cmd = [sys.executable, "-m", "bench.demo_scale", "--one", str(requests), "--seed", str(seed),
           "--full-trace-limit", str(full_trace_limit)]
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"requests": requests, "error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {"requests": requests, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict[str, object]]) -> str:
    head = f"{'requests':>11} {'seconds':>8} {'cpu s':>7} {'peak MiB':>9} {'spans':>11} {'spans MiB':>9} " \
           f"{'breakers':>8} {'pools':>6} {'holders':>7} {'events':>6}"
    lines = [head, "-" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['requests']:>11,} {r['error']}")
            continue
        rows = r["rows"]
        assert isinstance(rows, dict)
        lines.append(f"{r['requests']:>11,} {r['seconds']:>8.2f} {r['cpu_s']:>7.2f} {r['peak_rss_mib']:>9,} "
                     f"{rows['spans']:>11,} {r['spans_mib']:>9,} {rows['breakers']:>8,} {rows['pools']:>6,} "
                     f"{rows['pool_holders']:>7,} {rows['events']:>6,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=1_000_000, help="largest size to run (default 1M; 10M adds 10M)")
    parser.add_argument("--sizes", type=int, nargs="*", help="explicit sizes (overrides --max)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--full-trace-limit", type=int, default=250_000)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per size before giving up")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size in this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, args.seed, args.full_trace_limit)))
        return
    sizes = args.sizes or [s for s in SIZES if s <= args.max]
    results = [measure(s, args.seed, args.full_trace_limit, args.timeout) for s in sizes]
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
