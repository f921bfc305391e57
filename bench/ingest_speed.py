"""Ingest of a big OpenTelemetry collector file: our trace_files reader vs ``polars.read_ndjson`` on the same file.

Writes an OTel-SDK-shaped OTLP/JSON-lines file with ``tests.otel_files`` (1 M spans by default), then reads it,
each reader in its own fresh interpreter so its peak RSS is its own:

* ``imports``     — the interpreter with polars, msgspec and our modules imported, reading nothing (the floor);
* ``read_ndjson`` — ``polars.read_ndjson(path)`` with schema inference (the baseline);
* ``faultline``   — ``connectors.traces.files.convert_file(path)``: every span as a validated SPANS frame.

Printed per reader: rows, CPU seconds (user + system, all threads), wall seconds, spans/s, peak RSS; then the
ratios that issue 12 asks about: our CPU over read_ndjson's, and peak RSS over the file size (gross, and net
of the ``imports`` floor). A reader whose RSS passes ``--rss-limit-mib`` is stopped and reported as such, so
the baseline (about 19x the file size in memory) cannot take a shared machine down.

    .venv/bin/python -m bench.ingest_speed                      # 1 M spans
    .venv/bin/python -m bench.ingest_speed --spans 300000 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

READERS = ("imports", "read_ndjson", "faultline")


def measure_one(reader: str, path: Path) -> dict[str, object]:
    """Run one reader in this process: rows, CPU and wall seconds, peak RSS (MiB)."""
    import polars as pl

    from connectors.traces.files import convert_file

    cpu0, wall0 = time.process_time(), time.perf_counter()
    if reader == "read_ndjson":
        rows = pl.read_ndjson(path).height  # one row per line: the spans stay nested
        spans = None
    elif reader == "faultline":
        converted = convert_file(path)
        rows = spans = converted.frame.height
    else:
        rows = spans = 0
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"reader": reader, "rows": rows, "spans": spans, "cpu_s": round(cpu_s, 2), "wall_s": round(wall_s, 2),
            "peak_rss_mib": round(peak_mib)}


def measure(reader: str, path: Path, rss_limit_mib: float, timeout_s: float) -> dict[str, object]:
    """``measure_one`` in a fresh interpreter, stopped when its RSS passes the limit."""
    cmd = [sys.executable, "-m", "bench.ingest_speed", "--one", reader, "--path", str(path)]
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    over: list[float] = []

    def watch() -> None:
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            try:
                rss_kib = next(int(line.split()[1]) for line in status.read_text().splitlines()
                               if line.startswith("VmRSS:"))
            except (OSError, StopIteration, ValueError):
                rss_kib = 0
            if rss_kib / 1024 > rss_limit_mib:
                over.append(rss_kib / 1024)
                child.kill()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return {"reader": reader, "error": f"timed out after {timeout_s:.0f} s"}
    watcher.join()
    if over:
        return {"reader": reader, "error": f"stopped: RSS passed {rss_limit_mib:.0f} MiB"}
    if child.returncode != 0:
        return {"reader": reader, "error": (err.strip().splitlines() or ["?"])[-1]}
    return dict(json.loads(out.strip().splitlines()[-1]))


def report(path: Path, spans: int, results: dict[str, dict[str, object]]) -> dict[str, object]:
    """The figures and their ratios (None where a reader failed)."""
    file_mib = path.stat().st_size / 2**20
    ours, base, floor = results.get("faultline", {}), results.get("read_ndjson", {}), results.get("imports", {})

    def num(result: dict[str, object], key: str) -> float | None:
        value = result.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    ours_cpu, base_cpu = num(ours, "cpu_s"), num(base, "cpu_s")
    ours_rss, base_rss, floor_rss = num(ours, "peak_rss_mib"), num(base, "peak_rss_mib"), num(floor, "peak_rss_mib")
    return {
        "file_mib": round(file_mib, 1), "spans": spans, "results": results,
        "spans_per_s": {r: round(spans / c) for r in ("read_ndjson", "faultline")
                        if (c := num(results.get(r, {}), "cpu_s"))},
        "cpu_ratio_faultline_over_read_ndjson": round(ours_cpu / base_cpu, 2) if ours_cpu and base_cpu else None,
        "rss_over_file": {r: round(v / file_mib, 2) for r, v in (("read_ndjson", base_rss), ("faultline", ours_rss))
                          if v is not None},
        "net_rss_over_file": {r: round((v - floor_rss) / file_mib, 2) for r, v in
                              (("read_ndjson", base_rss), ("faultline", ours_rss)) if v is not None and floor_rss},
    }


def table(figures: dict[str, object]) -> str:
    results = figures["results"]
    assert isinstance(results, dict)
    lines = [f"file: {figures['file_mib']} MiB, {figures['spans']:,} spans",
             f"{'reader':<12} {'rows':>10} {'cpu s':>7} {'wall s':>7} {'spans/s (cpu)':>14} {'peak RSS MiB':>13}"]
    rates = figures["spans_per_s"]
    assert isinstance(rates, dict)
    for reader in READERS:
        r = results.get(reader, {})
        if "error" in r:
            lines.append(f"{reader:<12} {r['error']}")
            continue
        rate = f"{rates[reader]:,}" if reader in rates else "-"
        lines.append(f"{reader:<12} {r['rows']:>10,} {r['cpu_s']:>7.2f} {r['wall_s']:>7.2f} {rate:>14} "
                     f"{r['peak_rss_mib']:>13,}")
    lines.append(f"CPU faultline / read_ndjson: {figures['cpu_ratio_faultline_over_read_ndjson']} (target <= 1.5)")
    lines.append(f"peak RSS / file size: {figures['rss_over_file']}; net of the imports floor: "
                 f"{figures['net_rss_over_file']} (target <= 3)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans in the generated file (default 1M)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--path", type=Path, help="read this file instead of generating one (with --one: the file)")
    parser.add_argument("--readers", nargs="*", default=list(READERS), choices=READERS)
    parser.add_argument("--rss-limit-mib", type=float, default=16_000, help="stop a reader whose RSS passes this")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per reader before giving up")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--one", choices=READERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, args.path)))
        return
    from tests.otel_files import requests_for_spans, write_otel_file

    with tempfile.TemporaryDirectory(prefix="faultline-ingest-") as tmp:
        if args.path:
            path, spans = args.path, 0
        else:
            path = Path(tmp) / "otel.jsonl"
            started = time.perf_counter()
            truth = write_otel_file(path, requests=requests_for_spans(args.spans), seed=args.seed)
            path, spans = truth.path, truth.spans
            print(f"wrote {spans:,} spans in {truth.lines:,} lines ({path.stat().st_size / 2**20:.0f} MiB) "
                  f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        results = {r: measure(r, path, args.rss_limit_mib, args.timeout) for r in args.readers}
        if not spans:
            counted = results.get("faultline", {}).get("spans")
            spans = counted if isinstance(counted, int) else 0
        figures = report(path, spans, results)
    print(json.dumps(figures, indent=1) if args.json else table(figures))


if __name__ == "__main__":
    main()
