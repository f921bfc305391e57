"""Per-attribute value counts for many attributes in few passes (the ranking's hot loop).

Every attribute is turned into a dense small-int code and combined with a 2-bit class
(selection/baseline × good/bad) into one small integer key (UInt8 when it fits), so each pass is
the cheapest hash ``group_by`` polars has; low-cardinality attributes share a pass (mixed-radix
packing, marginalised afterwards on the tiny result). All passes run in one ``collect_all``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

PACK_LIMIT = 256  # distinct keys per pass: hash group_by slows sharply beyond a few hundred groups
N_CLASSES = 4
ENGINE = "auto"


@dataclass(frozen=True)
class _Coded:
    column: str
    code: Callable[[pl.DataType], pl.Expr]  # code in the given int dtype: 0 for null, 1.. otherwise
    cardinality: int  # number of codes including the null code
    values: pl.Series  # values[code - 1] is the value of code


def _shifted(expr: pl.Expr, lo: int, has_nulls: bool) -> Callable[[pl.DataType], pl.Expr]:
    """``expr - lo + 1`` computed in the narrow key dtype (cheap SIMD), nulls as 0."""

    def code(dtype: pl.DataType) -> pl.Expr:
        narrow = expr.cast(dtype)
        shifted = narrow + (1 - lo) if lo <= 1 else narrow - (lo - 1)
        return shifted.fill_null(0) if has_nulls else shifted

    return code


def _int_code(column: str, lo: int, has_nulls: bool) -> Callable[[pl.DataType], pl.Expr]:
    if lo >= 0:
        return _shifted(pl.col(column), lo, has_nulls)
    wide = _shifted(pl.col(column).cast(pl.Int64), lo, has_nulls)
    return lambda dtype: wide(pl.Int64).cast(dtype)


def _codes(frame: pl.DataFrame, columns: list[str]) -> list[_Coded]:
    """Dense codes for every column, with the statistics for all columns gathered in one query."""
    ints = [c for c in columns if frame.schema[c].is_integer()]
    stats = frame.select(
        *[pl.col(c).min().alias(f"lo:{c}") for c in ints],
        *[pl.col(c).max().alias(f"hi:{c}") for c in ints],
    ).row(0, named=True) if ints else {}
    small = {c for c in ints if stats[f"lo:{c}"] is not None and stats[f"hi:{c}"] - stats[f"lo:{c}"] < 1 << 20}
    texts = [c for c in columns if c not in small]
    # other types: codes from an Enum over the sorted distinct values (a hash lookup, no sort of rows)
    as_text = {c: pl.col(c) if frame.schema[c] == pl.String else pl.col(c).cast(pl.String) for c in texts}
    uniques = frame.select(
        as_text[c].drop_nulls().unique().sort().implode().alias(c) for c in texts
    ).row(0, named=True) if texts else {}
    out = []
    for c in columns:
        if c in small:
            lo, hi = stats[f"lo:{c}"], stats[f"hi:{c}"]
            values = pl.int_range(lo, hi + 1, eager=True).cast(frame.schema[c])
            out.append(_Coded(c, _int_code(c, lo, frame[c].null_count() > 0), int(hi - lo + 2), values))
        else:
            values = pl.Series(c, uniques[c], dtype=pl.String)
            physical = as_text[c].cast(pl.Enum(values.to_list())).to_physical()
            out.append(_Coded(c, _shifted(physical, 0, frame[c].null_count() > 0), values.len() + 1, values))
    return out


def class_counts(frame: pl.DataFrame, columns: list[str], cls: str | pl.Expr = "cls") -> pl.DataFrame:
    """Long frame ``column, value (String), cls, n``: requests per attribute value and class.

    ``cls`` (a column or an expression over ``frame``) gives small ints in ``0..3``; rows where it
    is null are not counted.
    """
    cls_expr = pl.col(cls) if isinstance(cls, str) else cls
    coded = _codes(frame, columns)
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
        size = N_CLASSES
        for item in pack:
            size *= item.cardinality
        dtype: pl.DataType = pl.UInt8() if size <= 1 << 8 else pl.UInt16() if size <= 1 << 16 else pl.UInt32()
        key = cls_expr.cast(dtype)
        stride = N_CLASSES
        for item in pack:
            key = key + item.code(dtype) * stride
            stride *= item.cardinality
        queries.append(lazy.select(key.alias("key")).drop_nulls().group_by("key").len())
    results = pl.collect_all(queries, engine=ENGINE)
    parts = []
    for pack, counts in zip(packs, results):
        stride = N_CLASSES
        for item in pack:
            code = (pl.col("key").cast(pl.Int64) // stride) % item.cardinality
            stride *= item.cardinality
            per_code = counts.group_by(code.alias("code"), (pl.col("key").cast(pl.Int64) % N_CLASSES).alias("cls")).agg(
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
