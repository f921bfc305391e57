"""How fast every page answers: first run and warm rerun per page, and the interactions that matter.

One process, AppTest over the whole app, the demo at each ``--sizes`` (``options.requests``). Per size:

* ``load``: the first run of the app (Overview), which loads and derives the data;
* per page: ``first`` (the page's first run after the load) and ``warm`` (the median of ``--repeat``
  reruns with nothing changed);
* interactions, each the median of ``--repeat`` runs, each run a *new* value (so a cache miss):
  ``filter change`` (the time window, on every page), ``cohort chip`` (Overview), ``brush`` (a box on
  the Cohorts scatter), ``trace lookup`` (a trace id on Traces);
* peak RSS of the process (``ru_maxrss``; it only grows, so it is the peak up to that size).

``--baseline REF`` measures the same thing on the code at git ``REF`` (exported with ``git archive``
into a temporary directory, run in a subprocess, one size at a time, alternating with this tree), so
a busy machine slows both alike; the table then shows ``ratio`` = this tree's time / the baseline's.

    .venv/bin/python -m bench.page_speed [--sizes 200000,1000000] [--repeat 3] [--baseline main] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PAGES = ("overview", "cohorts", "traces", "service_map", "breakers", "pools")
WINDOW_START = datetime(2026, 3, 14, 2, 0)  # the demo's window, naive UTC as the slider holds it
WINDOW_MIN = 60


def _config(requests: int, folder: Path) -> Path:
    path = folder / f"sources-{requests}.yaml"
    path.write_text(
        "slo:\n  default_ms: 2000\n  rules: [{service: gateway, operation: \"POST /checkout\", ms: 3000}]\n"
        f"sources:\n  - {{name: demo, type: demo, options: {{seed: 7, requests: {requests}}}}}\n"
    )
    return path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _timed(step: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def _clear_caches() -> None:
    import streamlit as st

    from ui.generation import ISSUED

    st.cache_resource.clear()
    st.cache_data.clear()
    ISSUED.clear()


FAILURES: list[str] = []


def _check(at: Any, what: str) -> None:
    """Note a page that raised (the run goes on: one broken page must not hide the others' figures)."""
    if at.exception:
        FAILURES.append(f"{what}: {[getattr(e, 'stack_trace', None) or e.value for e in at.exception]}")


def measure(requests: int, repeat: int, folder: Path) -> list[dict[str, Any]]:
    """Every measurement at one size, as rows ``{size, what, page, seconds}`` (plus one RSS row)."""
    from streamlit.testing.v1 import AppTest

    os.environ["FAULTLINE_SOURCES"] = str(_config(requests, folder))
    os.environ["FAULTLINE_SNAPSHOT_DIR"] = str(folder / "snapshots")
    os.chdir(REPO)
    _clear_caches()
    rows: list[dict[str, Any]] = []

    def add(what: str, page: str, seconds: list[float]) -> None:
        rows.append({"size": requests, "what": what, "page": page, "seconds": statistics.median(seconds),
                     "runs": len(seconds)})

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=900)
    at.secrets["faultline"] = {"snapshot_redaction_key": "bench"}
    add("load", "overview", [_timed(at.run)])
    _check(at, "load")
    for page in PAGES:
        if page != "overview":
            at.switch_page(f"views/{page}.py")
            first = _timed(at.run)
            _check(at, page)
            add("first", page, [first])
        warm = [_timed(at.run) for _ in range(repeat)]
        _check(at, page)
        add("warm", page, warm)
        changes = []
        for i in range(repeat):  # a new window each time: 40, 39, 38 … minutes, ending at the window's end
            lo = WINDOW_START + timedelta(minutes=20 + i)
            at.slider(key="w_time").set_value((lo, WINDOW_START + timedelta(minutes=WINDOW_MIN)))
            changes.append(_timed(at.run))
            _check(at, f"{page} filter change")
        add("filter change", page, changes)
        at.button(key="w_clear").click().run()

    at.switch_page("views/overview.py").run()
    values = at.selectbox(key="w_add_key").options
    attribute = "region" if "region" in values else values[0]
    at.selectbox(key="w_add_key").set_value(attribute).run()
    chips = []
    for value in at.selectbox(key="w_add_value").options[:repeat]:
        at.selectbox(key="w_add_key").set_value(attribute).run()
        at.selectbox(key="w_add_value").set_value(value).run()
        chips.append(_timed(at.button(key="w_add_btn").click().run))
        _check(at, "cohort chip")
        at.button(key="w_clear").click().run()
    add("cohort chip", "overview", chips)

    at.switch_page("views/cohorts.py").run()
    brushes = []
    for i in range(repeat):
        lo, hi = WINDOW_START + timedelta(minutes=25 + i), WINDOW_START + timedelta(minutes=50)
        box = {"xref": "x", "yref": "y", "x": [f"{hi:%Y-%m-%d %H:%M:%S}", f"{lo:%Y-%m-%d %H:%M:%S}"], "y": [13.0, 9.0]}
        at.session_state["cohort_scatter"] = {"selection": {"points": [], "point_indices": [], "box": [box],
                                                            "lasso": []}}
        brushes.append(_timed(at.run))
        _check(at, "brush")
    add("brush", "cohorts", brushes)

    at.switch_page("views/traces.py").run()
    from ui.frames import all_spans  # noqa: F401 — the ids come from the table the page shows

    lists = [d.value for d in at.dataframe if "trace_id" in d.value.columns]
    ids = [str(t) for t in lists[0]["trace_id"][:repeat]] if lists else []
    lookups = []
    for trace_id in ids:
        at.text_input(key="traces_lookup").input(trace_id)
        lookups.append(_timed(at.run))
        _check(at, "trace lookup")
    if lookups:
        add("trace lookup", "traces", lookups)
    rows.append({"size": requests, "what": "peak RSS (MB)", "page": "-", "seconds": _rss_mb(), "runs": 1})
    return rows


