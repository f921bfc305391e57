"""Window-wide analysis computed where the spans are, when the one spans source can count them itself.

A source like ClickHouse holds every span of the window but hands the app only an even sample of
whole traces; its ``aggregates(...)`` answer the cohort analysis's counts over *every* request
(``analysis.aggregates.CohortAggregates``). When such a source alone gave the window's spans, the
incident period, cohorts, ranking and blast radius come from it; otherwise, or when it fails, from the
requests in memory. Pages never ask which engine answered: :mod:`ui.incident` does, here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import polars as pl

from analysis.aggregates import CohortAggregates, CountedInvestigation, investigate_aggregates
from analysis.outcome import Outcome
from config import SloConfig
from connectors.errors import ConfigError, ConnectorError
from ui import data, state
from ui.snapshot_mode import active_snapshot

log = logging.getLogger("faultline.ui")


@runtime_checkable
class PushesDown(Protocol):
    """A connector that computes the cohort analysis's counts where its spans are."""

    name: str

    def aggregates(self, start: datetime, end: datetime, slo: SloConfig = ..., *, outcome: Outcome = ...,
                   roots_only: bool = ..., cohort: Sequence[tuple[str, str]] = ()) -> CohortAggregates: ...


@dataclass(frozen=True)
class Pushed:
    """The pushed-down investigation, or why there is none (``error``: the source failed; shown, not raised)."""

    counted: CountedInvestigation | None
    source: str
    error: str | None = None


def pushdown_source() -> PushesDown | None:
    """The source to push down to: the only spans source, able to count, that answered this load alone,
    with no service filter (a service filter keeps whole traces that touch it, which the counts do not do)."""
    if active_snapshot() is not None or state.current_filter().service:
        return None
    spans = [c for c in data.connectors().connectors.values() if "spans" in c.capabilities]
    loaded = data.frames("spans")
    if len(spans) != 1 or not isinstance(spans[0], PushesDown) or loaded.sources != (spans[0].name,):
        return None
    return spans[0]


def pushed_investigation(requests: pl.DataFrame, outcome: Outcome, start: datetime | None,
                         end: datetime | None) -> Pushed | None:
    """The investigation over every request of the window, counted by the source (None: no such source,
    or ``requests`` are not the window's requests, all or under the cohort filter, that the counts can be).

    Cached per generation of ``requests`` (a reload asks again) and per filter and period.
    """
    source = pushdown_source()
    if source is None:
        return None
    if requests is data.all_requests():
        cohort: tuple[tuple[str, str], ...] = ()
    elif requests is data.filtered_requests(whole_window=True):
        cohort = tuple((k, str(v)) for k, v in state.current_filter().cohort)
    else:
        return None
    try:  # a failure raises through the memo, so it is not cached: the next rerun asks again (the breaker
        # is what keeps a down source from being asked on every rerun)
        counted = data.memo(_pushed, requests, source.name, data.incident_window(), cohort, outcome, start, end)
    except ConnectorError as exc:
        log.warning("pushdown to %s failed: %s", source.name, exc.describe())
        return Pushed(None, source.name, exc.describe())
    except Exception as exc:  # noqa: BLE001 — a fault in the counts must leave the sampled analysis on the page
        log.exception("pushdown to %s failed unexpectedly", source.name)
        return Pushed(None, source.name, f"unexpected {type(exc).__name__}")
    return Pushed(counted, source.name)


def _pushed(requests: pl.DataFrame, name: str, window: tuple[datetime, datetime], cohort: tuple[tuple[str, str], ...],
            outcome: Outcome, start: datetime | None, end: datetime | None) -> CountedInvestigation:
    source = data.connectors().connectors.get(name)
    if not isinstance(source, PushesDown):
        raise ConfigError(f"the source {name!r} is no longer configured", source=name)
    aggregates = source.aggregates(window[0], window[1], data.slo(), outcome=outcome, cohort=cohort)
    return investigate_aggregates(aggregates, data.app_config().attributes, start, end)
