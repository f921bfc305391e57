"""``python -m analysis cohort --sources``: the same cohort report on a ClickHouse source (counted in chdb behind
the HTTP front, through analysis.aggregates) and on a trace-file source as ``--input`` gives on the same spans."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis.aggregates import CohortAggregates, PolarsAggregates, investigate_aggregates
from analysis.cohort import investigate
from analysis.outcome import roots, with_outcome
from cli import main
from config import SloConfig, SourceConfig
from connectors.base import Query
from connectors.clickhouse import ClickHouseConnector
from connectors.registry import build_connector, load_config
from connectors.traces.files import spans_from_file
from model.semconv import resolve_roles
from tests.clickhouse_front import Front, start_front
from tests.cohort_data import STANDARD, make_requests
from tests.trace_payloads import spans_from_frame, write_trace_file

pytestmark = pytest.mark.skipif(importlib.util.find_spec("chdb") is None,
                                reason="chdb (requirements-dev.txt) is not installed")
USER, PASSWORD = "cli", "pa'ss"


class Setup:
    def __init__(self, folder: Path, trace_file: Path, spans: pl.DataFrame, front: Front) -> None:
        self.folder, self.trace_file, self.spans, self.front = folder, trace_file, spans, front

    def sources(self, source: dict[str, Any]) -> Path:
        first, last = self.spans["start"].min(), self.spans["start"].max()
        assert isinstance(first, datetime) and isinstance(last, datetime)
        window = {"start": first.isoformat(), "end": (last + timedelta(seconds=1)).isoformat()}
        path = self.folder / f"sources-{source['name']}.yaml"
        path.write_text(json.dumps({"window": window, "sources": [source]}), encoding="utf-8")  # JSON is YAML
        return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("ch_cli")
    requests = make_requests(
        3000, STANDARD, in_incident=lambda r: r["attr.region"] == "eu-west" and r["attr.client_version"] == "5.2.0",
        incident_effect="error", chronic=lambda r: r["attr.tenant"] == "acme",
    )
    (folder / "files").mkdir()
    trace_file = write_trace_file(folder / "files" / "trace.json", spans_from_frame(requests), "otlp")
    spans = spans_from_file(trace_file)
    front = start_front(folder / "data", USER, PASSWORD)
    try:
        front.create_traces("otel", "otel_traces", "current")
        front.load("otel", "otel_traces", spans, "current", folder)
        (folder / "secrets.toml").write_text(
            f'[connections.ch]\nusername = "{USER}"\npassword = "{PASSWORD}"\n', encoding="utf-8")
        yield Setup(folder, trace_file, spans, front)
    finally:
        front.stop()


def _without_over(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "computed_over"}


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["cohort", *args, "--slo-ms", "2000", "--json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


@pytest.mark.parametrize("given_start", [False, True])
def test_clickhouse_source_gives_the_same_report_as_the_file(setup: Setup, capsys: pytest.CaptureFixture[str],
                                                              given_start: bool) -> None:
    first = setup.spans["start"].min()
    assert isinstance(first, datetime)
    given = ["--incident-start", (first + timedelta(minutes=38)).isoformat()] if given_start else []
    want = _report(capsys, "--input", str(setup.trace_file), *given)
    source = {"name": "ch", "type": "clickhouse", "timeout_s": 60,
              "options": {"url": setup.front.url, "database": "otel", "table": "otel_traces"}}
    got = _report(capsys, "--sources", str(setup.sources(source)), "--source", "ch",
                  "--secrets", str(setup.folder / "secrets.toml"), *given)
    assert want["cohorts"], "the incident must be found for the comparison to mean anything"
    n_requests = roots(setup.spans).height
    assert got["computed_over"] == f"all {n_requests:,} requests in ClickHouse otel.otel_traces"
    assert _without_over(got) == _without_over(want)


def test_another_source_is_analysed_over_its_window_query(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    source = {"name": "files", "type": "trace_files", "options": {"path": str(setup.trace_file.parent)}}
    path = setup.sources(source)
    got = _report(capsys, "--sources", str(path))
    config = load_config(path)
    first, last = setup.spans["start"].min(), setup.spans["start"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    window = Query("w", "spans", first, last + timedelta(seconds=1), purpose="window")
    frame = build_connector(config.sources[0]).query([window])[0].frame
    assert frame is not None
    slo = SloConfig(default_ms=2000)
    requests = roots(with_outcome(frame, slo))
    want = investigate(requests, slo, resolve_roles(requests.columns), "bad").as_dict()
    assert got["computed_over"] == f"all {requests.height:,} requests from source 'files'"
    want["cohorts"] = [{k: v for k, v in c.items() if k != "description"} for c in want["cohorts"]]  # as --json
    assert want["cohorts"] and {k: v for k, v in got.items() if k != "computed_over"} == want


def test_polars_aggregates_give_what_investigate_gives(setup: Setup) -> None:
    slo = SloConfig(default_ms=2000)
    requests = roots(with_outcome(setup.spans, slo))
    roles = resolve_roles(requests.columns)
    want = investigate(requests, slo, roles, "bad").as_dict()
    counted = investigate_aggregates(PolarsAggregates(requests, "bad"))
    assert counted.investigation.as_dict() == want and counted.over == f"all {requests.height:,} requests"


def test_an_unknown_source_name_is_one_line_and_status_2(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    path = setup.sources({"name": "ch2", "type": "clickhouse", "options": {"url": setup.front.url}})
    assert main(["cohort", "--sources", str(path), "--source", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no source named 'nope'" in err and "ch2" in err


def test_a_cohorts_own_counts_are_the_same_in_both_engines(setup: Setup) -> None:
    """``within`` (the cohort's own requests, the start refinement's input), a missing value included."""
    source = SourceConfig("ch", "clickhouse", {"url": setup.front.url, "database": "otel", "table": "otel_traces"},
                          timeout_s=60.0, secrets={"username": USER, "password": PASSWORD})
    first, last = setup.spans["start"].min(), setup.spans["start"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    requests = roots(with_outcome(setup.spans, SloConfig(default_ms=2000)))
    region = next(c for c in requests.columns if c.endswith("region"))
    value = requests[region].drop_nulls()[0]
    engines: list[CohortAggregates] = [
        PolarsAggregates(requests),
        ClickHouseConnector(source).aggregates(first, last + timedelta(seconds=1), SloConfig(default_ms=2000))]
    sparse = next(c for c in requests.columns if c.startswith("attr.") and requests[c].null_count() > 0)
    for pairs in ([(region.removeprefix("attr."), value), ("service", requests["service"][0])],
                  [(sparse.removeprefix("attr."), "(missing)")], [(region.removeprefix("attr."), "no such value")]):
        got = [engine.within(pairs) for engine in engines]
        counts = [g.summary()[0] for g in got]
        assert counts[0] == counts[1], pairs
        series = [g.rate_series(60).select("bucket", "requests", "bad").sort("bucket") for g in got]
        assert series[0].to_dicts() == series[1].to_dicts(), pairs
    assert 0 < engines[0].within([(region.removeprefix("attr."), value)]).summary()[0] < requests.height
    missing = engines[0].within([(sparse.removeprefix("attr."), "(missing)")])
    assert missing.summary()[0] == requests[sparse].null_count()


def test_clickhouse_aggregates_implement_the_seam(setup: Setup) -> None:
    source = SourceConfig("ch", "clickhouse", {"url": setup.front.url, "database": "otel", "table": "otel_traces"},
                          timeout_s=60.0, secrets={"username": USER, "password": PASSWORD})
    first, last = setup.spans["start"].min(), setup.spans["start"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    seam: CohortAggregates = ClickHouseConnector(source).aggregates(first, last + timedelta(seconds=1))  # typed: mypy
    requests = roots(setup.spans)
    assert seam.summary() == (requests.height, requests["start"].min(), requests["start"].max())
    assert sorted(seam.columns()) == sorted(c for c in requests.columns if c.startswith("attr.")
                                            and requests[c].is_not_null().any())
