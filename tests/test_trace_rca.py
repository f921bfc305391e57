"""The structure ranker (analysis.trace_rca.rank_by_structure): where the call fan-out vanished."""

from __future__ import annotations

from typing import Any

from analysis.trace_rca import rank_by_structure
from tests.span_builders import frame, span


def _traces(n: int, *, defect: bool, offset: int = 0) -> list[dict[str, Any]]:
    """gateway → orders → (db, stock); with ``defect`` orders throws before calling stock."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        t, t0 = str(offset + i), i * 100.0
        rows += [
            span(t, "1", None, "gateway", "GET /order", t0, 50.0),
            span(t, "2", "1", "orders", "load", t0 + 5, 40.0),
            span(t, "3", "2", "db", "SELECT", t0 + 10, 10.0),
        ]
        if not defect:
            rows.append(span(t, "4", "2", "stock", "reserve", t0 + 25, 10.0))
    return rows


def test_the_service_whose_calls_vanished_ranks_first() -> None:
    normal = frame(_traces(40, defect=False))
    faulty = frame(_traces(40, defect=True, offset=1000))
    ranked = rank_by_structure(faulty, normal)
    top = ranked.row(0, named=True)
    assert top["service"] == "orders" and top["top_operation"] == "load"
    assert top["score"] == 0.5  # two children normally, one now
    assert ranked.filter(ranked["service"] == "gateway")["score"].item() == 0.0  # still calls orders
    assert ranked["rank"].to_list() == list(range(1, ranked.height + 1))
    assert set(ranked["service"]) == {"gateway", "orders", "db", "stock"}


def test_no_structural_change_scores_nothing() -> None:
    normal = frame(_traces(40, defect=False))
    ranked = rank_by_structure(frame(_traces(40, defect=False, offset=1000)), normal)
    assert ranked["score"].max() == 0.0
