"""HTML export (self-contained, hostile text stays text) and the portable snapshot file (hostile uploads)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from snapshots.archive import ImportLimits, pack, unpack
from snapshots.bundle import CorruptSnapshotError, SnapshotError, to_files
from snapshots.capture import build_snapshot
from snapshots.export import export_html
from snapshots.redact import RedactionConfig
from snapshots.store import SnapshotStore
from tests import snapshot_data as sd
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium

SCRIPT = "<script>alert('xss')</script>"
IMG = '"><img src=x onerror=alert(1)>'


def _hostile_snapshot(tmp_path: Path):
    frames = sd.all_frames(60)
    frames["spans"] = frames["spans"].with_columns(pl.lit(SCRIPT).alias("attr.region"), pl.lit(IMG).alias("attr.tenant"))
    cohort = frames["spans"].group_by("attr.region", "attr.tenant").len()
    fig = go.Figure(go.Bar(x=[SCRIPT, IMG], y=[3, 4], name=IMG))
    fig.update_layout(title=f"bad rate {SCRIPT}")
    snap = build_snapshot(
        frames, title=f"Checkout {SCRIPT}", page="cohorts", notes=f"first line\n{IMG}\n</pre>{SCRIPT}",
        filter={"cohort": [["region", SCRIPT]]}, notices=[IMG], results={"cohort": cohort, IMG: fig, "blast": {SCRIPT: IMG}},
        queries=[{"source": "jaeger", "executed_query": f"GET /api/traces?tags={IMG}"}],
    )
    store = SnapshotStore(tmp_path, redaction=RedactionConfig(enabled=False))
    return store, store.open(store.create(snap, "h"))


def test_hostile_values_render_as_text(tmp_path: Path) -> None:
    _, snap = _hostile_snapshot(tmp_path)
    page = export_html(snap)
    body = page.split("</head>", 1)[1]
    assert "alert('xss')" in html_unescape_all(body)  # the text is there ...
    assert SCRIPT not in body and "<img" not in body and "onerror=alert(1)>" not in body  # ... but never as markup
    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in body
    # scripts: plotly.js once in the head, then one per figure, and nothing else
    assert len(re.findall(r"<script\b", page)) == 1 + len(snap.figures)
    assert "first line\n&quot;&gt;&lt;img" in page  # notes keep their line breaks, escaped


def html_unescape_all(text: str) -> str:
    import html

    return html.unescape(text)


def test_export_is_self_contained(tmp_path: Path) -> None:
    _, snap = _hostile_snapshot(tmp_path)
    page = export_html(snap)
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=", page, re.I)
    assert "Plotly.newPlot" in page and len(page) > 3_000_000  # plotly.js is inlined
    assert "default-src 'none'" in page  # and the page may not fetch anything


def test_default_chart_when_the_page_stored_none() -> None:
    snap = build_snapshot(sd.all_frames(60), title="plain", results={"blast": {"users": 3}})
    page = export_html(snap)
    assert "Requests and errors per minute" in page and page.count("Plotly.newPlot") == 1


@pytest.mark.browser
def test_export_renders_offline_in_chromium(tmp_path: Path) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    _, snap = _hostile_snapshot(tmp_path)
    out = tmp_path / "postmortem.html"
    out.write_text(export_html(snap), encoding="utf-8")
    requests, dialogs, errors = [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.wait_for_selector(".plotly .main-svg", timeout=30_000)
        charts = page.locator(".js-plotly-plot").count()
        title_text = page.locator("h1").inner_text()
        browser.close()
    assert charts == len(snap.figures) == 1
    assert SCRIPT in title_text  # shown as text
    assert dialogs == [] and errors == []
    assert [u for u in requests if not u.startswith("file://")] == []


# --- the portable snapshot file ---------------------------------------------------------------


def test_export_import_round_trip(tmp_path: Path) -> None:
    source = SnapshotStore(tmp_path / "a")
    sid = source.create(build_snapshot(sd.all_frames(60), title="ship it", results={"t": pl.DataFrame({"x": [1, 2]})}), "k")
    data = source.export_file(sid)
    assert data == source.export_file(sid)  # reproducible bytes
    target = SnapshotStore(tmp_path / "b")
    new = target.import_file(data)
    assert new != sid and target.import_file(data) == new  # a re-upload makes no second copy
    a, b = source.open(sid), target.open(new)
    assert b.manifest.origin["snapshot_id"] == sid
    assert_frame_equal(a.frames["breakers"], b.frames["breakers"])
    assert_frame_equal(a.tables["t"], b.tables["t"])
    # already-hashed ids are not hashed again by the importing store (its key differs)
    assert_frame_equal(a.frames["spans"], b.frames["spans"])


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _good_files() -> dict[str, bytes]:
    return to_files(build_snapshot(sd.all_frames(20), title="ok"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f: _zip({**f, "../evil.parquet": b"x"}), "unexpected path"),
        (lambda f: _zip({**f, "/etc/cron.d/x": b"x"}), "unexpected path"),
        (lambda f: _zip({**f, "frames\\..\\..\\x.parquet": b"x"}), "unexpected path"),
        (lambda f: _zip({**f, "frames/../../x.parquet": b"x"}), "unexpected path"),
        (lambda f: _zip({k: v for k, v in f.items() if k != "manifest.json"}), "no manifest"),
        (lambda f: b"PK\x03\x04 definitely not a zip", "not a valid zip"),
        (lambda f: pack(f)[: len(pack(f)) // 2], "zip"),
        (lambda f: _zip({**f, "frames/spans.parquet": f["frames/spans.parquet"][:100]}), "truncated or altered"),
        (lambda f: _zip({**f, "manifest.json": json.dumps({**json.loads(f["manifest.json"]), "schema_version": 99}).encode()}),
         "newer Faultline"),
        (lambda f: _zip({**f, "figures/f0.json": b"\x00" * 50_000_000}), "zip bomb"),
    ],
)
def test_hostile_uploads_are_refused(tmp_path: Path, make, message: str) -> None:
    data = make(_good_files())
    store = SnapshotStore(tmp_path / "store")
    with pytest.raises(SnapshotError, match=message):  # every refusal is a clear SnapshotError, never a crash
        store.import_file(data, ImportLimits(max_total_bytes=20_000_000))
    assert store.list() == []
    assert not (tmp_path / "evil.parquet").exists()


def test_upload_size_and_member_limits() -> None:
    files = _good_files()
    data = pack(files)
    with pytest.raises(CorruptSnapshotError, match="limit"):
        unpack(data, ImportLimits(max_file_bytes=len(data) - 1))
    many = _zip({**files, **{f"tables/t{i}.parquet": b"x" for i in range(30)}})
    with pytest.raises(CorruptSnapshotError, match="members"):
        unpack(many, ImportLimits(max_members=10))
    assert unpack(data) == files
