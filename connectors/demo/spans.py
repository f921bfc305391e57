"""Turn the demo's requests into span trees (the spans frame).

A trace is a fixed set of *hops* (gateway → auth → payments → fraud, gateway → checkout →
inventory/payments → postgres, ...). Each hop applies to the requests its mask selects.
Siblings under one parent run one after another; a parent lasts its own time plus its children's.

Requests are simulated in chunks of ``CHUNK`` so memory stays bounded at 10 M requests: every
request gets its root span (its duration and status need the whole tree), but only the requests
chosen to keep their children (``full_trace_limit``) get offsets, ids and attributes for the
child spans. Strings are built once at the end, by gathering small vocabularies with int codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import polars as pl

from connectors.demo.hops import ROOT_CHILDREN, SPECS, child_frame, root_frame
from connectors.demo.traffic import (
    ACCOUNT, CART, CHECKOUT, DEPLOY_MIN, PRODUCT, SEARCH, WINDOW_S, WINDOW_START, Traffic, hex_series, random_ids,
)
from model.encoding import held
from model.schemas import SPANS

CHUNK = 1 << 19  # requests simulated at once (fixed: the random stream depends on it)


@dataclass
class Draw:
    """One hop for one chunk of requests: who has it, its own time (0 where absent), its outcome."""

    mask: np.ndarray
    self_ms: np.ndarray
    error: np.ndarray
    propagates: np.ndarray | None = None  # failures the parent sees (None: every error); a retried attempt's isn't


def _lognormal(rng: np.random.Generator, median_ms: float, mask: np.ndarray, sigma: float = 0.45) -> np.ndarray:
    out = np.zeros(mask.size)
    out[mask] = rng.lognormal(np.log(median_ms), sigma, int(np.count_nonzero(mask)))
    return out


def _draws(rng: np.random.Generator, tr: Traffic) -> dict[str, Draw]:
    """Per-hop masks, own durations and errors for a chunk of requests (hop order as in ``SPECS``)."""
    n = tr.n
    none = np.zeros(n, dtype=bool)
    everyone = np.ones(n, dtype=bool)
    search, product, checkout, cart, account = (tr.route == r for r in (SEARCH, PRODUCT, CHECKOUT, CART, ACCOUNT))
    fraud_ms = _lognormal(rng, 35, tr.sca & ~tr.sca_slow)
    fraud_ms[tr.sca_slow] = rng.uniform(10_000, 11_200, int(np.count_nonzero(tr.sca_slow)))
    # a request whose inventory attempts fail sees each failure take the same time
    flaky = tr.inventory_attempts > 1
    failed_attempt_ms = np.zeros(n)
    failed_attempt_ms[flaky] = rng.uniform(250, 1000, int(np.count_nonzero(flaky)))
    draws = {
        "root": Draw(everyone, _lognormal(rng, 6, everyone), tr.background_error),
        "auth": Draw(everyone, _lognormal(rng, 12, everyone), none),
        "sca": Draw(tr.sca, _lognormal(rng, 4, tr.sca), none),
        "sca_fraud": Draw(tr.sca, fraud_ms, none),
        "search": Draw(search, _lognormal(rng, 80, search) + tr.decoy_extra_ms, tr.chronic_error),
        "rank": Draw(search, _lognormal(rng, 40, search), tr.chronic_error),
        "account": Draw(account, _lognormal(rng, 25, account), none),
        "account_db": Draw(account, _lognormal(rng, 3, account), none),
        "checkout": Draw(checkout, _lognormal(rng, 15, checkout), tr.pool_timeout | (checkout & tr.inventory_failed)),
        "cart": Draw(cart, _lognormal(rng, 10, cart), cart & tr.inventory_failed),
    }
    for parent, mask in (("root", product), ("checkout", checkout), ("cart", cart)):
        for attempt in range(3):
            present = mask & (tr.inventory_attempts > attempt)
            is_last = tr.inventory_attempts == attempt + 1
            failed = present & (~is_last | tr.inventory_failed)
            self_ms = _lognormal(rng, 18, present & ~failed)
            self_ms[failed] = failed_attempt_ms[failed]
            draws[f"inv_{parent}_{attempt}"] = Draw(present, self_ms, failed, present & is_last & tr.inventory_failed)
    ok_charge = checkout & ~tr.pool_timeout
    draws |= {
        "related": Draw(product, _lognormal(rng, 30, product), none),
        "charge": Draw(checkout, _lognormal(rng, 9, checkout), tr.pool_timeout),
        "acquire": Draw(checkout, np.where(checkout, tr.pool_wait_ms, 0.0), tr.pool_timeout),
        "ledger": Draw(ok_charge, _lognormal(rng, 6, ok_charge), none),
        "charge_fraud": Draw(ok_charge, _lognormal(rng, 35, ok_charge), none),
    }
    return draws


def _durations(draws: dict[str, Draw]) -> dict[str, np.ndarray]:
    """Bottom-up: a hop lasts its own time plus its children's (a child's requests are a subset of its parent's,
    and a hop's own time is 0 where it is absent, so absent children add nothing). Sums into ``self_ms``."""
    duration: dict[str, np.ndarray] = {}
    for spec in reversed(SPECS):  # every child is listed after its parent
        total = draws[spec.name].self_ms
        for child in spec.children:
            total += duration[child]
        duration[spec.name] = total
    return duration


