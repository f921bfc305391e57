"""The pages' one door to data: re-exports :mod:`ui.sources` (config, connectors, window, budgets) and
:mod:`ui.frames` (frames, derived caches) and :mod:`ui.generation` (``memo``), so views keep writing ``data.frames(…)``."""

from __future__ import annotations

from ui.coverage import to_record as coverage_record
from ui.frames import (
    Loaded,
    Loading,
    all_requests,
    all_spans,
    apply_filter,
    filtered_requests,
    filtered_spans,
    frames,
    loads_in_flight,
    refresh,
    timeline_events,
)
from ui.generation import Generation, generation_of, issue_derived, memo
from ui.problems import Notice, Problem
from ui.sources import (
    Built,
    app_config,
    connectors,
    deadline_s,
    incident_window,
    local_deadline_s,
    slo,
    source_statuses,
    window_budget_traces,
)

__all__ = [
    "Built", "Generation", "Loaded", "Loading", "Notice", "Problem", "all_requests", "all_spans", "app_config",
    "apply_filter", "connectors", "coverage_record", "deadline_s", "filtered_requests", "filtered_spans", "frames", "generation_of",
    "incident_window", "issue_derived", "loads_in_flight", "local_deadline_s", "memo", "refresh", "slo", "source_statuses",
    "timeline_events", "window_budget_traces",
]
