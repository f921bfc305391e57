"""Per-attribute value counts for many attributes in few passes (the ranking's hot loop).

Every attribute becomes a dense small-int code (zero-copy when it already is one). Several
attributes and the row's class (selection/baseline × good/bad, plus "not counted") are packed into
one mixed-radix key per pass (at most ``PACK_LIMIT`` bins), built in place by Horner's rule, and
counted by an array-indexed histogram (``numpy.bincount``); passes run on a thread per core
(numpy releases the GIL). Per-attribute counts are marginals of each small dense histogram.

Why not a polars ``group_by``: polars has no dense-code histogram, and its hash ``group_by`` costs
about 3× more per row than ``bincount`` (10 M UInt8 keys: 61 ms vs 19 ms on the 2-core CI box),
while a dense histogram stays flat up to ~2^20 bins, so far fewer passes are needed.
``bench/cohort_speed.py`` measures the whole ranking against DuckDB.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

PACK_LIMIT = 1 << 20  # bins per pass: bincount stays flat up to here (8 MiB of counts), slows beyond
MIN_PACK_LIMIT = 1 << 12  # ... and no more bins than rows above this: summing empty bins costs too
N_CLASSES = 4  # 0 baseline good, 1 baseline bad, 2 selection good, 3 selection bad
_UNCOUNTED = N_CLASSES  # the class of rows in neither side: its own bin row, dropped afterwards
_DIRECT_MAX = 1 << 16  # non-negative ints below this with no nulls are their own codes


@dataclass(frozen=True)
class _Coded:
    column: str
    codes: np.ndarray  # one small non-negative int per row
    labels: pl.Series  # String; labels[code] is the value (null: the attribute is missing)

    @property
    def cardinality(self) -> int:
        return self.labels.len()


def _codes(frame: pl.DataFrame, columns: list[str]) -> list[_Coded]:
    """Dense codes for every column; statistics and computed codes each in one parallel query."""
    schema = frame.schema
    ints = [c for c in columns if schema[c].is_integer()]
    stats = frame.select(
        *[pl.col(c).min().alias(f"lo:{c}") for c in ints],
        *[pl.col(c).max().alias(f"hi:{c}") for c in ints],
    ).row(0, named=True) if ints else {}
    bounds = {c: (stats[f"lo:{c}"], stats[f"hi:{c}"]) for c in ints if stats[f"lo:{c}"] is not None}
    small = {c for c, (lo, hi) in bounds.items() if hi - lo < 1 << 20}
    direct = {c for c in small if bounds[c][0] >= 0 and bounds[c][1] < _DIRECT_MAX and frame[c].null_count() == 0}
    categorical = [c for c in columns if schema[c] == pl.Categorical]
    texts = [c for c in columns if c not in small and c not in categorical]
    as_text = {c: pl.col(c) if schema[c] == pl.String else pl.col(c).cast(pl.String) for c in texts}
    uniques = frame.select(
        as_text[c].drop_nulls().unique().sort().implode().alias(c) for c in texts
    ).row(0, named=True) if texts else {}
    # computed codes: 0 for null, 1.. for the values (sorted for text, lo.. for ints)
    computed: dict[str, tuple[pl.Expr, pl.Series]] = {}
    for c in small - direct:
        lo, hi = bounds[c]
        computed[c] = ((pl.col(c).cast(pl.Int64) - (lo - 1)).fill_null(0), pl.int_range(lo, hi + 1, eager=True))
    for c in texts:
        values = pl.Series(c, uniques[c], dtype=pl.String)
        physical = as_text[c].cast(pl.Enum(values.to_list())).to_physical().cast(pl.Int64)
        computed[c] = ((physical + 1).fill_null(0), values)
    recoded = {c: _recoded(frame[c]) for c in categorical}
    code_frame = frame.select(
        expr.cast(pl.UInt32 if values.len() >= 1 << 16 else pl.UInt16).alias(c)
        for c, (expr, values) in computed.items()
    ) if computed else pl.DataFrame()
    out = []
    for c in columns:
        if c in direct:
            labels = pl.int_range(0, bounds[c][1] + 1, eager=True).cast(pl.String)
            out.append(_Coded(c, frame[c].to_numpy(), labels))
        elif c in recoded:
            out.append(recoded[c])
        else:
            values = computed[c][1]
            labels = pl.concat([pl.Series([None], dtype=pl.String), values.cast(pl.String)])
            out.append(_Coded(c, code_frame[c].to_numpy(), labels))
    return out


def _recoded(column: pl.Series) -> _Coded:
    """A categorical's codes made dense and in value order, through a lookup of its physical codes.

    The same codes and labels as the text path gives the column's strings (0 null, 1.. sorted), from
    one hash pass over 4-byte codes and a gather, instead of casting every row back to text.
    """
    present = column.unique().drop_nulls()
    physical = present.to_physical()
    values = present.cast(pl.String)
    order = values.arg_sort()
    null_code = int(physical.to_numpy().max(initial=0)) + 1
    dtype = np.uint32 if values.len() + 1 >= 1 << 16 else np.uint16
    lookup = np.zeros(null_code + 1, dtype=dtype)
    lookup[physical.gather(order).to_numpy()] = np.arange(1, values.len() + 1, dtype=dtype)
    codes = lookup[column.to_physical().fill_null(null_code).to_numpy()]
    labels = pl.concat([pl.Series([None], dtype=pl.String), values.gather(order)])
    return _Coded(column.name, codes, labels)


def _packs(coded: list[_Coded], limit: int) -> list[list[_Coded]]:
    """Greedy first-fit of the attributes (largest first) into keys of at most ``limit`` bins."""
    packs: list[list[_Coded]] = []
    sizes: list[int] = []
    for item in sorted(coded, key=lambda c: -c.cardinality):
        slot = next((i for i, size in enumerate(sizes) if size * item.cardinality <= limit), None)
        if slot is None:
            packs.append([item])
            sizes.append((N_CLASSES + 1) * item.cardinality)
        else:
            packs[slot].append(item)
            sizes[slot] *= item.cardinality
    return packs


def _histogram(pack: list[_Coded], cls: np.ndarray) -> np.ndarray:
    """Counts over ``cls + 5·(code₁ + c₁·(code₂ + c₂·…))``, shaped ``(c_k, …, c₁, 5)``."""
    key = pack[-1].codes.astype(np.uint32)  # half the memory traffic of intp, which bincount converts to
    for item in reversed(pack[:-1]):
        key *= item.cardinality
        np.add(key, item.codes, out=key, casting="unsafe")  # codes are small and non-negative, whatever their dtype
    key *= N_CLASSES + 1
    key += cls
    size = (N_CLASSES + 1) * math.prod(item.cardinality for item in pack)
    return np.bincount(key, minlength=size).reshape([item.cardinality for item in reversed(pack)] + [N_CLASSES + 1])


def class_counts(frame: pl.DataFrame, columns: list[str], cls: str | pl.Expr = "cls") -> pl.DataFrame:
    """Long frame ``column, value (String), cls, n``: requests per attribute value and class.

    ``cls`` (a column or an expression over ``frame``) gives small ints in ``0..3``; rows where it
    is null are not counted. Values with no counted request are left out.
    """
    empty = pl.DataFrame(schema={"column": pl.String, "value": pl.String, "cls": pl.Int8, "n": pl.UInt32})
    if not columns:
        return empty
    cls_expr = pl.col(cls) if isinstance(cls, str) else cls
    cls_codes = frame.select(cls_expr.fill_null(_UNCOUNTED).cast(pl.UInt8)).to_series().to_numpy()
    packs = _packs(_codes(frame, columns), min(PACK_LIMIT, max(MIN_PACK_LIMIT, frame.height)))
    # as many threads as polars uses (it honours POLARS_MAX_THREADS and the cgroup's cores)
    with ThreadPoolExecutor(max_workers=max(1, min(len(packs), pl.thread_pool_size()))) as pool:
        hists = list(pool.map(lambda pack: _histogram(pack, cls_codes), packs))
    parts = []
    for pack, hist in zip(packs, hists, strict=True):
        for axis, item in zip(range(len(pack) - 1, -1, -1), pack, strict=True):
            others = tuple(a for a in range(len(pack)) if a != axis)
            per_code = hist.sum(axis=others)[:, :N_CLASSES]  # (cardinality, classes)
            long = pl.DataFrame({
                "column": pl.repeat(item.column, per_code.size, eager=True),
                "value": item.labels.gather(np.repeat(np.arange(item.cardinality), N_CLASSES)),
                "cls": np.tile(np.arange(N_CLASSES, dtype=np.int8), item.cardinality),
                "n": per_code.ravel().astype(np.uint32),
            })
            parts.append(long.filter(pl.col("n") > 0))
    return pl.concat(parts) if parts else empty