def _offsets(draws: dict[str, Draw], duration: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Top-down start offsets (ms after the root's start) of every hop for the chunk's ``rows``."""
    offset: dict[str, np.ndarray] = {"root": np.zeros(rows.size)}
    for spec in SPECS:
        cursor = offset[spec.name] + 0.4  # ms of local work before the first outgoing call
        for child in spec.children:
            offset[child] = cursor
            cursor = cursor + np.where(draws[child].mask[rows], duration[child][rows] + 0.2, 0.0)
    return offset


def _root_outcome(draws: dict[str, Draw]) -> tuple[np.ndarray, np.ndarray]:
    """(error, http_status) of the root span: the first failing child decides the status."""
    root_error = np.zeros(draws["root"].mask.size, dtype=bool)
    root_status = np.full(root_error.size, 200, dtype=np.int32)
    for spec in ROOT_CHILDREN:
        d = draws[spec.name]
        failed = d.mask & (d.error if d.propagates is None else d.propagates)
        root_status[failed & ~root_error] = spec.http_status_error
        root_error |= failed
    background = draws["root"].error
    root_status[background & ~root_error] = 500
    return root_error | background, root_status


def _children(rng: np.random.Generator, tr: Traffic, draws: dict[str, Draw], duration: dict[str, np.ndarray],
              rows: np.ndarray, first: int, first_row: int) -> dict[str, np.ndarray]:
    """Child-span columns (numpy) for the chunk's kept ``rows``. ``first`` is the chunk's first request and
    ``first_row`` the spans-frame row of its first child span (roots take rows ``0..n-1``, by request)."""
    offset = _offsets(draws, duration, rows)
    deployed = (tr.t_s[rows] / 60.0 >= DEPLOY_MIN + 1.0).astype(np.int16)
    row_of: dict[str, np.ndarray] = {"root": first + rows}  # spans-frame row of each hop, per kept request
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("request", "hop", "offset_ms", "duration_ms", "error",
                                                         "span_id", "parent_row", "host", "version")}
    for code, spec in enumerate(SPECS):
        if spec.parent is None:
            continue
        at = np.flatnonzero(draws[spec.name].mask[rows])
        span_rows = np.zeros(rows.size, dtype=np.int64)
        span_rows[at] = np.arange(first_row, first_row + at.size)
        first_row += at.size
        row_of[spec.name] = span_rows
        host = np.zeros(at.size, dtype=np.int16)
        if spec.hosts:
            host += spec.host_code + rng.integers(0, spec.hosts, at.size, dtype=np.int16)
        version = np.full(at.size, spec.version_code, dtype=np.int16)
        if spec.versioned_by_deploy:
            version += deployed[at]
        out["request"].append(first + rows[at])
        out["hop"].append(np.full(at.size, code, dtype=np.int16))
        out["offset_ms"].append(offset[spec.name][at])
        out["duration_ms"].append(duration[spec.name][rows[at]])
        out["error"].append(draws[spec.name].error[rows[at]])
        out["span_id"].append(random_ids(rng, at.size, 8))
        out["parent_row"].append(row_of[spec.parent][at])
        out["host"].append(host)
        out["version"].append(version)
    return {k: np.concatenate(v) for k, v in out.items()}


def build_spans(rng: np.random.Generator, tr: Traffic, full_trace_limit: int) -> pl.DataFrame:
    """All spans of the demo; requests past ``full_trace_limit`` keep only their root span."""
    n = tr.n
    keep_children = np.zeros(n, dtype=bool)
    if full_trace_limit >= n:
        keep_children[:] = True
    elif full_trace_limit > 0:
        keep_children[rng.choice(n, size=full_trace_limit, replace=False, shuffle=False)] = True
    trace_ids = hex_series(random_ids(rng, n, 16))
    root_ids = hex_series(random_ids(rng, n, 8))
    root_duration = np.empty(n)
    root_error = np.empty(n, dtype=bool)
    root_status = np.empty(n, dtype=np.int32)
    parts: list[dict[str, np.ndarray]] = []
    next_row = n
    for first in range(0, n, CHUNK):
        last = min(first + CHUNK, n)
        chunk = tr.part(first, last)
        draws = _draws(rng, chunk)
        root_error[first:last], root_status[first:last] = _root_outcome(draws)
        duration = _durations(draws)
        root_duration[first:last] = duration["root"]
        rows = np.flatnonzero(keep_children[first:last])
        if rows.size:
            parts.append(_children(rng, chunk, draws, duration, rows, first, next_row))
            next_row += parts[-1]["hop"].size
        del draws, duration
    spans = root_frame(rng, tr, trace_ids, root_ids, root_duration, root_error, root_status)
    if parts:
        children = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        del parts
        # only spans that start in the window, as any backend answers a window query: the window's answer is
        # then this frame itself, not a copy of it (DemoConnector._fetch)
        child = (child_frame(rng, tr, trace_ids, root_ids, children).lazy()
                 .filter(pl.col("start") < WINDOW_START + timedelta(seconds=WINDOW_S))
                 .sort("start", maintain_order=True).collect())
        del children
        # in start order, as the loader holds every source's spans: roots come in request order, which is time
        # order, so only the children are sorted and the two merged (a sort of the whole holds two copies of it)
        spans = _merged_by_start(spans, child)
        del child
    return held(spans.pipe(_in_schema_order))


def _merged_by_start(roots: pl.DataFrame, children: pl.DataFrame) -> pl.DataFrame:
    """Two frames in start order as one (their columns united, a missing one null)."""
    schema = {**roots.schema, **children.schema}
    schema |= {c: roots.schema[c] for c in roots.columns if roots.schema[c] == pl.Categorical}  # codes where either has

    def aligned(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(pl.col(c).cast(dtype) if c in frame.columns else pl.lit(None, dtype=dtype).alias(c)
                            for c, dtype in schema.items())

    if not roots.get_column("start").is_sorted():
        roots = roots.sort("start", maintain_order=True)
    return aligned(roots).merge_sorted(aligned(children), key="start")


def _in_schema_order(frame: pl.DataFrame) -> pl.DataFrame:
    attr_cols = sorted(c for c in frame.columns if c.startswith("attr."))
    fixed = [pl.col(c) if frame.schema[c] == pl.Categorical else pl.col(c).cast(t) for c, t in SPANS.items()]
    return frame.select(fixed + [pl.col(c) for c in attr_cols])


__all__ = ["CHUNK", "build_spans"]
