"""The time periods an aggregate query compares: a selection window and its baseline.

Both count engines read it, the polars one in ``analysis/`` and the SQL one in ``connectors/``, so it
lives here, below both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Baseline = Literal["before", "rest"]


@dataclass(frozen=True)
class Window:
    """Selection ``[start, end)`` (``end`` None: open); the baseline is the time before ``start``, or with
    ``baseline="rest"`` every request outside the selection."""

    start: datetime
    end: datetime | None = None
    baseline: Baseline = "before"
