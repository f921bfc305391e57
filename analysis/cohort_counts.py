"""Per-attribute value counts for many attributes in few passes (the ranking's hot loop).

Every attribute is turned into a dense small-int code; several codes are packed into one integer
key (mixed radix) together with a 2-bit class (selection/baseline × good/bad), so one hash
``group_by`` counts several attributes at once; the joint counts are then marginalised per
attribute on the tiny result. At 10M requests × 20 attributes this is 4–6 passes instead of 20.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

PACK_LIMIT = 1 << 18  # distinct keys per pass: small enough for a cache-friendly hash table
N_CLASSES = 4


@dataclass(frozen=True)
class _Coded:
    column: str
    code: pl.Expr  # 0 for null, 1..cardinality otherwise
    cardinality: int  # number of codes including the null code
    values: pl.Series  # values[code - 1] is the value of code


def _code(frame: pl.DataFrame, column: str) -> _Coded:
    dtype = frame.schema[column]
    col = pl.col(column)
    if dtype.is_integer():
        lo, hi = frame.select(col.min().alias("lo"), col.max().alias("hi")).row(0)
        if lo is not None and hi - lo < PACK_LIMIT // N_CLASSES:
            values = pl.int_range(lo, hi + 1, eager=True).cast(dtype)
            code = (col.cast(pl.Int64) - lo + 1).fill_null(0)
            return _Coded(column, code, int(hi - lo + 2), values)
    values = frame.get_column(column).drop_nulls().unique().sort()
    code = col.rank("dense").cast(pl.Int64).fill_null(0)
    return _Coded(column, code, values.len() + 1, values)


def class_counts(frame: pl.DataFrame, columns: list[str], cls: str = "cls") -> pl.DataFrame:
    """Long frame ``column, value (String), cls, n``: requests per attribute value and class.

    ``frame[cls]`` holds small ints in ``0..3``; rows with a null class must be filtered out first.
    """
    coded = [_code(frame, c) for c in columns]
    packs: list[list[_Coded]] = []
    size = N_CLASSES
    for item in sorted(coded, key=lambda c: c.cardinality):
        if packs and size * item.cardinality <= PACK_LIMIT:
            packs[-1].append(item)
            size *= item.cardinality
        else:
            packs.append([item])
            size = N_CLASSES * item.cardinality
    lazy = frame.lazy()
    queries = []
    for pack in packs:
        key = pl.col(cls).cast(pl.Int64)
        stride = N_CLASSES
        for item in pack:
            key = key + item.code * stride
            stride *= item.cardinality
        queries.append(lazy.select(key.alias("key")).group_by("key").len())
    results = pl.collect_all(queries)
    parts = []
    for pack, counts in zip(packs, results):
        stride = N_CLASSES
        for item in pack:
            code = (pl.col("key") // stride) % item.cardinality
            stride *= item.cardinality
            per_code = counts.group_by(code.alias("code"), (pl.col("key") % N_CLASSES).alias("cls")).agg(
                n=pl.col("len").sum()
            )
            lookup = pl.DataFrame({
                "code": pl.int_range(0, item.cardinality, eager=True, dtype=pl.Int64),
                "value": pl.concat([pl.Series([None], dtype=pl.String), item.values.cast(pl.String)]),
            })
            parts.append(
                per_code.join(lookup, on="code", how="left").select(
                    column=pl.lit(item.column), value="value", cls=pl.col("cls").cast(pl.Int8), n=pl.col("n")
                )
            )
    if not parts:
        return pl.DataFrame(schema={"column": pl.String, "value": pl.String, "cls": pl.Int8, "n": pl.UInt32})
    return pl.concat(parts, how="vertical_relaxed")
