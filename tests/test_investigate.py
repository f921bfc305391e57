"""The app and the command line give the same answer on the same trace file (one path: analysis.cohort.investigate)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from analysis.cohort import cohort_label
from cli import main
from tests.cohort_data import REPO_ROOT, T0, make_requests
from tests.conftest import app_test, run_until_drawn
from tests.trace_payloads import spans_from_frame, write_trace_file

N_REQUESTS = 900  # under the app's per-query trace limit, so both see every request
ATTRIBUTES = {
    "cloud.region": ["eu-west", "us-east"],
    "app.client.version": ["5.1.0", "5.2.0"],
    "platform": ["ios", "android", "web"],
    "org.id": ["acme", "globex", "initech"],
}


@pytest.fixture()
def traced_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A trace file with a known incident, and a sources.yaml reading it (tenant role configured)."""
    requests = make_requests(
        N_REQUESTS, ATTRIBUTES, user_ids=False, incident_prob=0.9,
        in_incident=lambda r: r["attr.cloud.region"] == "eu-west" and r["attr.app.client.version"] == "5.2.0",
    )
    spans = spans_from_frame(requests)
    for i, span in enumerate(spans):
        span.attrs["enduser.id"] = f"u{i % 300}"
        span.attrs["region"] = span.attrs["cloud.region"]  # an alias duplicate, as converters used to add
    folder = tmp_path / "traces"
    folder.mkdir()
    trace_file = write_trace_file(folder / "incident.json", spans, "otlp")
    config = tmp_path / "sources.yaml"
    config.write_text(
        "slo: {default_ms: 1000}\n"
        f"window: {{start: {T0.isoformat()}, end: {(T0 + timedelta(minutes=61)).isoformat()}}}\n"
        "attributes: {tenant: org.id}\n"
        f"sources:\n  - {{name: files, type: trace_files, options: {{path: '{folder}'}}}}\n"
    )
    monkeypatch.setenv("FAULTLINE_SOURCES", str(config))
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.chdir(REPO_ROOT)
    return trace_file


def test_cli_json_and_the_app_agree(traced_app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cohort", "--input", str(traced_app), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cohorts = report["cohorts"]
    assert cohorts, "the generated incident should be found"
    top = cohorts[0]
    assert top["cohort"] == {"cloud.region": "eu-west", "app.client.version": "5.2.0"}
    radius = report["blast_radius"]
    assert report["attributes"]["tenant"] == "org.id" and radius["excess_users"] is not None

    at = run_until_drawn(app_test())
    assert not at.exception, [e.value for e in at.exception]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Bad requests (excess)"] == f"{radius['excess_bad']:,.0f}"
    assert shown["Users affected"] == f"{radius['excess_users']:,.0f}"
    assert shown["Tenants affected"] == f"{len(radius['tenants_affected']):,}"
    assert shown["Regions affected"] == str(len(radius["regions_affected"]))
    label = cohort_label(top["cohort"].items())
    assert any(md.value == f"### `{label}`" for md in at.markdown), [md.value for md in at.markdown]
    explains = f"explains {top['coverage']:.0%} of the excess bad requests".replace("%", " %")
    assert any(md.value.startswith(explains) for md in at.markdown)

    at.switch_page("views/cohorts.py").run()
    assert not at.exception
    listed = [md.value for md in at.markdown if " — explains " in md.value]
    assert len(listed) == min(5, len(cohorts))
    for line, cohort in zip(listed, cohorts, strict=True):
        assert all(f"{k} = {v}" in line for k, v in cohort["cohort"].items()), line
        assert f"explains {cohort['coverage']:.0%}".replace("%", " %") in line
