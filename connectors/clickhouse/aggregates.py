"""Window-wide aggregates computed in ClickHouse, returned as small polars frames of counts.

Each method runs one statement of :mod:`connectors.clickhouse.sql` and shapes its answer like the polars
engine's (``analysis.cohort_counts.class_counts`` for value counts, ``analysis.blast_radius.bad_rate_series``
for the rate series), so the seam the analysis reads through can be answered by either engine. Failures
raise the connector error tree (this is a library API, not ``query()``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import polars as pl

from connectors.clickhouse import sql
from connectors.clickhouse.client import ClickHouseClient
from connectors.clickhouse.schema import TraceTable
from connectors.clickhouse.sql import Scope
from model.periods import Window
from model.schemas import ATTR_PREFIX, TS

CLASS_COUNTS = pl.Schema({"column": pl.String, "value": pl.String, "cls": pl.Int8, "n": pl.UInt32})


class ClickHouseAggregates:
    """The aggregates of one :class:`Scope` (window, SLO, outcome, roots or every span, cohort filter).

    Implements ``analysis.aggregates.CohortAggregates`` (the seam the cohort analysis reads counts through).
    """

    def __init__(self, client: ClickHouseClient, table: TraceTable, scope: Scope) -> None:
        self.client = client
        self.table = table
        self.scope = scope
        self.outcome = scope.outcome
        self._summary: tuple[int, datetime | None, datetime | None] | None = None
        self._columns: list[str] = []

    def summary(self) -> tuple[int, datetime | None, datetime | None]:
        """``(requests, first start, last start)`` of the scope (read once, with :meth:`columns`)."""
        if self._summary is None:
            row = self._frame(sql.window_summary(self.table, self.scope)).row(0)
            n = int(row[0])
            self._summary = (n, row[1] if n else None, row[2] if n else None)
            self._columns = [f"{ATTR_PREFIX}{key}" for key in row[3] or []]
        return self._summary

    def columns(self) -> list[str]:
        """Every ``attr.<key>`` column the scope's requests carry (identifiers too: roles need them)."""
        self.summary()
        return self._columns

    def within(self, pairs: Sequence[tuple[str, str]]) -> ClickHouseAggregates:
        """The same aggregates over one cohort's requests (``"(missing)"`` matches an absent attribute)."""
        where = tuple((k if k in sql.PLAIN_COLUMNS else f"{ATTR_PREFIX}{k}", str(v)) for k, v in pairs)
        return ClickHouseAggregates(self.client, self.table, dataclasses.replace(self.scope,
                                                                                 where=self.scope.where + where))

    def over(self) -> str:
        """What every result was computed over, in words."""
        what = "requests" if self.scope.roots_only else "spans"
        return f"all {self.summary()[0]:,} {what} in ClickHouse {self.table.database}.{self.table.table}"

    def leaf_counts(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        """``<columns>…, bad, total, base_bad, base_total`` per value combination (strings, null = missing)."""
        frame = self._frame(sql.leaf_counts(self.table, self.scope, split, columns))
        return frame.select(*[pl.col(f"v{i}").cast(pl.String).alias(c) for i, c in enumerate(columns)],
                            *[pl.col(c).cast(pl.Int64) for c in ("bad", "total", "base_bad", "base_total")])

    def group_counts(self, split: Window, column: str) -> pl.DataFrame:
        """``value, bad, total, base_bad, base_total`` per value of ``column`` (null = missing)."""
        frame = self._frame(sql.group_counts(self.table, self.scope, split, column))
        return frame.select(pl.col("value").cast(pl.String),
                            *[pl.col(c).cast(pl.Int64) for c in ("bad", "total", "base_bad", "base_total")])

    def per_user_counts(self, split: Window, column: str) -> pl.DataFrame:
        """``n, users, users_bad``: selection users by their number of requests."""
        frame = self._frame(sql.per_user_counts(self.table, self.scope, split, column))
        return frame.select(*[pl.col(c).cast(pl.Int64) for c in ("n", "users", "users_bad")])

    def _frame(self, statement: sql.Statement) -> pl.DataFrame:
        return self.client.frame(statement.sql, statement.params)

    def rate_series(self, bucket_s: int = 60) -> pl.DataFrame:
        """``bucket, requests, bad, errors, slow, bad_rate`` per epoch-aligned bucket (empty buckets absent)."""
        frame = self._frame(sql.rate_series(self.table, self.scope, bucket_s))
        return frame.select(
            pl.col("bucket").cast(TS), pl.col("requests").cast(pl.UInt32),
            *[pl.col(c).cast(pl.Int64) for c in ("bad", "errors", "slow")],
        ).with_columns(bad_rate=pl.col("bad") / pl.col("requests"))

    def latency_histogram(self, bucket_s: int, edges_ms: Sequence[float]) -> pl.DataFrame:
        """``bucket, bin, requests, bad`` for the latency heatmap (bin = how many of ``edges_ms`` the duration
        reaches)."""
        frame = self._frame(sql.latency_histogram(self.table, self.scope, bucket_s, edges_ms))
        return frame.select(pl.col("bucket").cast(TS), pl.col("bin").cast(pl.UInt16),
                            pl.col("requests").cast(pl.UInt32), pl.col("bad").cast(pl.Int64))

    def attribute_cardinality(self, id_key_pattern: str) -> pl.DataFrame:
        """``column, n_present, n_values, n_requests`` for every column that may describe a cohort.

        ``n_values`` counts a missing value as one more value when some request lacks the column
        (as ``polars.Expr.n_unique`` counts null), so a cardinality rule gives the same answer here and
        over an in-memory frame.
        """
        frame = self._frame(sql.attribute_cardinality(self.table, self.scope, id_key_pattern))
        total = frame.filter(pl.col("column") == "").get_column("n_present").sum()
        return frame.filter(pl.col("column") != "").select(
            "column", pl.col("n_present").cast(pl.Int64),
            (pl.col("n_values") + (pl.col("n_present") < total).cast(pl.UInt64)).cast(pl.Int64).alias("n_values"),
            pl.lit(int(total), dtype=pl.Int64).alias("n_requests"),
        ).sort("column")

    def class_counts(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        """``column, value, cls, n`` like ``analysis.cohort_counts.class_counts``: missing values as a null value."""
        if not columns:
            return pl.DataFrame(schema=CLASS_COUNTS)
        frame = self._frame(sql.value_counts(self.table, self.scope, split, columns)).select(
            pl.col("column").cast(pl.String), pl.col("value").cast(pl.String), pl.col("cls").cast(pl.Int8),
            pl.col("n").cast(pl.Int64))
        totals = frame.filter(pl.col("column") == "").select("cls", total="n")
        present = frame.filter(pl.col("column") != "")
        grid = pl.DataFrame({"column": list(columns)}).join(totals, how="cross")
        missing = (grid.join(present.group_by("column", "cls").agg(seen=pl.col("n").sum()), on=["column", "cls"],
                             how="left")
                   .select("column", pl.lit(None, dtype=pl.String).alias("value"), "cls",
                           (pl.col("total") - pl.col("seen").fill_null(0)).alias("n"))
                   .filter(pl.col("n") > 0))
        return pl.concat([present, missing]).with_columns(pl.col("n").cast(pl.UInt32)).select(CLASS_COUNTS.names())

    def combination_counts(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        """``columns, values, cls, n`` for every non-empty subset of the 2–3 columns (lists, null = missing)."""
        frame = self._frame(sql.combination_counts(self.table, self.scope, split, columns))
        names = list(columns)
        in_set = pl.col("in_set").cast(pl.Int64)
        picked = [pl.when((in_set // (1 << i)) % 2 == 1) for i in range(len(names))]
        return frame.select(
            pl.concat_list([p.then(pl.lit(n)) for p, n in zip(picked, names, strict=True)])
            .list.drop_nulls().alias("columns"),
            pl.concat_list([p.then(pl.struct(v=pl.col(f"v{i}").cast(pl.String))) for i, p in enumerate(picked)])
            .list.drop_nulls().list.eval(pl.element().struct.field("v")).alias("values"),
            pl.col("cls").cast(pl.Int8), pl.col("n").cast(pl.UInt32),
        )

    def distinct_per_period(self, split: Window, columns: Sequence[str]) -> pl.DataFrame:
        """``period, column, requests, distinct, distinct_bad`` (exact ``uniqExact``; missing values not counted)."""
        frame = self._frame(sql.distinct_per_period(self.table, self.scope, split, columns))
        parts = [frame.select("period", pl.col("requests").cast(pl.Int64), pl.lit(c).alias("column"),
                              pl.col(f"all_{i}").cast(pl.Int64).alias("distinct"),
                              pl.col(f"bad_{i}").cast(pl.Int64).alias("distinct_bad"))
                 for i, c in enumerate(columns)]
        return pl.concat(parts).select("period", "column", "requests", "distinct",
                                       "distinct_bad") if parts else pl.DataFrame()

    def service_edges(self) -> pl.DataFrame:
        """``caller, callee, calls, bad, errors, p50_ms, p99_ms`` over every span of the scope."""
        frame = self._frame(sql.service_edges(self.table, self.scope, (0.5, 0.99)))
        return frame.select(
            pl.col("caller").cast(pl.String), pl.col("callee").cast(pl.String),
            *[pl.col(c).cast(pl.Int64) for c in ("calls", "bad", "errors")],
            pl.col("duration_quantiles_ms").list.get(0).alias("p50_ms"),
            pl.col("duration_quantiles_ms").list.get(1).alias("p99_ms"),
        )
