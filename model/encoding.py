"""How a spans frame is held in memory: low-cardinality strings as ``Categorical``, rows in start order.

A polars ``String`` costs a 16-byte view a row (plus the bytes of longer strings); a ``Categorical``
costs a 4-byte code. Most span columns (service, operation, status, region, client version, …) have a
handful of values over millions of rows, so encoding them once per load makes the frame, and every
filtered copy of it, about a third the size. Ids stay ``String``: they are unique, and their codes
would only grow polars' process-wide category table.

Encoded frames compare, filter, group, sort and join (with each other) as the strings did; string
functions (``.str``) and joins against a ``String`` column need a ``cast(pl.String)`` first. Snapshots and
the schemas keep plain ``String`` (:func:`decoded`).

Rows in start order make a time window of the spans one contiguous run, which polars' filter returns as
a slice sharing the frame's columns instead of a copy: a time window is the filter an on-call engineer
changes most, and at a million requests each copy is hundreds of MB.
"""

from __future__ import annotations

import polars as pl

from model.schemas import ATTR_PREFIX

ENCODED = ("service", "operation", "kind", "status")  # plus the attr.* columns of few values
MAX_CATEGORIES = 10_000  # distinct values above which a column stays String (ids, free text)


def encoded(spans: pl.DataFrame) -> pl.DataFrame:
    """``spans`` with every low-cardinality string column as ``Categorical`` (the same frame when none is)."""
    candidates = [c for c, dtype in spans.schema.items()
                  if dtype == pl.String and (c in ENCODED or c.startswith(ATTR_PREFIX))]
    if not candidates or spans.height == 0:
        return spans
    distinct = spans.select(pl.col(candidates).approx_n_unique()).row(0, named=True)
    few = [c for c in candidates if distinct[c] <= MAX_CATEGORIES]
    return spans.with_columns(pl.col(few).cast(pl.Categorical)) if few else spans


def held(spans: pl.DataFrame) -> pl.DataFrame:
    """``spans`` as the app holds them: :func:`encoded`, in start order (the same frame when it already is)."""
    spans = encoded(spans)
    start = spans.get_column("start")
    return spans if start.null_count() == 0 and start.is_sorted() else spans.sort("start", maintain_order=True)


def decoded(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every ``Categorical`` column back to ``String`` (what the schemas and snapshots hold)."""
    cats = [c for c, dtype in frame.schema.items() if dtype == pl.Categorical]
    return frame.with_columns(pl.col(cats).cast(pl.String)) if cats else frame
