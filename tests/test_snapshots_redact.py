"""Redaction on the way in: keyed hashes, dropped IPs, normalised SQL, and a scan of every stored byte."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import polars as pl
import pytest

from snapshots.capture import build_snapshot
from snapshots.export import export_html
from snapshots.redact import RedactionConfig, Redactor, normalise_sql_expr
from snapshots.store import SnapshotStore
from tests import snapshot_data as sd


def _normalise(sql: str) -> str:
    return pl.DataFrame({"q": [sql]}).select(normalise_sql_expr("q")).item()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
        ("select * from t where email = 'a@b.c' and n > -3.5e2", "select * from t where email = ? and n > ?"),
        ("SELECT 'it''s' , E'\\x41'", "SELECT ? , ?"),
        ("SELECT $$secret body$$, $tag$x$tag$", "SELECT ?, ?"),
        ("SELECT * FROM t WHERE id IN (1, 2, 3, 4)", "SELECT * FROM t WHERE id IN (?)"),
        ("SELECT a FROM t1 WHERE b = $1 /* user 123 */ -- tail 'x'", "SELECT a FROM t1 WHERE b = $1"),
        ("UPDATE t SET v = 'unterminated", "UPDATE t SET v = ?"),
    ],
)
def test_sql_literals_are_normalised(sql: str, expected: str) -> None:
    assert _normalise(sql) == expected


def _stored_text(root: Path) -> str:
    """Every byte the store wrote, with Parquet decoded to its cell values (compression hides text)."""
    parts = []
    for path in root.rglob("*"):
        if not path.is_file() or path.name == ".redaction_key":
            continue
        data = path.read_bytes()
        parts.append(data.decode("utf-8", "replace"))
        if path.suffix == ".parquet":
            frame = pl.read_parquet(io.BytesIO(data))
            parts.append(frame.select(pl.all().cast(pl.String)).write_csv())
    return "\n".join(parts)


def _zip_text(data: bytes) -> str:
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            raw = zf.read(name)
            out.append(pl.read_parquet(io.BytesIO(raw)).cast(pl.String).write_csv() if name.endswith(".parquet")
                       else raw.decode("utf-8", "replace"))
    return "\n".join(out)


def _raw_values(frames: dict[str, pl.DataFrame]) -> list[str]:
    spans = frames["spans"]
    users = spans.get_column("attr.user_id").unique().to_list()
    ips = spans.get_column("attr.http.client_ip").unique().to_list() + ["198.51.100.77", "198.51.100.78"]
    return users + ips + [sd.SECRET_QUERY, "victim@example.com", "balance > 123456"]


def _snapshot(frames: dict[str, pl.DataFrame]):
    cohort = frames["spans"].group_by("attr.user_id", "attr.region").len()  # a table that names users
    user = sd.user_id(5)
    return build_snapshot(
        frames, title=f"users like {user}", notes=f"{user} and {sd.client_ip(5)} reported it",
        filter={"cohort": [["user_id", user]]}, page_state={"selected_user": sd.user_id(6)},
        notices=[f"slow query {sd.SECRET_QUERY}"], results={"cohort": cohort, "top_user": sd.user_id(7)},
    )


def test_scan_finds_no_raw_user_id_ip_or_query_text_when_on(tmp_path: Path) -> None:
    frames = sd.all_frames(400)
    store = SnapshotStore(tmp_path)
    sid = store.create(_snapshot(frames), "k")
    snap = store.open(sid)
    haystacks = {"store": _stored_text(tmp_path), "zip": _zip_text(store.export_file(sid)), "html": export_html(snap)}
    for where, text in haystacks.items():
        leaked = [v for v in _raw_values(frames) if v in text]
        assert not leaked, f"raw values in the {where}: {leaked[:5]}"
    assert "attr.http.client_ip" not in snap.frames["spans"].columns
    assert snap.frames["pool_holders"].get_column("client_addr").null_count() == 2
    assert snap.manifest.redaction["hashed_columns"] == ["attr.user_id"]


def test_scan_finds_them_when_redaction_is_off(tmp_path: Path) -> None:
    """The scan itself can see raw values: with redaction off it must find them."""
    frames = sd.all_frames(400)
    store = SnapshotStore(tmp_path, redaction=RedactionConfig(enabled=False))
    store.create(_snapshot(frames), "k")
    text = _stored_text(tmp_path)
    assert all(v in text for v in _raw_values(frames))
    assert not (tmp_path / ".redaction_key").exists()


def test_cohort_statistics_survive_hashing(tmp_path: Path) -> None:
    frames = sd.all_frames(400)
    store = SnapshotStore(tmp_path)
    snap = store.open(store.create(_snapshot(frames), "k"))
    def per_region(spans: pl.DataFrame) -> pl.DataFrame:
        return spans.group_by("attr.region").agg(users=pl.col("attr.user_id").n_unique(), n=pl.len()).sort("attr.region")
    assert per_region(snap.frames["spans"]).equals(per_region(frames["spans"]))
    # the filter chip was hashed with the same key, so it still selects the same requests
    (key, value), = snap.manifest.filter["cohort"]
    assert key == "user_id" and value.startswith("h:")
    hashed_hits = snap.frames["spans"].filter(pl.col("attr.user_id") == value).height
    raw_hits = frames["spans"].filter(pl.col("attr.user_id") == sd.user_id(5)).height
    assert hashed_hits == raw_hits > 0
    assert snap.manifest.page_state["selected_user"].startswith("h:")
    assert snap.manifest.values["top_user"].startswith("h:")
    assert snap.tables["cohort"].get_column("attr.user_id").str.starts_with("h:").all()


def test_emails_and_listed_attributes_are_hashed_drop_mode_drops_queries(tmp_path: Path) -> None:
    frames = sd.all_frames(50)
    frames["spans"] = frames["spans"].with_columns(
        pl.format("{}@corp.example", pl.col("attr.user_id")).alias("attr.user.email"),
        pl.col("attr.tenant").alias("attr.account"),
    )
    config = RedactionConfig(hash_attrs=("attr.user_id", "attr.account"), query_text="drop")
    store = SnapshotStore(tmp_path, redaction=config)
    snap = store.open(store.create(build_snapshot(frames, title="e"), "k"))
    spans = snap.frames["spans"]
    for col in ("attr.user_id", "attr.user.email", "attr.account"):
        assert spans.get_column(col).str.starts_with("h:").all(), col
    assert spans.get_column("attr.region").to_list() == frames["spans"].get_column("attr.region").to_list()
    assert snap.frames["pool_holders"].get_column("query").null_count() == 2
    assert "@corp.example" not in _stored_text(tmp_path)


def test_hash_is_keyed_and_stable() -> None:
    a = Redactor(RedactionConfig(), b"key-a")
    b = Redactor(RedactionConfig(), b"key-b")
    assert a.hash_value("usr-1") == a.hash_value("usr-1") != b.hash_value("usr-1")
    assert len(a.hash_value("usr-1")) == 18


def test_sql_on_spans_is_normalised_and_scrubbed_from_text(tmp_path: Path) -> None:
    frames = {"spans": sd.spans(20).with_columns(
        pl.lit("SELECT * FROM orders WHERE card = '4111-1111-1111-1111'").alias("attr.db.statement"))}
    snap = build_snapshot(frames, title="t", notices=["slow: SELECT * FROM orders WHERE card = '4111-1111-1111-1111'"])
    store = SnapshotStore(tmp_path)
    opened = store.open(store.create(snap, "k"))
    assert opened.frames["spans"].get_column("attr.db.statement").unique().to_list() == [
        "SELECT * FROM orders WHERE card = ?"]
    assert opened.manifest.notices == ["slow: SELECT * FROM orders WHERE card = ?"]
    assert "4111-1111" not in _stored_text(tmp_path)


def test_emails_in_free_text_are_hashed(tmp_path: Path) -> None:
    frames = sd.all_frames(20)
    frames["events"] = frames["events"].with_columns(description=pl.lit("paged bob.smith+oncall@corp.example twice"))
    snap = build_snapshot(frames, title="t", notes="ask carol@corp.example")
    store = SnapshotStore(tmp_path)
    opened = store.open(store.create(snap, "k"))
    assert "@corp.example" not in _stored_text(tmp_path)
    assert re.fullmatch(r"paged h:[0-9a-f]{16} twice", opened.frames["events"]["description"][0])
    assert re.fullmatch(r"ask h:[0-9a-f]{16}", opened.manifest.notes)
