"""``python -m analysis cohort`` on generated OTLP, OTLP JSON-lines, Jaeger and Zipkin files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main
from tests.cohort_data import REPO_ROOT, STANDARD, make_requests
from tests.trace_payloads import spans_from_frame, write_trace_file

FORMATS = ("otlp", "otlp-lines", "jaeger", "zipkin")


@pytest.fixture(scope="module")
def trace_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    requests = make_requests(
        4000, STANDARD,
        in_incident=lambda r: r["attr.region"] == "eu-west" and r["attr.client_version"] == "5.2.0",
        incident_effect="slow",
        chronic=lambda r: r["attr.tenant"] == "acme",
        decoy=lambda r: r["attr.platform"] == "android",
    )
    specs = spans_from_frame(requests)
    folder = tmp_path_factory.mktemp("traces")
    return {fmt: write_trace_file(folder / f"trace.{fmt}.json", specs, fmt) for fmt in FORMATS}


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["cohort", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_json_report_per_format(fmt: str, trace_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    report = _run_json(capsys, "--input", str(trace_files[fmt]), "--slo-ms", "1000", "--outcome", "slow")
    assert report["outcome"] == "slow" and report["start_detected"] is True
    assert str(report["incident_start"]).startswith("2026-11-27T10:")
    cohorts = report["cohorts"]
    assert isinstance(cohorts, list) and cohorts
    top = cohorts[0]
    assert top["cohort"] == {"region": "eu-west", "client_version": "5.2.0"}  # keys as in the source
    assert set(top) == {"cohort", "bad", "total", "precision", "coverage", "lift", "p_value"}
    assert 0 < top["bad"] <= top["total"] and top["precision"] == pytest.approx(top["bad"] / top["total"], abs=1e-5)
    assert top["coverage"] > 0.7 and top["lift"] > 5 and top["p_value"] < 1e-6
    assert not any("tenant" in c["cohort"] or "user_id" in c["cohort"] for c in cohorts)


def test_explicit_format_incident_start_and_top(
    trace_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    report = _run_json(
        capsys, "--input", str(trace_files["jaeger"]), "--format", "jaeger", "--slo-ms", "1000",
        "--incident-start", "2026-11-27T10:40:00Z", "--top", "1",
    )
    assert report["start_detected"] is False
    assert report["incident_start"] == "2026-11-27T10:40:00+00:00"
    assert len(report["cohorts"]) == 1  # type: ignore[arg-type]
    errors = _run_json(capsys, "--input", str(trace_files["zipkin"]), "--slo-ms", "1000", "--outcome", "error",
                       "--incident-start", "2026-11-27T10:40:00Z")
    assert errors["cohorts"] == []  # the incident is slow 200 OK, not errors


def test_readable_table(trace_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cohort", "--input", str(trace_files["otlp"]), "--slo-ms", "1000"]) == 0
    out = capsys.readouterr().out
    assert "incident start:" in out and "client_version=5.2.0 AND region=eu-west" in out
    assert "explains" in out and "of the excess bad requests" in out and "users (excess) affected: " in out


def test_table_and_json_say_why_users_are_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    anonymous = make_requests(2000, STANDARD, user_ids=False,
                              in_incident=lambda r: r["attr.region"] == "eu-west", incident_effect="slow")
    path = write_trace_file(tmp_path / "anonymous.json", spans_from_frame(anonymous), "otlp")
    report = _run_json(capsys, "--input", str(path), "--slo-ms", "1000")
    radius = report["blast_radius"]
    assert isinstance(radius, dict) and radius["users_affected"] is None and radius["excess_users"] is None
    assert "no user attribute in the data" in radius["unknown"]["user"]
    assert radius["tenants_affected"] is not None and radius["bad"] > 0
    assert main(["cohort", "--input", str(path), "--slo-ms", "1000"]) == 0
    assert "users (excess) affected: unknown, no user attribute in the data" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "args", "needle"),
    [
        (None, [], "cannot read"),
        ("good", ["--format", "protobuf"], "unknown trace format"),
        ("{\"resourceSpans\": [", [], "not JSON"),
        ("[1, 2, 3]", [], "PayloadError"),
        ("good", ["--incident-start", "yesterday"], "ISO 8601"),
        ("good", ["--outcome", "sad"], "--outcome"),
        ("good", ["--slo-ms", "-5"], "--slo-ms"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    make: str | None, args: list[str], needle: str, trace_files: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if make is None:
        path = tmp_path / "missing.json"
    elif make == "good":
        path = trace_files["otlp"]
    else:
        path = tmp_path / "bad.json"
        path.write_text(make)
    assert main(["cohort", "--input", str(path), *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in captured.err
    assert captured.out == ""


def test_module_entry_point(trace_files: dict[str, Path], tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "analysis", "cohort", "--input", str(trace_files["zipkin"]),
         "--slo-ms", "1000", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["cohorts"][0]["cohort"] == {"region": "eu-west", "client_version": "5.2.0"}
    bad = subprocess.run(
        [sys.executable, "-m", "analysis", "cohort", "--input", str(tmp_path / "nope.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
