"""AppTest: the Snapshots page, the Snapshot button and snapshot mode (?snapshot=<id>)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from snapshots.capture import build_snapshot
from snapshots.store import SnapshotStore
from tests import snapshot_data as sd

REPO = Path(__file__).resolve().parent.parent
KEY = "page-test-key"
YAML = """
slo:
  default_ms: 2000
  rules: [{service: gateway, operation: "POST /checkout", ms: 3000}]
sources:
  - {name: demo, type: demo, options: {seed: 11, requests: 20000, full_trace_limit: 20000}}
"""


@pytest.fixture()
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "sources.yaml").write_text(YAML)
    monkeypatch.setenv("FAULTLINE_SOURCES", str(tmp_path / "sources.yaml"))
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "snaps"))
    monkeypatch.chdir(REPO)
    return tmp_path / "snaps"


def _store(root: Path) -> SnapshotStore:
    return SnapshotStore(root, redaction_key=KEY)


def _app(page: str | None = "snapshots", **params: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.secrets["faultline"] = {"snapshot_redaction_key": KEY}
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page and page != "overview":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("info", "success", "error", "warning", "markdown", "caption", "text")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_empty_store(store_dir: Path) -> None:
    at = _app()
    assert "No snapshots yet" in _texts(at)


def test_list_shows_ok_and_corrupt_and_deletes(store_dir: Path) -> None:
    store = _store(store_dir)
    ok = store.create(build_snapshot(sd.all_frames(20), title="db pool exhausted"), "a")
    bad = store.create(build_snapshot(sd.all_frames(20), title="will break"), "b")
    (store_dir / bad / "frames" / "spans.parquet").write_bytes(b"PAR1 truncated")
    at = _app()
    listing = at.dataframe[0].value
    assert set(listing["title"]) == {"db pool exhausted", "will break"}
    assert any(str(s).startswith("corrupt") for s in listing["status"])
    at.selectbox(key="snapshots_pick").set_value(bad).run()
    assert "cannot be opened" in _texts(at)
    at.checkbox(key="snapshots_confirm_delete").check().run()
    at.button(key="snapshots_delete").click().run()
    assert not at.exception
    assert [i.id for i in store.list()] == [ok]
    assert "Deleted." in _texts(at)


def test_import_by_upload(store_dir: Path, tmp_path: Path) -> None:
    other = SnapshotStore(tmp_path / "elsewhere")
    data = other.export_file(other.create(build_snapshot(sd.all_frames(20), title="from team B"), "x"))
    at = _app()
    at.file_uploader(key="snapshots_upload").upload("team-b.faultline.zip", data, "application/zip").run()
    assert not at.exception
    assert "Imported as snapshot" in _texts(at)
    at.run()  # a rerun with the file still in the uploader must not import it twice
    assert [i.title for i in _store(store_dir).list()] == ["from team B"]


def test_hostile_upload_is_refused_clearly(store_dir: Path) -> None:
    at = _app()
    at.file_uploader(key="snapshots_upload").upload("evil.zip", b"PK\x03\x04 nope", "application/zip").run()
    assert not at.exception
    assert "Not imported" in _texts(at) and "zip" in _texts(at)
    assert _store(store_dir).list() == []


def test_retention_control(store_dir: Path) -> None:
    store = _store(store_dir)
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    ids = [store.create(build_snapshot(sd.all_frames(20), title=f"s{d}", created_at=now - timedelta(days=d)), f"k{d}")
           for d in (0, 5, 50)]
    at = _app()
    at.number_input(key="snapshots_max_age").set_value(30).run()
    at.button(key="snapshots_retention").click().run()
    assert not at.exception
    assert sorted(i.id for i in store.list()) == sorted(ids[:2])
    assert "Retention deleted 1" in _texts(at)


def test_open_by_link_and_bad_links(store_dir: Path) -> None:
    store = _store(store_dir)
    sid = store.create(build_snapshot(sd.all_frames(20), title="<b>checkout</b> [x](http://evil)", notes="line1\nline2"),
                       "a")
    at = _app(snapshot=sid)
    text = _texts(at)
    assert "Open snapshot" in [s.value for s in at.subheader]
    assert "line1\nline2" in [t.value for t in at.text]
    assert "](http://evil)" not in text  # the title cannot become a link
    for bad, reason in (("../../etc/passwd", "not a snapshot id"), ("%2e%2e%2f", "not a snapshot id"),
                        ("0" * 32, "does not exist")):
        at = _app(snapshot=bad)
        shown = _texts(at)
        assert "cannot be opened" in shown and reason in shown, shown


SCRIPT = '''
import streamlit as st
from analysis.blast_radius import blast_radius, split_periods
from analysis.outcome import roots
from ui import data, state
from ui.snapshot_button import snapshot_button
from ui.snapshot_mode import snapshot_banner

state.init_from_url()
snapshot_banner()
requests = roots(data.filtered_spans())
mid = requests["start"].min() + (requests["start"].max() - requests["start"].min()) / 2
radius = blast_radius(*split_periods(requests, mid))
st.metric("bad", radius.bad)
st.metric("users", radius.users_affected)
st.metric("requests", radius.requests)
snapshot_button("overview", {"blast": radius})
'''


def _script_app(**params: str) -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=120)
    at.secrets["faultline"] = {"snapshot_redaction_key": KEY}
    at.session_state["flt_loaded"] = False
    for k, v in params.items():
        at.query_params[k] = v
    return at


def test_button_creates_once_and_the_link_reproduces_the_figures(store_dir: Path) -> None:
    at = _script_app()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    live = {m.label: m.value for m in at.metric}
    at.text_input(key="snapshot_title_overview").input("Checkout slow in eu-west")
    at.text_area(key="snapshot_notes_overview").input("payments deploy at 09:05")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, [e.value for e in at.exception]
    at.button[0].click().run()  # double click
    at.run()  # rerun
    store = _store(store_dir)
    infos = store.list()
    assert len(infos) == 1 and infos[0].title == "Checkout slow in eu-west"
    sid = infos[0].id
    assert any(sid in c.value for c in at.code)
    snap = store.open(sid)
    assert snap.manifest.notes == "payments deploy at 09:05" and snap.manifest.page == "overview"
    assert snap.manifest.values["blast"]["bad"] == int(live["bad"])
    assert snap.manifest.queries, "the executed queries were not recorded"

    shared = _script_app(snapshot=sid)
    shared.run()
    assert not shared.exception, [e.value for e in shared.exception]
    assert {m.label: m.value for m in shared.metric} == live
    assert any("Read-only snapshot" in i.value for i in shared.info)
    assert any("read-only snapshot" in c.value for c in shared.caption)  # the button is replaced in snapshot mode


def test_standing_retention_policy_from_env(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(store_dir)
    keep = store.create(build_snapshot(sd.all_frames(20), title="new"), "new")
    from datetime import datetime, timedelta, timezone

    old = datetime.now(timezone.utc) - timedelta(days=100)
    store.create(build_snapshot(sd.all_frames(20), title="old", created_at=old), "old")
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_MAX_AGE_DAYS", "30")
    at = _app()
    assert "removed 1 expired" in _texts(at)
    assert [i.id for i in store.list()] == [keep]


def test_button_records_author_and_keeps_config_secrets_out(store_dir: Path) -> None:
    secret = "hunter2-very-secret"
    at = _script_app()
    at.secrets["connections"] = {"pg": {"user": "postgres", "password": secret}}
    at.user = {"is_logged_in": True, "email": "oncall@corp.example", "name": "On Call"}
    at.run()
    at.text_area(key="snapshot_notes_overview").input(f"tried password {secret}")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    (info,) = _store(store_dir).list()
    assert info.author == "oncall@corp.example"
    blob = b"".join(p.read_bytes() for p in (store_dir / info.id).rglob("*") if p.is_file())
    assert secret.encode() not in blob
    assert _store(store_dir).open(info.id).manifest.notes == "tried password [secret]"


def test_open_snapshot_shows_results_in_words_not_json(store_dir: Path) -> None:
    results = {"tenants_affected": [f"t-{i:04d}" for i in range(20)], "bad_rate": 0.0006765899864682003,
               "incident_start": "2026-03-14T02:25:30.123456+00:00"}
    sid = _store(store_dir).create(build_snapshot(sd.all_frames(60), title="words", page="overview",
                                                  results=results), "words")
    at = _app("snapshots", snapshot=sid)
    shown = next(d.value for d in at.dataframe if list(d.value.columns) == ["result", "value"])
    values = dict(zip(shown["result"], shown["value"], strict=True))
    assert values["bad rate"] == "0.068 %" and values["incident start"] == "2026-03-14 02:25:30 UTC"
    assert values["tenants affected"].endswith("and 8 more") and "[" not in values["tenants affected"]
