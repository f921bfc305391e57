"""Fuzz every payload parser in connectors/: random JSON-ish values, JSON text, bytes, SSE and exposition text.

The property: a parser returns or raises ``PayloadError`` (``ConfigError`` too where its source says
so). Anything else escaping is a bug: ``run_query`` would turn it into a ``ConnectorBug``.

Parsers are discovered, not listed: public functions of ``connectors/**/*.py`` named ``*_from_*`` (or in
``EXTRA_PARSERS``) whose first parameter takes ``str``/``bytes``. Extra required parameters are
filled by ``_fill`` (a ``MappingSet``, a timestamp, a file name, a second payload); a parser needing
something else is skipped with its name in the reason.

Profiles: ``faultline-fuzz-ci`` (200 examples per parser, the default) and ``faultline-fuzz-full``
(10,000 per parser) with ``FAULTLINE_FUZZ=full``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectors
from connectors.errors import ConfigError, PayloadError

settings.register_profile(
    "faultline-fuzz-ci", max_examples=200, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile(
    "faultline-fuzz-full", max_examples=10_000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FULL = os.environ.get("FAULTLINE_FUZZ") == "full"
PROFILE = settings.get_profile("faultline-fuzz-full" if FULL else "faultline-fuzz-ci")
pytestmark = [
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
    pytest.mark.timeout(3600 if FULL else 300),  # 10k examples of a slow parser outlast the default 300 s
]

EXTRA_PARSERS = {"sniff_format", "parse_json"}
# config / a tag pair / a path / a pool name plus already-parsed metrics
NOT_PARSERS = {"policy_from_options", "status_from_tags", "spans_from_file", "pool_row_from_metrics"}
TS = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Parser:
    module: str
    name: str
    fn: Callable[..., Any]
    fill: tuple[tuple[str, str], ...]  # (parameter, what to put there)
    shapes: frozenset[str]  # what the payload parameter accepts
    allows_config_error: bool

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


def _accepted(annotation: Any) -> frozenset[str]:
    """Top-level union members of an annotation string, as payload shapes: str, bytes, dict, list."""
    parts, depth, current = [], 0, ""
    for char in str(annotation):
        depth += char == "["
        depth -= char == "]"
        if char == "|" and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    shapes = set()
    for part in parts:
        if part in ("str", "bytes"):
            shapes.add(part)
        elif part.startswith(("dict", "Mapping")):
            shapes.add("dict")
        elif part.startswith(("list[dict", "Sequence[dict", "list[Mapping", "Sequence[Mapping")):
            shapes.add("list_of_dicts")  # already-parsed records: only dicts are in-contract
        elif part.startswith(("list", "Sequence")):
            shapes.add("list")
        elif part == "Any":
            shapes |= {"str", "bytes", "dict", "list"}
    return frozenset(shapes)


def _payload_like(annotation: Any) -> bool:
    return bool(_accepted(annotation) & {"str", "bytes"})


def _discover() -> tuple[list[Parser], list[str]]:
    parsers, skipped = [], []
    for info in sorted(pkgutil.walk_packages(connectors.__path__, "connectors."), key=lambda i: i.name):
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:  # a module mid-edit by another helper: report, don't crash collection
            skipped.append(f"{info.name}: import failed ({type(exc).__name__})")
            continue
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ != module.__name__ or name.startswith("_") or name in NOT_PARSERS:
                continue
            if "_from_" not in name and name not in EXTRA_PARSERS:
                continue
            params = list(inspect.signature(fn).parameters.values())
            if not params or not _payload_like(params[0].annotation):
                continue
            fill, missing = [], []
            for p in params[1:]:
                if p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                what = _fill_for(p)
                (fill.append((p.name, what)) if what else missing.append(p.name))
            if missing:
                skipped.append(f"{module.__name__}.{name}: cannot fill {missing}")
                continue
            source = inspect.getsource(fn)
            shapes = _accepted(params[0].annotation)
            parsers.append(Parser(module.__name__, name, fn, tuple(fill), shapes, "ConfigError" in source))
    return parsers, skipped


def _fill_for(param: inspect.Parameter) -> str | None:
    text = str(param.annotation)
    if "MappingSet" in text:
        return "mapping"
    if "datetime" in text:
        return "ts"
    if param.name in ("name", "filename"):
        return "filename"
    if param.name == "source" or text == "str":
        return "text"
    if _payload_like(text) or "dict" in text:
        return "payload"
    return None


PARSERS, SKIPPED = _discover()

# --- strategies -----------------------------------------------------------------------------------

VOCAB = [
    "data", "total", "errors", "traceID", "spanID", "traceId", "spanId", "parentSpanId", "parentId", "operationName",
    "references", "refType", "startTime", "duration", "tags", "logs", "processID", "processes", "serviceName",
    "key", "type", "value", "resourceSpans", "scopeSpans", "instrumentationLibrarySpans", "spans", "resource",
    "attributes", "stringValue", "intValue", "boolValue", "doubleValue", "arrayValue", "kvlistValue", "values",
    "startTimeUnixNano", "endTimeUnixNano", "kind", "status", "code", "name", "id", "timestamp", "localEndpoint",
    "remoteEndpoint", "batches", "result", "trace", "traces", "resultType", "metric", "__name__", "circuitBreakers",
    "circuitBreakerEvents", "state", "failureRate", "slowCallRate", "bufferedCalls", "notPermittedCalls",
    "creationTime", "stateTransition", "circuitBreakerName", "cluster_statuses", "host_statuses", "stats",
    "circuit_breakers", "thresholds", "health_status", "isCircuitBreakerOpen", "errorPercentage", "requestCount",
    "currentTime", "reportingHosts", "group", "currentActiveCount", "currentQueueSize", "pool", "instance",
]
ODD_STRINGS = [
    "", "0", "-1", "NaN", "+Inf", "-Inf", "1e309", "abc", "ffffffffffffffffffffffffffffffff",
    "00000000000000000000000000000000", "W47/95gDgQPSabYzgT/HAA==", "2024-01-15T10:30:45.123+01:00[Europe/Berlin]",
    "2026-13-45T99:99:99Z", "50.0%", "-1.0%",
    "CLOSED", "OPEN", "HALF_OPEN", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR", "CHILD_OF", "string", "int64", "float64",
    "bool", "binary", "HystrixCommand", "HystrixThreadPool", "\x00", "日本", "\u2028",
    "18446744073709551616", "9223372036854775808", "true", "null",
]
scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | st.sampled_from(ODD_STRINGS)
)
keys = st.sampled_from(VOCAB) | st.text(max_size=6)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6), max_leaves=40
)
exposition_lines = st.lists(
    st.builds(
        lambda name, labels, value, ts: f"{name}{labels} {value}{ts}",
        st.sampled_from(["up", "hikaricp_connections_active", "resilience4j_circuitbreaker_state", "a:b", "9bad", ""]),
        st.sampled_from(["", "{}", '{pool="p1"}', '{state="open",name="x"}', '{bad', '{a="\\"q\\""}', '{a="x",}']),
        st.sampled_from(["1", "0.5", "NaN", "+Inf", "-Inf", "x", "1e400", ""]) | st.floats().map(str),
        st.sampled_from(["", " 1700000000000", " -1", " x"]),
    )
    | st.sampled_from(["# HELP up help", "# TYPE up gauge", "# TYPE x histogram", "# EOF", ""]),
    max_size=8,
).map("\n".join)


def _dump(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


TEXTS = [
    values.map(_dump),
    values.map(lambda v: f"data: {_dump(v)}\n\n:ping\n\n"),  # SSE
    st.lists(values, max_size=3).map(lambda vs: "\n".join(_dump(v) for v in vs)),  # JSON lines
    exposition_lines,
    st.text(max_size=300),
]
BY_SHAPE = {
    "str": st.one_of(*TEXTS),
    "bytes": st.one_of(*(t.map(lambda x: x.encode("utf-8", "surrogatepass")) for t in TEXTS), st.binary(max_size=300)),
    "dict": st.dictionaries(keys, values, max_size=8),
    "list": st.lists(values, max_size=6),
    "list_of_dicts": st.lists(st.dictionaries(keys, values, max_size=8), max_size=6),
}
payloads = st.one_of(*BY_SHAPE.values())


def payloads_for(shapes: frozenset[str]) -> st.SearchStrategy[Any]:
    return st.one_of(*(BY_SHAPE[shape] for shape in sorted(shapes)))


@functools.cache
def _mapping() -> Any:
    from connectors.metrics.prometheus_mapping import load_mappings

    return load_mappings([])


def _fill(parser: Parser, data: st.DataObject) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for param, what in parser.fill:
        if what == "mapping":
            kwargs[param] = _mapping()
        elif what == "ts":
            kwargs[param] = TS
        elif what == "filename":
            kwargs[param] = data.draw(st.sampled_from(["t.json", "t.jsonl", "t.json.gz", "t.txt", "t"]))
        elif what == "text":
            kwargs[param] = "fuzz"
        else:
            kwargs[param] = data.draw(payloads)  # a second payload (e.g. Envoy stats): any shape
    return kwargs


def test_parsers_were_discovered() -> None:
    names = {p.name for p in PARSERS}
    assert {"parse_json"} <= names, SKIPPED
    names_list = ", ".join(sorted(map(str, PARSERS)))
    print(f"\nfuzzing {len(PARSERS)} parsers with {PROFILE.max_examples} examples each: {names_list}")
    if SKIPPED:
        print("skipped: " + "; ".join(SKIPPED))


def _check(parser: Parser, payload: Any, kwargs: dict[str, Any]) -> None:
    try:
        parser.fn(payload, **kwargs)
    except PayloadError:
        pass
    except ConfigError:
        if not parser.allows_config_error:
            raise


@pytest.mark.parametrize("parser", PARSERS, ids=str)
@settings(PROFILE)
@given(data=st.data())
def test_parser_raises_only_payload_errors(parser: Parser, data: st.DataObject) -> None:
    payload = data.draw(payloads_for(parser.shapes), label="payload")
    _check(parser, payload, _fill(parser, data))


DEEP = "[" * 100_000 + "]" * 100_000
EDGE_CASES = {
    "deeply nested": DEEP,
    "empty": "",
    "BOM + JSON": "\ufeff{}",
    "NaN literal": '{"data": NaN}',
    "huge integer": '{"data": [' + "9" * 5000 + "]",
    "lone surrogate escape": '{"data": "\\ud800"}',
    "json null": "null",
    "json array of nulls": "[null, null]",
}


@pytest.mark.parametrize("parser", PARSERS, ids=str)
@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_parser_edge_cases(parser: Parser, case: str) -> None:
    text = EDGE_CASES[case]
    payload = text if "str" in parser.shapes else text.encode("utf-8")
    _check(parser, payload, _fixed_fill(parser))
    if "bytes" in parser.shapes:
        _check(parser, b"\xff\xfe\x00" + text.encode("utf-8")[:100], _fixed_fill(parser))


WRONG_TYPES = (True, 1.5, "x", None, [None], {"": None})


@pytest.mark.parametrize("parser", PARSERS, ids=str)
def test_every_known_field_with_a_wrong_type(parser: Parser) -> None:
    """Deterministic: each format key of VOCAB set to each wrong-typed value, top level and one level down."""
    for key in VOCAB:
        for value in WRONG_TYPES:
            for doc in ({key: value}, {"data": [{key: value}]}, {"resourceSpans": [{key: value}]}, [{key: value}]):
                text = json.dumps(doc)
                payload = text if "str" in parser.shapes else text.encode()
                try:
                    _check(parser, payload, _fixed_fill(parser))
                except Exception as exc:
                    raise AssertionError(f"{parser}({payload!r}) raised {type(exc).__name__}: {exc}") from exc


def _fixed_fill(parser: Parser) -> dict[str, Any]:
    """Extra arguments for the edge cases (no hypothesis data object there)."""
    fixed: dict[str, Any] = {}
    for param, what in parser.fill:
        if what == "mapping":
            fixed[param] = _mapping()
        else:
            fixed[param] = {"ts": TS, "filename": "t.json", "text": "fuzz", "payload": "{}"}[what]
    return fixed
