"""The snapshot audit trail: JSON lines for create/open/delete/export, and the "opened by" list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from snapshots.audit import AUDIT_EVENT, Actor, audit, opened
from snapshots.capture import build_snapshot
from snapshots.store import InvalidSnapshotId, SnapshotNotFound, SnapshotStore, open_store
from tests import snapshot_data as sd
from ui.actor import client_address

REPO = Path(__file__).resolve().parent.parent
KEY = "audit-test-key"


def _audit_lines(text: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == AUDIT_EVENT]


def test_audit_line_says_who_when_which_and_from_where(capsys: pytest.CaptureFixture[str]) -> None:
    audit("delete", "ab" * 16, Actor(who="ana@example.com", remote_addr="10.1.2.3"))
    (line,) = _audit_lines(capsys.readouterr().err)
    assert line["action"] == "delete"
    assert line["snapshot_id"] == "ab" * 16
    assert line["who"] == "ana@example.com"
    assert line["remote_addr"] == "10.1.2.3"
    assert str(line["at"]).startswith("20") and "T" in str(line["at"])


def test_local_store_keeps_opens_beside_the_snapshot_newest_first(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    store = SnapshotStore(tmp_path, redaction_key=KEY)
    sid = store.create(build_snapshot(sd.all_frames(5), title="t"), "k")
    other = store.create(build_snapshot(sd.all_frames(5), title="u"), "k2")
    opened(store, sid, Actor("ana", "10.0.0.1"))
    opened(store, sid, Actor(None, "10.0.0.2"))
    opened(store, other, Actor("bo", None))
    with (tmp_path / ".opens" / f"{sid}.jsonl").open("a") as fh:
        fh.write('{"at": "torn')  # a crash mid-line must not hide the others
    got = store.opened_by(sid)
    assert [(o.who, o.remote_addr) for o in got] == [(None, "10.0.0.2"), ("ana", "10.0.0.1")]
    assert [o.who for o in store.opened_by(other)] == ["bo"]
    assert [line["action"] for line in _audit_lines(capsys.readouterr().err)] == ["open"] * 3
    assert store.delete(sid)
    assert store.opened_by(sid) == []
    assert [o.who for o in store.opened_by(other)] == ["bo"]
    with pytest.raises(InvalidSnapshotId):
        store.opened_by("../etc/passwd")
    with pytest.raises(SnapshotNotFound):
        store.record_open(sid, "ana", None)


def test_an_open_that_cannot_be_recorded_is_logged_not_fatal(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    store = SnapshotStore(tmp_path, redaction_key=KEY)
    opened(store, "cd" * 16, Actor("ana", None))  # no such snapshot
    err = capsys.readouterr().err
    assert len(_audit_lines(err)) == 1
    assert "snapshot_open_not_recorded" in err


def test_x_real_ip_is_trusted_only_from_the_local_proxy() -> None:
    assert client_address({"X-Real-IP": "203.0.113.9"}, "127.0.0.1") == "203.0.113.9"
    assert client_address({"X-Real-IP": "203.0.113.9"}, "198.51.100.4") == "198.51.100.4"  # spoofed by a client
    assert client_address({"X-Real-IP": "<script>"}, "127.0.0.1") == "127.0.0.1"
    assert client_address({}, None) is None


def test_factory_picks_the_directory_store_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAULTLINE_SNAPSHOT_STORE", raising=False)
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "d"))
    assert type(open_store()) is SnapshotStore and open_store().root == tmp_path / "d"
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_STORE", str(tmp_path / "e"))
    assert open_store().root == tmp_path / "e"


@pytest.fixture()
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - {name: demo, type: demo, options: {seed: 11, requests: 5000, full_trace_limit: 5000}}\n")
    monkeypatch.setenv("FAULTLINE_SOURCES", str(tmp_path / "sources.yaml"))
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "snaps"))
    monkeypatch.delenv("FAULTLINE_SNAPSHOT_STORE", raising=False)
    monkeypatch.chdir(REPO)
    return tmp_path / "snaps"


def _app(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.secrets["faultline"] = {"snapshot_redaction_key": KEY}
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_pages_audit_open_and_delete_and_list_who_opened(store_dir: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    store = SnapshotStore(store_dir, redaction_key=KEY)
    sid = store.create(build_snapshot(sd.all_frames(20), title="pool exhausted"), "a")
    capsys.readouterr()
    at = _app(snapshot=sid)
    opens = [line for line in _audit_lines(capsys.readouterr().err) if line["action"] == "open"]
    assert [line["snapshot_id"] for line in opens] == [sid]  # once per session, not once per rerun
    assert len(store.opened_by(sid)) == 1
    at.switch_page("views/snapshots.py").run()
    at.selectbox(key="snapshots_pick").set_value(sid).run()
    captions = "\n".join(str(c.value) for c in at.caption)
    assert "Opened by" in captions and "anonymous" in captions
    at.checkbox(key="snapshots_confirm_delete").check().run()
    at.button(key="snapshots_delete").click().run()
    assert not at.exception
    deletes = [line for line in _audit_lines(capsys.readouterr().err) if line["action"] == "delete"]
    assert [line["snapshot_id"] for line in deletes] == [sid]
    assert store.list() == []
