"""SnapshotStore: round trip, idempotency, ids and traversal, corruption, versions, delete, retention."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis.blast_radius import blast_radius, split_periods
from analysis.cohort import rank_values
from analysis.outcome import roots, with_outcome
from config import SloConfig
from model.encoding import decoded
from model.schemas import SCHEMA_VERSION
from snapshots import bundle
from snapshots.bundle import CorruptSnapshotError, SnapshotVersionError
from snapshots.capture import build_snapshot, jsonable
from snapshots.redact import RedactionConfig
from snapshots.store import (
    InvalidSnapshotId,
    SnapshotNotFound,
    SnapshotStore,
    idempotency_key,
    new_id,
    validate_id,
)
from tests import snapshot_data as sd

SLO = SloConfig(default_ms=2000.0)


def _figures(frames: dict[str, pl.DataFrame]) -> dict[str, object]:
    """What the Overview/Cohorts pages compute: the cohort ranking and the blast radius."""
    requests = roots(with_outcome(frames["spans"], SLO))
    t0 = requests.get_column("start").min() + (requests.get_column("start").max() - requests.get_column("start").min()) / 2
    selection, baseline = split_periods(requests, t0)
    ranking = rank_values(requests, (t0, None)).select("attribute", "value", "bad", "total", "lift", "p_value")
    return {"ranking": ranking.sort("attribute", "value"), "blast": blast_radius(selection, baseline)}


def _demo_frames() -> dict[str, pl.DataFrame]:
    demo = pytest.importorskip("connectors.demo")
    return dict(demo.demo_frames(seed=3, requests=4_000, full_trace_limit=1_000))


@pytest.mark.parametrize("redaction_on", [False, True])
def test_round_trip_pages_compute_the_same_figures(tmp_path: Path, redaction_on: bool) -> None:
    frames = _demo_frames()
    region = frames["spans"].get_column("attr.region").drop_nulls().mode().item(0)
    # the view: the global filter applied (a region cohort), as ui.data would hand it over
    view = {k: v for k, v in frames.items()}
    keep = view["spans"].filter(pl.col("is_root"), pl.col("attr.region") == region).select("trace_id")
    view["spans"] = view["spans"].join(keep, on="trace_id", how="semi")
    live = _figures(view)
    snap = build_snapshot(view, title="eu", page="cohorts", filter={"cohort": [["region", region]]},
                          results={"cohort": live["ranking"], "blast": live["blast"]})
    store = SnapshotStore(tmp_path, redaction=RedactionConfig(enabled=redaction_on))
    sid = store.create(snap, "k")
    opened = store.open(sid)
    again = _figures(opened.frames)
    assert_frame_equal(again["ranking"], live["ranking"])
    got, want = dataclasses.asdict(again["blast"]), dataclasses.asdict(live["blast"])
    assert got.keys() == want.keys()
    for name, value in want.items():  # users are hashed ids: same counts; float sums may differ in the last bit
        assert got[name] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), name
    assert got["users_affected"] == want["users_affected"] > 0
    assert_frame_equal(opened.tables["cohort"], live["ranking"])
    assert opened.manifest.values["blast"] == jsonable(live["blast"])
    for kind in ("breakers", "pools", "events"):
        assert_frame_equal(opened.frames[kind], view[kind])
    if not redaction_on:
        assert_frame_equal(opened.frames["spans"], decoded(view["spans"]))  # a snapshot holds the schema's strings
        assert_frame_equal(opened.frames["pool_holders"], view["pool_holders"])
    else:
        assert opened.frames["spans"].get_column("attr.user_id").str.starts_with("h:").all()


def test_idempotent_create_same_key_same_id(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    snap = build_snapshot(sd.all_frames(50), title="a")
    key = idempotency_key("overview", {"cohort": []}, "a", "", "form-nonce-1")
    first = store.create(snap, key)
    assert store.create(snap, key) == first  # double click / rerun
    assert store.create(snap, idempotency_key("overview", {"cohort": []}, "a", "", "form-nonce-1")) == first
    other = store.create(snap, idempotency_key("overview", {"cohort": []}, "a", "", "form-nonce-2"))
    assert other != first
    assert sorted(i.id for i in store.list()) == sorted([first, other])


def test_idempotency_key_is_stable_and_distinguishes_views() -> None:
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    a = idempotency_key({"start": t, "cohort": (("region", "eu"),)}, "title")
    assert a == idempotency_key({"cohort": (("region", "eu"),), "start": t}, "title")
    assert a != idempotency_key({"start": t, "cohort": (("region", "us"),)}, "title")
    assert a != idempotency_key({"start": t, "cohort": (("region", "eu"),)}, "title 2")


def test_ids_are_128_random_bits() -> None:
    ids = {new_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 32 and validate_id(i) == i for i in ids)


TRAVERSAL = [
    "../etc/passwd", "..", "/etc/passwd", "%2e%2e%2fetc%2fpasswd", "..%2F..%2Fsecret", "....//....//x",
    "0123456789abcdef0123456789abcdef/../../x", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdef\n",
    "", " ", "a" * 31, "g" * 32, "\x00" * 32, "C:\\Windows", "~/x", None, 12345, ["../x"],
]


@pytest.mark.parametrize("bad", TRAVERSAL)
def test_traversal_ids_are_refused_before_touching_the_filesystem(tmp_path: Path, bad: object) -> None:
    root = tmp_path / "store"  # does not exist: any I/O attempt on a valid-looking path would say "not found"
    outside = tmp_path / "secret"
    outside.write_text("do not touch")
    store = SnapshotStore(root)
    with pytest.raises(InvalidSnapshotId):
        store.open(bad)
    with pytest.raises(InvalidSnapshotId):
        store.delete(bad)
    with pytest.raises(InvalidSnapshotId):
        store.export_file(bad)
    assert not root.exists()
    assert outside.read_text() == "do not touch"


def test_unknown_id_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(SnapshotNotFound, match="does not exist"):
        SnapshotStore(tmp_path).open(new_id())


def _two(tmp_path: Path) -> tuple[SnapshotStore, str, str]:
    store = SnapshotStore(tmp_path)
    snap = build_snapshot(sd.all_frames(50), title="x", results={"cohort": pl.DataFrame({"a": [1]})})
    return store, store.create(snap, "one"), store.create(snap, "two")


def test_truncated_parquet_is_reported_and_list_survives(tmp_path: Path) -> None:
    store, good, bad = _two(tmp_path)
    victim = tmp_path / bad / "frames" / "spans.parquet"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    infos = {i.id: i for i in store.list()}
    assert infos[good].status == "ok"
    assert infos[bad].status == "corrupt" and "spans.parquet" in infos[bad].error
    with pytest.raises(CorruptSnapshotError, match="truncated"):
        store.open(bad)
    assert store.open(good).frames["spans"].height == 100


def test_altered_bytes_same_size_fail_the_checksum(tmp_path: Path) -> None:
    store, _, bad = _two(tmp_path)
    victim = tmp_path / bad / "tables" / "t0.parquet"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert {i.id: i.status for i in store.list()}[bad] == "ok"  # the list only stats files (cheap)
    with pytest.raises(CorruptSnapshotError, match="altered"):
        store.open(bad)


@pytest.mark.parametrize("damage", ["missing", "garbage", "not_ours", "traversal", "wrong_id"])
def test_damaged_manifest(tmp_path: Path, damage: str) -> None:
    store, good, bad = _two(tmp_path)
    manifest = tmp_path / bad / "manifest.json"
    raw = json.loads(manifest.read_bytes())
    if damage == "missing":
        manifest.unlink()
    elif damage == "garbage":
        manifest.write_bytes(b"\x00{not json")
    elif damage == "not_ours":
        manifest.write_text(json.dumps({"hello": "world"}))
    elif damage == "traversal":
        raw["files"]["../../secret"] = {"bytes": 1, "sha256": "0"}
        manifest.write_text(json.dumps(raw))
    else:
        raw["snapshot_id"] = good
        manifest.write_text(json.dumps(raw))
    if damage != "wrong_id":
        info = {i.id: i for i in store.list()}[bad]
        assert info.status == "corrupt" and info.error
    with pytest.raises(CorruptSnapshotError):
        store.open(bad)
    assert store.open(good).manifest.title == "x"


def test_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    store, _, sid = _two(tmp_path)
    manifest = tmp_path / sid / "manifest.json"
    raw = json.loads(manifest.read_bytes())
    raw["schema_version"] = SCHEMA_VERSION + 1
    manifest.write_text(json.dumps(raw))
    info = {i.id: i for i in store.list()}[sid]
    assert info.status == "unsupported" and "newer Faultline" in info.error
    with pytest.raises(SnapshotVersionError, match="newer Faultline"):
        store.open(sid)


def test_older_schema_is_migrated_or_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, sid = _two(tmp_path)
    # pretend the current version is one ahead of what was written
    monkeypatch.setattr(bundle, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(SnapshotVersionError, match="can no longer migrate"):
        store.open(sid)

    def step(raw: dict, frames: dict) -> tuple[dict, dict]:
        return {**raw, "notes": raw["notes"] + " [migrated]"}, frames

    monkeypatch.setitem(bundle.MIGRATIONS, SCHEMA_VERSION, step)
    opened = store.open(sid)
    assert opened.manifest.notes.endswith("[migrated]")
    assert opened.manifest.schema_version == SCHEMA_VERSION + 1


def test_delete_forgets_the_key(tmp_path: Path) -> None:
    store, keep, sid = _two(tmp_path)
    assert store.delete(sid) is True
    assert store.delete(sid) is False
    with pytest.raises(SnapshotNotFound):
        store.open(sid)
    assert [i.id for i in store.list()] == [keep]
    again = store.create(build_snapshot(sd.all_frames(50), title="x"), "two")
    assert again != sid and store.open(again).manifest.title == "x"


def test_retention_by_count_and_age(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    now = datetime(2026, 5, 1, tzinfo=timezone.utc)
    frames = sd.all_frames(20)
    ids = [store.create(build_snapshot(frames, title=f"s{d}", created_at=now - timedelta(days=d)), f"k{d}")
           for d in (0, 1, 10, 40, 90)]
    assert sorted(store.apply_retention(max_age_days=30, now=now)) == sorted(ids[3:])
    assert store.apply_retention(max_count=2, now=now) == [ids[2]]
    assert [i.id for i in store.list()] == ids[:2]


def test_span_sampling_keeps_whole_traces_and_is_recorded(tmp_path: Path) -> None:
    frames = sd.all_frames(400)
    snap = build_snapshot(frames, title="big", span_bound=101)
    spans = snap.frames["spans"]
    assert spans.height == 100  # 50 whole traces of 2 spans; a 51st would exceed the bound
    assert spans.group_by("trace_id").len().get_column("len").unique().to_list() == [2]
    info = snap.manifest.sampling["spans"]
    assert info["applied"] and info["rows_before"] == 800 and info["rows_kept"] == 100 and info["bound"] == 101
    sid = SnapshotStore(tmp_path).create(snap, "s")
    assert SnapshotStore(tmp_path).open(sid).manifest.sampling == snap.manifest.sampling


def test_secrets_never_enter_even_with_redaction_off(tmp_path: Path) -> None:
    secret = "tok-9f8e7d6c5b4a"
    snap = build_snapshot(
        sd.all_frames(20), title=f"with {secret}", notes=f"pw {secret}",
        queries=[{"source": "prom", "executed_query": f"GET /api?token={secret}"}], notices=[f"auth {secret} failed"],
    )
    store = SnapshotStore(tmp_path, redaction=RedactionConfig(enabled=False), secret_values=[secret])
    sid = store.create(snap, "k")
    blob = b"".join(p.read_bytes() for p in (tmp_path / sid).rglob("*") if p.is_file())
    assert secret.encode() not in blob
    assert "[secret]" in store.open(sid).manifest.queries[0]["executed_query"]


def test_redaction_key_from_config_writes_no_key_file(tmp_path: Path) -> None:
    a = SnapshotStore(tmp_path / "a", redaction_key="configured-key")
    b = SnapshotStore(tmp_path / "b", redaction_key="configured-key")
    snap = build_snapshot(sd.all_frames(20), title="k")
    sa, sb = a.open(a.create(snap, "k")), b.open(b.create(snap, "k"))
    assert not (tmp_path / "a" / ".redaction_key").exists()
    assert_frame_equal(sa.frames["spans"], sb.frames["spans"])  # same key, same hashes across stores
    generated = SnapshotStore(tmp_path / "c")
    sc = generated.open(generated.create(snap, "k"))
    assert (tmp_path / "c" / ".redaction_key").stat().st_mode & 0o777 == 0o600
    assert sc.frames["spans"]["attr.user_id"].to_list() != sa.frames["spans"]["attr.user_id"].to_list()


def test_interrupted_write_is_invisible_and_a_retry_reuses_the_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SnapshotStore(tmp_path)
    snap = build_snapshot(sd.all_frames(20), title="r")
    real_rename = os.rename

    def crash(src: object, dst: object) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError):
        store.create(snap, "retry-me")
    monkeypatch.setattr(os, "rename", real_rename)
    assert store.list() == []
    claimed = (tmp_path / ".keys").iterdir().__next__().read_text()
    sid = store.create(snap, "retry-me")
    assert sid == claimed and [i.id for i in store.list()] == [sid]


def test_frames_must_match_the_schema(tmp_path: Path) -> None:
    frames = sd.all_frames(20)
    frames["breakers"] = frames["breakers"].with_columns(state=pl.lit("melted"))
    with pytest.raises(Exception, match="state outside"):
        build_snapshot(frames, title="bad")
    spans = frames["spans"].with_columns(is_bad=pl.lit(True))  # derived columns are dropped, attrs kept
    snap = build_snapshot({"spans": spans}, title="ok")
    assert "is_bad" not in snap.frames["spans"].columns and "attr.region" in snap.frames["spans"].columns
    assert dataclasses.asdict(snap.manifest)["title"] == "ok"


def test_span_sampling_keeps_every_request_when_they_fit() -> None:
    frames = sd.all_frames(400)  # 400 traces of a root and a child
    snap = build_snapshot(frames, title="big", span_bound=500)
    spans = snap.frames["spans"]
    assert spans.filter(pl.col("is_root")).height == 400  # request-level figures stay exact
    assert spans.height <= 500
    children = spans.filter(~pl.col("is_root"))
    assert children.height == 100  # the remaining budget, whole traces only
    assert set(children.get_column("trace_id")) <= set(spans.filter(pl.col("is_root")).get_column("trace_id"))
    info = snap.manifest.sampling["spans"]
    assert info["applied"] and info["all_requests_kept"] and info["rows_kept"] == 500
