"""Generations: the token that names one version of the data, and the frames' generations.

Every frame :mod:`ui.frames` hands out belongs to a :class:`Generation` (which sources, which window,
which config, which reload, which answer of each source). A new answer always gets a new token, even
for the same query, so derived caches keyed by generation (here :func:`memo`) can never serve one
answer's results for another, as a cache keyed by ``id(frame)`` does once CPython reuses a freed id.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import polars as pl
import streamlit as st

T = TypeVar("T")
_adhoc = itertools.count(time.monotonic_ns())  # from the clock: a module reload never reuses one


@dataclass(frozen=True)
class Generation:
    """One version of the data. ``parts`` say where it came from; equal parts mean the same data."""

    parts: tuple[Hashable, ...]

    def derive(self, *more: Hashable) -> Generation:
        """The generation of data computed from this one (``more`` names the computation and its inputs)."""
        return Generation((*self.parts, *more))

    @property
    def token(self) -> str:
        """A cache key: the parts are plain values (str, int, datetime, None, tuples), so repr is exact."""
        return repr(self.parts)


def adhoc_generation() -> Generation:
    """A generation of its own, for data nothing else names (never equal to another)."""
    return Generation(("adhoc", next(_adhoc)))


class _Issued:
    """The generation of each frame ui.frames handed out, for as long as the frame lives.

    The registry holds its frames weakly: a frame lives as long as a cache or a caller keeps it (a
    filtered copy of the spans is most of the spans' size at a million requests, so holding the last
    hundred of them here held gigabytes). The lookup goes through ``id()`` but is exact: a frame's
    entry goes when the frame is freed, before CPython can reuse its id, and ``is`` confirms the match.
    A frame never handed out has no generation, and :func:`memo` computes over it without caching.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a frame freed by the cycle collector inside a locked section forgets itself
        self._items: dict[int, tuple[weakref.ref[pl.DataFrame], Generation]] = {}

    def put(self, frame: pl.DataFrame, generation: Generation) -> pl.DataFrame:
        key = id(frame)

        def forget(ref: weakref.ref[pl.DataFrame]) -> None:
            with self._lock:
                if (entry := self._items.get(key)) is not None and entry[0] is ref:
                    del self._items[key]

        with self._lock:
            self._items[key] = (weakref.ref(frame, forget), generation)
        return frame

    def get(self, frame: pl.DataFrame) -> Generation | None:
        with self._lock:
            entry = self._items.get(id(frame))
        return entry[1] if entry is not None and entry[0]() is frame else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


ISSUED = _Issued()


def generation_of(frame: pl.DataFrame) -> Generation | None:
    """The generation of a frame from this module (None for any other frame)."""
    return ISSUED.get(frame)


def derived(frame: pl.DataFrame, *step: Hashable) -> Generation:
    """The generation of what ``step`` computes from ``frame`` (a fresh one if the frame has none)."""
    return (generation_of(frame) or adhoc_generation()).derive(*step)


# Results are small aggregates (tables a page draws), so many fit; the frames they came from are not kept.
@st.cache_resource(show_spinner=False, max_entries=512)
def _memo(fn_name: str, token: str, key: tuple[Any, ...], _call: Callable[[], Any]) -> Any:
    return _call()


def _key_part(value: Any) -> tuple[bool, Any]:
    """(cacheable, the value's part of the key): a frame stands for its generation's token."""
    if isinstance(value, pl.DataFrame):
        generation = generation_of(value)
        return generation is not None, ("frame", generation.token if generation is not None else None)
    return True, value


def memo(fn: Callable[..., T], frame: pl.DataFrame, *args: Any, **kwargs: Any) -> T:
    """``fn(frame, *args, **kwargs)`` computed once per (function, generation of the frame, arguments).

    For pure analysis over the frames this module hands out. Frames among ``args``/``kwargs`` count
    by their generation too; when any frame has none (it was never handed out, or fell out),
    ``fn`` is computed over directly, uncached, because nothing says which data it holds.
    """
    generation = generation_of(frame)
    named = sorted(kwargs.items())
    parts = [_key_part(a) for a in args] + [_key_part(v) for _, v in named]
    if generation is None or not all(ok for ok, _ in parts):
        return fn(frame, *args, **kwargs)
    key = (*(part for _, part in parts), *(name for name, _ in named))
    name = f"{fn.__module__}.{fn.__qualname__}"
    result: T = _memo(name, generation.token, key, lambda: fn(frame, *args, **kwargs))
    if isinstance(result, pl.DataFrame) and generation_of(result) is None:  # it can feed the next memo
        ISSUED.put(result, generation.derive(name, key))
    return result


def issue_derived(frame: pl.DataFrame, parent: pl.DataFrame, *step: Hashable) -> pl.DataFrame:
    """Register ``frame`` as what ``step`` computed from ``parent``, so :func:`memo` caches over it.

    ``step`` must name the computation and every input besides ``parent`` (e.g. ``"clip", repr(flt)``);
    a parent without a generation leaves the frame without one (computed over, uncached).
    """
    generation = generation_of(parent)
    if generation is None or frame is parent:  # an unchanged frame keeps its own generation
        return frame
    return ISSUED.put(frame, generation.derive(*step))
