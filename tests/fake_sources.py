"""Small real connectors for the page tests: complete, sampled, failing, flaky and slow local spans.

Registered as connector type ``fake`` (``tests.fake_sources:build``); ``options.mode`` picks one. Spans
come from the small demo incident, so the pages have something real to compute over.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence

import polars as pl

from config import SourceConfig
from connectors.base import LOCAL, Coverage, Health, Progress, Query, Result
from connectors.demo import demo_frames
from connectors.errors import SourceUnavailable

SAMPLE_SCALE = 10  # a sampled source says it read one trace in ten of the window
TOTAL_BYTES = 4 * 2**20

# slow local sources wait for the test: gates by source name, and how far each says it has got
GATES: dict[str, threading.Event] = {}
QUERIES: dict[str, list[Query]] = {}


@functools.cache
def demo_spans() -> pl.DataFrame:
    return demo_frames(seed=11, requests=20_000, full_trace_limit=20_000)["spans"]


class FakeSpans:
    """A spans source whose behaviour is its ``mode``: complete, sampled, failing, flaky or slow_local."""

    def __init__(self, name: str, mode: str, sleep_s: float = 0.0) -> None:
        self.name, self.mode, self.sleep_s = name, mode, sleep_s
        self.capabilities = frozenset({"spans", LOCAL} if mode == "slow_local" else {"spans"})
        self.calls = 0
        self._done_bytes = 0

    def check_health(self) -> Health:
        return Health("ok")

    def progress(self) -> Progress | None:
        return Progress(self._done_bytes, TOTAL_BYTES, "bytes")

    def query(self, queries: Sequence[Query]) -> list[Result]:
        return [self._one(q) for q in queries]

    def _one(self, query: Query) -> Result:
        self.calls += 1
        QUERIES.setdefault(self.name, []).append(query)
        failing = self.mode == "failing" or (self.mode == "flaky" and self.calls > 1)
        if failing:
            return Result(query.ref_id, query.kind, error=SourceUnavailable(
                "connection refused", source=self.name, hint="that the fake backend is up"))
        spans = demo_spans()
        traces = spans.get_column("trace_id").n_unique()
        if self.mode == "slow_local" and self.sleep_s:  # a server run (no test to open the gate): read slowly
            for step in range(1, 11):
                time.sleep(self.sleep_s / 10)
                self._done_bytes = TOTAL_BYTES * step // 10
        elif self.mode == "slow_local":
            self._done_bytes = TOTAL_BYTES // 4
            GATES.setdefault(self.name, threading.Event()).wait(60)
            self._done_bytes = TOTAL_BYTES
        coverage = (Coverage(traces, traces * SAMPLE_SCALE, "sampled_evenly") if self.mode == "sampled"
                    else Coverage(traces, traces, "all"))
        return Result(query.ref_id, query.kind, spans, f"fake {self.mode} spans", (), coverage=coverage)


def build(source: SourceConfig) -> FakeSpans:
    return FakeSpans(source.name, str(source.options.get("mode", "complete")), float(source.options.get("sleep_s", 0)))
