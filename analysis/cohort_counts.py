"""Per-attribute value counts for many attributes in few passes (the ranking's hot loop).

Every attribute is turned into a dense small-int code and combined with a 2-bit class
(selection/baseline × good/bad) into one small integer key (UInt8 when it fits), so each pass is
the cheapest hash ``group_by`` polars has; low-cardinality attributes share a pass (mixed-radix
packing, marginalised afterwards on the tiny result). All passes run in one ``collect_all``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

PACK_LIMIT = 256  # distinct keys per pass: hash group_by slows sharply beyond a few hundred groups
N_CLASSES = 4


@dataclass(frozen=True)
class _Coded:
    column: str
    code: pl.Expr  # 0 for null, 1..cardinality otherwise
    cardinality: int  # number of codes including the null code
    values: pl.Series  # values[code - 1] is the value of code


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
            out.append(_Coded(c, (pl.col(c).cast(pl.Int32) - lo + 1).fill_null(0), int(hi - lo + 2), values))
        else:
            values = pl.Series(c, uniques[c], dtype=pl.String)
            code = (as_text[c].cast(pl.Enum(values.to_list())).to_physical().cast(pl.Int32) + 1).fill_null(0)
            out.append(_Coded(c, code, values.len() + 1, values))
    return out


def class_counts(frame: pl.DataFrame, columns: list[str], cls: str = "cls") -> pl.DataFrame:
    """Long frame ``column, value (String), cls, n``: requests per attribute value and class.

    ``frame[cls]`` holds small ints in ``0..3``; rows with a null class must be filtered out first.
    """
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
        key = pl.col(cls).cast(pl.Int32)
        stride = N_CLASSES
        for item in pack:
            key = key + item.code * stride
            stride *= item.cardinality
        dtype = pl.UInt8 if stride <= 1 << 8 else pl.UInt16 if stride <= 1 << 16 else pl.UInt32
        queries.append(lazy.select(key.cast(dtype).alias("key")).group_by("key").len())
    results = pl.collect_all(queries)
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
