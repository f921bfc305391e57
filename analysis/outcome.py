"""Which requests are bad: errored, slower than their SLO, or either."""

from __future__ import annotations

from typing import Literal

import polars as pl

from config import SloConfig

Outcome = Literal["error", "slow", "bad"]
OUTCOMES: tuple[Outcome, ...] = ("bad", "error", "slow")
OUTCOME_WORDS: dict[Outcome, str] = {"bad": "bad", "error": "failed", "slow": "slow"}  # "… of failed requests"


def slo_ms_expr(slo: SloConfig) -> pl.Expr:
    """Per-row SLO threshold in ms: the first matching rule, else the default."""
    expr: pl.Expr = pl.lit(slo.default_ms, dtype=pl.Float64)
    for rule in reversed(slo.rules):  # reversed so the first rule ends up outermost and wins
        cond = pl.lit(True)
        if rule.service is not None:
            cond = cond & (pl.col("service") == rule.service)
        if rule.operation is not None:
            cond = cond & (pl.col("operation") == rule.operation)
        expr = pl.when(cond).then(pl.lit(rule.ms, dtype=pl.Float64)).otherwise(expr)
    return expr


def is_error_expr() -> pl.Expr:
    return (pl.col("status") == "error") | (pl.col("http_status").fill_null(0) >= 500)


def with_outcome(spans: pl.DataFrame, slo: SloConfig) -> pl.DataFrame:
    """Add boolean ``is_error``, ``is_slow`` and ``is_bad`` columns (and ``slo_ms``)."""
    return spans.with_columns(slo_ms=slo_ms_expr(slo)).with_columns(
        is_error=is_error_expr(),
        is_slow=pl.col("duration_ms") > pl.col("slo_ms"),
    ).with_columns(is_bad=pl.col("is_error") | pl.col("is_slow"))


def outcome_column(outcome: Outcome) -> str:
    """The column ``with_outcome`` adds for ``outcome``."""
    return {"error": "is_error", "slow": "is_slow", "bad": "is_bad"}[outcome]


def roots(spans: pl.DataFrame) -> pl.DataFrame:
    """Root spans: the requests as users saw them."""
    return spans.filter(pl.col("is_root"))
