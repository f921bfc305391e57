"""Window-wide sampling for search-only trace backends: slice the window, search each slice, estimate the total.

A backend's search answers "the newest N traces" of whatever range it is given. Asked for the whole
window, that is the last minutes of it; asked per time slice with a per-slice limit, it is a sample
spread across the window. The estimate of the window's total traces, per slice:

* a slice that returned fewer than its limit is complete: its total is what it returned;
* a full slice returned its newest ``n`` traces, which cover ``[t_oldest, slice_end)`` completely, so
  its total is about ``n * slice_len / covered_len``;
* a slice searched in several parts (Jaeger without a service: one search per service) counts as its
  largest part (the traces through the busiest service: a lower bound when no service sees them all);
* failed slices are extrapolated from the answered ones by their share of the window's time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from connectors.base import Coverage
from connectors.traces.query import EPOCH, MAX_LIMIT, epoch_us

DEFAULT_BUDGET_TRACES = 8000
DEFAULT_SLICES = 16


@dataclass(frozen=True)
class TimeSlice:
    """``[start, end)`` searched with at most ``limit`` traces per part."""

    index: int
    start: datetime
    end: datetime
    limit: int

    @property
    def length_us(self) -> int:
        return max(1, epoch_us(self.end) - epoch_us(self.start))


@dataclass(frozen=True)
class SliceCount:
    """What one search of one slice found: how many traces, and the oldest one's start (clipped to the slice)."""

    slice: TimeSlice
    traces: int
    oldest: datetime | None

    @property
    def complete(self) -> bool:
        return self.traces < self.slice.limit

    def estimate(self) -> float:
        """The slice's total traces (see the module docstring)."""
        if self.complete or self.oldest is None:
            return float(self.traces)
        covered_us = epoch_us(self.slice.end) - max(epoch_us(self.oldest), epoch_us(self.slice.start))
        if covered_us <= 0:
            return float(self.traces)
        return self.traces * self.slice.length_us / covered_us


def plan_slices(start: datetime, end: datetime, budget_traces: int, slices: int, *, parts: int = 1,
                granularity_us: int = 1, max_limit: int = MAX_LIMIT) -> list[TimeSlice]:
    """Split ``[start, end)`` into equal slices whose limits (times ``parts`` searches each) stay within the budget.

    At least as many slices as the budget needs at ``max_limit`` per search; at most one per trace of
    budget; boundaries on multiples of ``granularity_us`` (a backend that takes seconds gets whole seconds).
    """
    parts = max(1, parts)
    span_us = epoch_us(end) - epoch_us(start)
    if span_us <= 0:
        return [TimeSlice(0, start, end, max(1, min(max_limit, budget_traces // parts)))]
    most = max(1, min(budget_traces // parts, span_us // granularity_us))
    count = min(most, max(slices, math.ceil(budget_traces / (parts * max_limit))))
    limit = max(1, min(max_limit, budget_traces // (count * parts)))
    first_us = epoch_us(start)
    inner = [(first_us + span_us * i // count) // granularity_us * granularity_us for i in range(1, count)]
    edges = [first_us, *(e for e in inner if e > first_us), first_us + span_us]  # inner edges on whole units
    edges = sorted(set(edges))
    return [TimeSlice(i, _at(a), _at(b), limit) for i, (a, b) in enumerate(itertools.pairwise(edges))]


def trace_starts(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per trace of a spans frame: ``trace_id`` and its earliest span ``start``."""
    return frame.group_by("trace_id").agg(pl.col("start").min())


def count_slice(time_slice: TimeSlice, traces: pl.DataFrame) -> SliceCount:
    """A :class:`SliceCount` from the ``trace_id``/``start`` rows one search of ``time_slice`` returned."""
    unique = traces.unique("trace_id")
    oldest = unique["start"].min() if unique.height else None
    return SliceCount(time_slice, unique.height, oldest if isinstance(oldest, datetime) else None)


def window_coverage(plan: Sequence[TimeSlice], counts: Sequence[SliceCount], traces_read: int,
                    traces_found: int | None = None) -> Coverage:
    """The Coverage of a sampled window from the slice searches that answered (failed slices are missing).

    ``traces_found`` is how many distinct traces the searches returned (default ``traces_read``); when every
    slice was complete that is the window's exact total, and the window is read completely only if all of
    them were read (a backend that fetches found traces by id may read fewer).
    """
    found = traces_read if traces_found is None else traces_found
    by_slice: dict[int, list[SliceCount]] = {}
    for count in counts:
        by_slice.setdefault(count.slice.index, []).append(count)
    if len(by_slice) == len(plan) and all(c.complete for c in counts):
        return Coverage(
            traces_read, max(found, traces_read), "all" if traces_read >= found else "sampled_evenly", len(plan)
        )
    total = sum(max(c.estimate() for c in parts) for parts in by_slice.values())
    answered_us = sum(parts[0].slice.length_us for parts in by_slice.values())
    if answered_us:  # missing slices: at the answered slices' mean rate
        total *= sum(s.length_us for s in plan) / answered_us
    return Coverage(traces_read, max(traces_read, round(total)), "sampled_evenly", len(by_slice))


def describe_plan(plan: Sequence[TimeSlice], parts: int = 1) -> str:
    """``16 slices of 3m45s, ≤ 500 traces per search``."""
    if not plan:
        return "no time slices"
    seconds = (plan[0].end - plan[0].start) / timedelta(seconds=1)
    each = f"{seconds:g}s" if seconds < 120 else f"{seconds / 60:g}m"
    per = f" × {parts} searches" if parts > 1 else ""
    return f"window sampled in {len(plan)} slices of {each}{per}, ≤ {plan[0].limit} traces per search"


def _at(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)