def _baseline(ref: str, requests: int, repeat: int, repo: Path) -> list[dict[str, Any]]:
    """The same measurement on the code at ``ref``, in a subprocess (fresh memory, fresh caches)."""
    with tempfile.TemporaryDirectory(prefix="page-speed-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(repo), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        (tree / "bench" / "page_speed.py").write_text(Path(__file__).read_text())  # the same bench, the old code
        out = subprocess.run([sys.executable, "-m", "bench.page_speed", "--sizes", str(requests), "--repeat",
                              str(repeat), "--json"], cwd=tree, check=True, capture_output=True, text=True,
                             env={**os.environ, "FAULTLINE_PAGE_SPEED_CHILD": "1"})
        rows: list[dict[str, Any]] = json.loads(out.stdout.strip().splitlines()[-1])
        FAILURES.extend(line.removeprefix("FAILED ") for line in out.stderr.splitlines() if line.startswith("FAILED "))
        return rows


def _subprocess_rows(requests: int, repeat: int) -> list[dict[str, Any]]:
    """This tree measured in a fresh subprocess, so each size's peak RSS is its own."""
    out = subprocess.run([sys.executable, "-m", "bench.page_speed", "--sizes", str(requests), "--repeat",
                          str(repeat), "--json"], cwd=REPO, check=True, capture_output=True, text=True,
                         env={**os.environ, "FAULTLINE_PAGE_SPEED_CHILD": "1"})
    rows: list[dict[str, Any]] = json.loads(out.stdout.strip().splitlines()[-1])
    FAILURES.extend(line.removeprefix("FAILED ") for line in out.stderr.splitlines() if line.startswith("FAILED "))
    return rows


def table(rows: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> str:
    """A Markdown table: one line per (size, measurement, page), with the baseline and the ratio if given."""
    base = {(r["size"], r["what"], r["page"]): r["seconds"] for r in baseline}
    head = "| requests | measurement | page | this tree |" + (" baseline | ratio |" if base else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        unit = "" if r["what"].startswith("peak") else " s"
        line = f"| {r['size']:,} | {r['what']} | {r['page']} | {r['seconds']:.2f}{unit} |"
        old = base.get((r["size"], r["what"], r["page"]))
        if base:
            line += f" {old:.2f}{unit} | {r['seconds'] / old:.2f} |" if old else " – | – |"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,1000000", help="demo requests, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="a git ref to measure the same way, for ratios")
    parser.add_argument("--repo", type=Path, default=REPO, help="the git checkout --baseline's ref is taken from")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sys.path.insert(0, str(REPO))
    rows: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="page-speed-") as tmp:
        for size in sizes:
            if os.environ.get("FAULTLINE_PAGE_SPEED_CHILD") or len(sizes) == 1 and not args.baseline:
                rows += measure(size, args.repeat, Path(tmp))
            else:
                rows += _subprocess_rows(size, args.repeat)
            if args.baseline:
                baseline += _baseline(args.baseline, size, args.repeat, args.repo)
    if args.json:
        print(json.dumps(rows if not baseline else {"rows": rows, "baseline": baseline}))
    else:
        print(f"page_speed at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}, "
              f"median of {args.repeat}")
        print(table(rows, baseline))
    for failure in FAILURES:
        print("FAILED", failure, file=sys.stderr)


if __name__ == "__main__":
    main()
