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


# --- a postmortem attachment: words, formatted numbers, UTC to the second ------------------------


def _visible_text(page: str) -> str:
    import html

    body = re.sub(r"<script\b.*?</script>", " ", page.split("</head>", 1)[1], flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.fixture(scope="module")
def overview_snapshot(demo_frames_small: dict[str, pl.DataFrame]):
    """What the Overview stores, computed from the demo incident as the page computes it."""
    from analysis.blast_radius import bad_rate_series, blast_radius, split_periods
    from analysis.changepoint import detect_incident_start
    from analysis.outcome import roots, with_outcome
    from config import SloConfig

    requests = roots(with_outcome(demo_frames_small["spans"], SloConfig(default_ms=2000)))
    start, how = detect_incident_start(requests)
    radius = blast_radius(*split_periods(requests, start))
    series = bad_rate_series(requests)
    fig = go.Figure(go.Scatter(x=series["bucket"].to_list(), y=series["bad_rate"].to_list()))
    results = {"incident_start": start, "incident_how": how, "top_suspect": "region=eu-west-1 AND client_version=5.2.0",
               "top_suspect_says": "explains 64 % of bad requests", "blast_radius": radius,
               "bad_rate_per_minute": series, "bad_rate_chart": fig}
    flt = {"start": None, "end": None, "cohort": [["region", "eu-west-1"], ["client_version", "5.2.0"]], "service": None}
    snap = build_snapshot(demo_frames_small, title="Checkout slow in eu-west-1", page="overview", filter=flt,
                          results=results)
    return snap, radius, start


def test_export_reads_as_a_postmortem_attachment(overview_snapshot, tmp_path: Path) -> None:
    snap, radius, start = overview_snapshot
    store = SnapshotStore(tmp_path, redaction=RedactionConfig(enabled=False))
    reopened = store.open(store.create(snap, "pm"))  # rendered from what was stored, nothing else
    text = _visible_text(export_html(reopened))
    assert "requests with region = eu-west-1 and client_version = 5.2.0" in text  # the cohort in words
    assert "Top suspect cohort: region=eu-west-1 AND client_version=5.2.0" in text
    assert f"{radius.excess_bad:,.0f} bad requests above the pre-incident baseline" in text
    assert f"{len(radius.tenants_affected):,} tenant(s) got significantly worse" in text
    assert "[\"t-" not in text and "['t-" not in text, "no JSON dump of the tenant list"
    if len(radius.tenants_affected) > 12:
        assert f"and {len(radius.tenants_affected) - 12} more" in text
    assert f"{start:%Y-%m-%d %H:%M:%S} UTC" in text  # the incident start, to the second
    assert not re.search(r"\d\.\d{5,}", text), re.findall(r".{30}\d\.\d{5,}.{10}", text)[:3]  # no raw floats
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", text) and not re.search(r"\dT\d{2}:\d{2}", text)  # no µs, no ISO
    assert f"{radius.baseline_rate * 100:.2g} %" in text  # rates as percentages


def test_export_timeline_lists_changes_once_to_the_second(overview_snapshot) -> None:
    snap, _, start = overview_snapshot
    from snapshots.export import timeline

    rows = timeline(snap)
    events = snap.frame("events").filter(pl.col("kind") != "breaker_config")
    deploy = events.filter(pl.col("kind") == "deploy").sort("ts").row(0, named=True)
    times = rows["time (UTC)"].to_list()
    assert f"{deploy['ts']:%Y-%m-%d %H:%M:%S}" in times and times == sorted(times)
    assert rows.filter(pl.col("what") == "incident start")["time (UTC)"].to_list() == [f"{start:%Y-%m-%d %H:%M:%S}"]
    per_minute = events.with_columns(pl.col("ts").dt.truncate("1m")).select("kind", "service", "ts").n_unique()
    assert rows.height == per_minute + 1, "per-instance copies of one change collapse into one line"
    text = _visible_text(export_html(snap))
    assert "Timeline" in text and deploy["description"] in text


def test_export_says_when_no_cohort_stood_out() -> None:
    snap = build_snapshot(sd.all_frames(60), title="calm", page="overview",
                          results={"top_suspect": None, "top_suspect_says": None, "ratio": 0.0006765899864682003})
    text = _visible_text(export_html(snap))
    assert "No single cohort stood out" in text and "Shown: all requests" in text
    assert "0.068 %" in text and "0.000676" not in text


def test_readable_table_formats_times_durations_rates_and_floats() -> None:
    from datetime import UTC, datetime

    from snapshots.export import readable_table

    frame = pl.DataFrame({"ts": [datetime(2026, 3, 14, 2, 25, 0, 123456, tzinfo=UTC)], "p99_ms": [16123.352],
                          "bad_rate": [0.0006765899864682003], "lift": [32.123456], "reasons": [["a", "b"]]})
    row = readable_table(frame).row(0, named=True)
    assert row == {"ts": "2026-03-14 02:25:00", "p99_ms": "16.1 s", "bad_rate": "0.068 %", "lift": "32.1",
                   "reasons": "a, b"}
