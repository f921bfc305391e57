"""One contract suite for every connector (after Jaeger's shared StorageIntegration), reusable by any helper.

A :class:`ContractCase` says how to open a connector wired for a *scenario* and what to query;
the checks below run it and assert the contract of ``connectors.base``:

==============  =====================================================================
data            schema conformance (``model.validate``), at least ``min_rows`` rows
empty           an empty frame with the full schema, no error
http_500        ``SourceUnavailable`` (a ``DownstreamError``) in ``Result.error``, no frame
timeout         ``SourceTimeout`` in ``Result.error``, long before the silent source would have answered
malformed       truncated JSON -> ``PayloadError``
wrong_shape     valid JSON of the wrong shape -> ``PayloadError``
siblings        a bad query next to a good one: nothing raises, the good one still answers
health          ``check_health`` never raises: ok when serving, down/degraded when failing
==============  =====================================================================

Usage in another test file (HTTP connectors get :func:`http_case`, which runs a ReplayServer)::

    from tests.contract import contract_params, http_case
    CASES = [http_case("prometheus", "breakers", build=build, type_name="prometheus",
                       data=lambda s: s.route("/api/v1/query_range", body), empty=..., query=lambda: Query(...))]

    @pytest.mark.parametrize(("case", "check"), contract_params(CASES))
    def test_contract(case, check):
        check(case)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from config import SourceConfig
from connectors.base import Connector, Query, Result
from connectors.errors import (
    ConnectorBug,
    ConnectorError,
    DownstreamError,
    PayloadError,
    SourceTimeout,
    SourceUnavailable,
)
from model.schemas import SCHEMAS
from model.validate import validate
from tests.replay_server import ReplayServer

SCENARIOS = ("data", "empty", "http_500", "timeout", "malformed", "wrong_shape")
_names = itertools.count(1)


@dataclass(frozen=True)
class ContractCase:
    """``open(scenario)`` yields a connector whose source behaves as ``scenario`` says."""

    id: str
    kind: str
    open: Callable[[str], AbstractContextManager[Connector]]
    query: Callable[[], Query]
    min_rows: int = 1
    skip: Mapping[str, str] = field(default_factory=dict)  # scenario -> why it does not apply
    timeout_hang_s: float = 60.0  # the timeout scenario's source stays silent this long (>= 10x its timeout)


def http_case(
    id: str,
    kind: str,
    *,
    build: Callable[[SourceConfig], Connector],
    type_name: str,
    data: Callable[[ReplayServer], Any],
    empty: Callable[[ReplayServer], Any],
    query: Callable[[], Query],
    options: Mapping[str, Any] | None = None,
    warm: Callable[[Connector], Any] | None = None,
    wrong_shape_body: bytes = b'[{"unexpected": true}]',
    min_rows: int = 1,
    timeout_s: float = 0.5,
    patient_timeout_s: float = 15.0,
    skip: Mapping[str, str] | None = None,
) -> ContractCase:
    """A case for an HTTP connector: ``data``/``empty`` register routes on a fresh ReplayServer.

    ``warm`` runs against the healthy server before a failure scenario is switched on (e.g. to
    let a connector detect and cache its API version, so the failure hits the data endpoint).
    Each opening uses a unique source name, so process-wide breakers never leak between checks.
    ``timeout_s`` is the source timeout in the timeout scenario only; the others get
    ``patient_timeout_s`` so a loaded CI machine cannot turn them into false timeouts.
    """

    @contextmanager
    def open_(scenario: str) -> Iterator[Connector]:
        with ReplayServer() as server:
            (empty if scenario == "empty" else data)(server)
            source = SourceConfig(name=f"{id}-{scenario}-{next(_names)}", type=type_name,
                                  options={**(options or {}), "url": server.url},
                                  timeout_s=timeout_s if scenario == "timeout" else patient_timeout_s)
            connector = build(source)
            if warm is not None and scenario not in ("data", "empty"):
                warm(connector)
            if scenario == "http_500":
                server.fail_with(500)
            elif scenario == "timeout":
                server.stall(hang_s)
            elif scenario == "malformed":
                server.malformed()
            elif scenario == "wrong_shape":
                server.malformed(wrong_shape_body)
            yield connector

    # Released early when the case closes, so a long hang costs nothing; 100x the timeout cannot flake.
    hang_s = timeout_s * 100
    return ContractCase(id, kind, open_, query, min_rows, dict(skip or {}), timeout_hang_s=hang_s)


def _one(case: ContractCase, scenario: str) -> tuple[Result, float]:
    query = case.query()
    with case.open(scenario) as connector:
        started = time.perf_counter()
        results = connector.query([query])
        elapsed = time.perf_counter() - started
    assert isinstance(results, list) and len(results) == 1, f"{case.id}: query() must return one Result per Query"
    result = results[0]
    assert result.ref_id == query.ref_id and result.kind == query.kind
    return result, elapsed


def _no_frame_error(result: Result, expected: type[ConnectorError], case: ContractCase) -> ConnectorError:
    assert result.frame is None, f"{case.id}: a failed query must not carry a frame"
    assert isinstance(result.error, expected), f"{case.id}: expected {expected.__name__}, got {result.error!r}"
    assert not isinstance(result.error, ConnectorBug)
    line = result.error.describe()
    assert result.error.source and "\n" not in line and "Traceback" not in line
    return result.error


def check_data(case: ContractCase) -> None:
    result, _ = _one(case, "data")
    assert result.error is None, f"{case.id}: {result.error and result.error.describe()}"
    assert result.frame is not None
    validate(result.frame, case.kind)
    assert result.frame.height >= case.min_rows, f"{case.id}: expected at least {case.min_rows} rows"
    assert result.executed_query, f"{case.id}: executed_query should say what ran"


def check_empty(case: ContractCase) -> None:
    result, _ = _one(case, "empty")
    assert result.error is None, f"{case.id}: not-found is an empty frame, not {result.error!r}"
    assert result.frame is not None and result.frame.height == 0
    validate(result.frame, case.kind)
    for name, dtype in SCHEMAS[case.kind].items():
        assert result.frame.schema[name] == dtype


def check_http_500(case: ContractCase) -> None:
    result, _ = _one(case, "http_500")
    error = _no_frame_error(result, SourceUnavailable, case)
    assert isinstance(error, DownstreamError)


def check_timeout(case: ContractCase) -> None:
    result, elapsed = _one(case, "timeout")
    _no_frame_error(result, SourceTimeout, case)
    hang_s = case.timeout_hang_s
    assert elapsed < hang_s, f"{case.id}: waited out the {hang_s:.0f} s hang instead of timing out"


def check_malformed(case: ContractCase) -> None:
    result, _ = _one(case, "malformed")
    _no_frame_error(result, PayloadError, case)


def check_wrong_shape(case: ContractCase) -> None:
    result, _ = _one(case, "wrong_shape")
    _no_frame_error(result, PayloadError, case)


def check_siblings(case: ContractCase) -> None:
    good = case.query()
    bad_kind = Query("bad-kind", "no-such-kind", good.start, good.end, {})
    junk = Query("junk", good.kind, good.start, good.end, {"limit": "many", "tags": 7, "\x00": object()})
    with case.open("data") as connector:
        results = connector.query([bad_kind, good, junk])
    assert [r.ref_id for r in results] == ["bad-kind", good.ref_id, "junk"]
    assert isinstance(results[0].error, ConnectorError) and results[0].frame is None
    assert results[1].ok, f"{case.id}: a failing sibling broke a good query: {results[1].error!r}"
    assert results[2].error is None or isinstance(results[2].error, ConnectorError)
    assert case.kind in connector.capabilities


def check_health(case: ContractCase) -> None:
    with case.open("data") as connector:
        healthy = connector.check_health()
    assert healthy.status == "ok", f"{case.id}: {healthy.message}"
    for scenario in ("http_500", "timeout", "malformed"):
        if scenario in case.skip:
            continue
        with case.open(scenario) as connector:
            health = connector.check_health()
        assert health.status in ("down", "degraded"), f"{case.id} {scenario}: {health}"
        assert health.message


CHECKS: dict[str, tuple[Callable[[ContractCase], None], str]] = {
    "data": (check_data, "data"), "empty": (check_empty, "empty"), "http_500": (check_http_500, "http_500"),
    "timeout": (check_timeout, "timeout"), "malformed": (check_malformed, "malformed"),
    "wrong_shape": (check_wrong_shape, "wrong_shape"), "siblings": (check_siblings, "data"),
    "health": (check_health, "data"),
}
CONTRACT_CHECKS = tuple(fn for fn, _ in CHECKS.values())


def contract_params(cases: list[ContractCase]) -> list[Any]:
    """``pytest.param(case, check)`` for every case x check, skipped (with the reason) where it does not apply."""
    params = []
    for case in cases:
        for name, (check, scenario) in CHECKS.items():
            marks = [pytest.mark.skip(reason=case.skip[scenario])] if scenario in case.skip else []
            params.append(pytest.param(case, check, id=f"{case.id}-{name}", marks=marks))
    return params
