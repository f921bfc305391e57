"""Selection vs baseline: the one split behind cohorts, the blast radius, the service map and pools.

A *selection* is

* ``(start, end)`` — an incident window (either end may be open); the baseline is the time before
  ``start``, or, when nothing precedes it, every request outside the window;
* a boolean ``pl.Expr``/``pl.Series`` — a brushed band, a clicked cohort, the roots of stuck
  traces; the baseline is the rest;
* ``None`` — the incident start is detected from the bad rate (:func:`detect_incident_start`) and
  the window runs from there to the end.

The frame can hold requests (root spans) or spans: only the ``start`` column is read (and the
outcome column when the start is detected).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from analysis.changepoint import detect_incident_start
from analysis.outcome import Outcome, outcome_column

Selection = tuple[datetime | None, datetime | None] | pl.Expr | pl.Series | None

SEL, BASE = "_sel", "_base"  # the boolean label columns a Split adds


@dataclass(frozen=True)
class Split:
    """``frame`` with boolean ``_sel``/``_base`` columns, plus how the selection was chosen.

    ``start`` is the window's start (None for a mask selection); ``versus`` words the baseline in a
    sentence ("before", or "elsewhere" when the baseline is not the time before).
    """

    frame: pl.DataFrame
    start: datetime | None
    start_detected: bool
    how: str
    versus: str = "before"

    @property
    def selection(self) -> pl.DataFrame:
        """The selected rows, without the label columns."""
        return self.frame.filter(pl.col(SEL)).drop(SEL, BASE)

    @property
    def baseline(self) -> pl.DataFrame:
        """The baseline rows, without the label columns."""
        return self.frame.filter(pl.col(BASE)).drop(SEL, BASE)

    def parts(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """``(selection, baseline)`` as two frames."""
        return self.selection, self.baseline


def split_requests(frame: pl.DataFrame, selection: Selection = None, outcome: Outcome = "bad") -> Split:
    """Label every row as selection, baseline or neither (see the module docstring)."""
    if isinstance(selection, (pl.Expr, pl.Series)):
        mask = selection if isinstance(selection, pl.Expr) else pl.lit(selection)
        labelled = frame.with_columns(mask.fill_null(False).alias(SEL)).with_columns((~pl.col(SEL)).alias(BASE))
        return Split(labelled, None, False, "the selection against the rest", "elsewhere")
    detected, how = False, "given window against the time before it"
    start: datetime | None
    end: datetime | None
    if selection is None:
        start, how = detect_incident_start(frame, outcome_column(outcome))
        end, detected = None, True
    else:
        start, end = selection
    ts = pl.col("start")
    in_window = pl.lit(True)
    if start is not None:
        in_window = in_window & (ts >= start)
    if end is not None:
        in_window = in_window & (ts < end)
    before = ts < start if start is not None else pl.lit(False)
    labelled = frame.with_columns(in_window.alias(SEL), before.alias(BASE))
    versus = "before" if start is not None else "elsewhere"
    if not labelled.get_column(BASE).any():
        labelled = labelled.with_columns((~pl.col(SEL)).alias(BASE))
        how = how + " (nothing before it: against the rest)"
    return Split(labelled, start, detected, how, versus)
