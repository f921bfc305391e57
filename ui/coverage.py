"""What a window-wide figure was computed over, in words, and counts scaled from a sample.

Every figure computed over the incident window says what it was computed over next to it: all of the
window's requests, or an even sample of its traces (``connectors.base.Coverage``). Counts taken from
a sample are scaled by ``Coverage.scale`` and marked "≈"; the window's total is marked "≈" only when it
was estimated (``Coverage.total_exact``: counted by the backend, e.g. Tempo's TraceQL metrics).
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.base import Coverage


def merge(coverages: Iterable[Coverage]) -> Coverage | None:
    """The coverage of frames concatenated from several sources: sums, sampled if any part is."""
    parts = list(coverages)
    if not parts:
        return None
    totals = [c.traces_total for c in parts]
    return Coverage(
        traces_read=sum(c.traces_read for c in parts),
        traces_total=None if any(t is None for t in totals) else sum(t for t in totals if t is not None),
        method="all" if all(c.complete for c in parts) else "sampled_evenly",
        slices=max(c.slices for c in parts),
        total_exact=not all(c.complete for c in parts) and all(c.complete or c.total_exact for c in parts),
    )


def to_record(coverage: Coverage | None) -> dict[str, object] | None:
    """Coverage as plain JSON values (a snapshot keeps what its spans covered of the window)."""
    if coverage is None:
        return None
    return {"traces_read": coverage.traces_read, "traces_total": coverage.traces_total, "method": coverage.method,
            "slices": coverage.slices, "total_exact": coverage.total_exact}


def from_record(record: object) -> Coverage | None:
    """The inverse of :func:`to_record`; None for anything else (an older snapshot, a damaged manifest)."""
    if not isinstance(record, dict):
        return None
    read, total, method, slices = (record.get(k) for k in ("traces_read", "traces_total", "method", "slices"))
    known_method = method in ("all", "sampled_evenly")
    if not isinstance(read, int) or not (total is None or isinstance(total, int)) or not known_method:
        return None
    return Coverage(read, total, "all" if method == "all" else "sampled_evenly",
                    slices if isinstance(slices, int) else 1, total_exact=record.get("total_exact") is True)


def complete(traces: int) -> Coverage:
    """Coverage of a frame that holds every trace it has (files, uploads, snapshots)."""
    return Coverage(traces_read=traces, traces_total=traces, method="all")


def computed_over(coverage: Coverage | None, requests: int, *, filtered: bool = False) -> str:
    """One line: "all 21,000 requests" or "8,000 of ≈ 210,000 traces, sampled evenly across the window".

    ``requests`` is how many requests the figure itself used; ``filtered`` says the global filter
    narrowed them, so the line says so instead of calling them all of the window.
    """
    subset = "matching the filter" if filtered else "of the window"
    if coverage is None or coverage.complete:
        return f"Computed over all {requests:,} requests {subset}."
    if not coverage.traces_total:
        total = "an unknown number of"
    else:
        total = f"{coverage.traces_total:,}" if coverage.total_exact else f"≈ {coverage.traces_total:,}"
    sample = f"{coverage.traces_read:,} of {total} traces, sampled evenly across the window"
    if filtered:
        return (f"Computed over {requests:,} requests matching the filter, from {sample}; "
                f"counts are scaled ×{coverage.scale:,.1f}.")
    return f"Computed over {sample} ({requests:,} requests); counts are scaled ×{coverage.scale:,.1f}."


def scaled(count: float, coverage: Coverage | None) -> float:
    """A count over the sample, estimated over the window (unchanged when complete)."""
    return count if coverage is None else count * coverage.scale


def count_text(count: float, coverage: Coverage | None) -> str:
    """A count for display: exact when complete, "≈ N" scaled to the window when from a sample."""
    if coverage is None or coverage.complete:
        return f"{count:,.0f}"
    if not coverage.traces_total:  # a sample of unknown size: no honest scale, so say it is the sample's count
        return f"{count:,.0f} in the sample"
    return f"≈ {scaled(count, coverage):,.0f}"
