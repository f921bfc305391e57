"""Create a snapshot from the Overview, then open its link after the backend is gone: same figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from snapshots.store import SnapshotStore

REPO = Path(__file__).resolve().parent.parent
LIVE = "sources:\n  - {name: demo, type: demo, options: {seed: 11, requests: 20000, full_trace_limit: 20000}}\n"
GONE = "sources:\n  - {name: zipkin, type: zipkin, timeout_s: 1, options: {url: 'http://127.0.0.1:9'}}\n"


def _app() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.secrets["faultline"] = {"snapshot_redaction_key": "k"}
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_snapshot_reopens_with_the_same_figures_after_the_backend_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "live.yaml").write_text(LIVE)
    (tmp_path / "gone.yaml").write_text(GONE)
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("FAULTLINE_SOURCES", str(tmp_path / "live.yaml"))
    monkeypatch.chdir(REPO)

    live = _app()
    live.query_params["from"] = "2026-03-14T02:30:00+00:00"
    live.query_params["to"] = "2026-03-14T02:50:00+00:00"
    live.query_params["cohort"] = ["platform=ios"]
    live.run()
    assert not live.exception
    shown = _metrics(live)
    assert shown["Bad requests (excess)"] != "0"
    live.text_input(key="snapshot_title_overview").input("eu-west ios slowness")
    live.text_area(key="snapshot_notes_overview").input("payments→fraud; <script>alert(1)</script>")
    submit = [b for b in live.button if b.label == "Save snapshot"]
    assert submit, "the Overview offers a Snapshot form"
    submit[0].click().run()
    assert not live.exception
    snapshot_id = live.session_state["snapshot_last_overview"]
    assert len(snapshot_id) == 32
    # a second click (a retry, a rerun) makes no second snapshot
    [b for b in live.button if b.label == "Save snapshot"][0].click().run()
    assert live.session_state["snapshot_last_overview"] == snapshot_id
    assert [info.id for info in SnapshotStore(tmp_path / "store").list()] == [snapshot_id]

    monkeypatch.setenv("FAULTLINE_SOURCES", str(tmp_path / "gone.yaml"))  # retention expired, backend gone
    later = _app()
    later.query_params["snapshot"] = snapshot_id
    later.run()
    assert not later.exception
    assert any("Read-only snapshot" in i.value for i in later.info), [e.value for e in later.error]
    assert _metrics(later) == shown
    assert later.session_state["flt_cohort"] == (("platform", "ios"),)
    # AppTest's switch_page runs the page script alone (no app.py banner): the page itself knows it is
    # showing a snapshot and offers no new Snapshot button; the banner across pages is checked in Chromium.
    later.switch_page("views/cohorts.py").run()
    assert not later.exception
    assert any("Viewing a read-only snapshot" in c.value for c in later.caption)
    assert any("region = eu-west-1" in m.value for m in later.markdown)
