"""Structure-aware fuzzing of the span converters: real skeletons with random values in every field.

Generic JSON fuzzing (tests/test_fuzz_parsers.py) rarely reaches past the top-level shape checks;
here every field of a valid OTLP / Jaeger / Zipkin span is replaced by arbitrary JSON. The property:
a converter returns a frame that passes ``model.validate`` or raises ``PayloadError``; nothing else.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.errors import PayloadError
from connectors.traces.convert_jaeger import spans_from_jaeger
from connectors.traces.convert_otlp import spans_from_otlp
from connectors.traces.convert_zipkin import spans_from_zipkin
from model.validate import validate
from tests.trace_wire import jaeger_envelope, otlp_doc, sample_spans, zipkin_traces

SPANS = sample_spans(n_traces=1, spans_per_trace=2)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def _check(convert: Any, skeleton: Any, data: st.DataObject) -> None:
    paths = _paths(skeleton)
    doc = skeleton
    for _ in range(data.draw(st.integers(1, 3))):
        doc = _replace(doc, data.draw(st.sampled_from(paths)), data.draw(JSON))
        paths = [p for p in _paths(doc)] or paths
    try:
        frame = convert(doc)
    except PayloadError:
        return
    validate(frame, "spans")


@FUZZ
@given(st.data())
def test_otlp_fields_fuzzed(data: st.DataObject) -> None:
    _check(spans_from_otlp, otlp_doc(SPANS), data)


@FUZZ
@given(st.data())
def test_jaeger_fields_fuzzed(data: st.DataObject) -> None:
    _check(spans_from_jaeger, jaeger_envelope(SPANS), data)


@FUZZ
@given(st.data())
def test_zipkin_fields_fuzzed(data: st.DataObject) -> None:
    _check(spans_from_zipkin, zipkin_traces(SPANS), data)
