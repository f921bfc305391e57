"""AppTests for issue 13 on the demo incident: breaker verdicts ignore the cohort, the Overview's first
screen, quiet absence of unserved kinds, the Pools heatmap, a Snapshot button on every page, no emoji."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO, app_test

# pictographs and dingbats Debian's Chromium draws as blank boxes (plain ✓ ✕ → · are in DejaVu)
EMOJI = re.compile("[\U0001F000-\U0001FAFF\U00002600-\U000026FF\U00002B00-\U00002BFF\U0000FE0F]")


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: str(m.value) for m in at.metric}


def _page(page: str, cohort: list[str] | None = None) -> AppTest:
    at = app_test()
    if cohort:
        at.query_params["cohort"] = cohort
    at.run()
    if page != "overview":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture()
def full_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped demo (200k requests): at this size the cohort alone falls under a breaker's minimum calls."""
    monkeypatch.delenv("FAULTLINE_SOURCES", raising=False)
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.chdir(REPO)
    return REPO / "sources.yaml"


def test_breaker_verdicts_do_not_change_with_the_cohort(full_demo: Path) -> None:
    whole = _page("breakers")
    narrowed = _page("breakers", ["region=eu-west-1", "client_version=5.2.0"])
    assert _metrics(whole)["should have tripped"] == _metrics(narrowed)["should have tripped"] == "1"
    text = " ".join(md.value for md in narrowed.markdown)
    assert "minimum calls not reached" not in text and "payments->fraud" in text
    assert any("whole traffic" in i.value and "only narrows" in i.value for i in narrowed.info)
    assert not any("whole traffic" in i.value for i in whole.info), "without a cohort there is nothing to explain"


def test_overview_puts_the_sentence_and_top_suspect_before_the_metric_row(small_demo: Path) -> None:
    at = _page("overview")
    order = [type(e).__name__ + ":" + str(getattr(e, "value", ""))[:40] for e in at.main]
    flat = [(e.type, getattr(e, "value", None)) for e in _walk(at.main)]
    kinds = [t for t, _ in flat]
    sentence = next(i for i, (t, v) in enumerate(flat) if t == "markdown" and str(v).startswith("**Incident since"))
    suspect = next(i for i, (t, v) in enumerate(flat) if t == "subheader" and v == "Top suspect cohort")
    first_metric = kinds.index("metric")
    assert sentence < first_metric and suspect < first_metric, order


def _walk(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _walk(child)


@pytest.fixture()
def traces_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - {name: demo, type: demo, options: {seed: 11, requests: 5000, "
                    "full_trace_limit: 5000, kinds: [spans]}}\n")
    monkeypatch.setenv("FAULTLINE_SOURCES", str(path))
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.chdir(REPO)
    return path


@pytest.mark.parametrize("page", ["overview", "traces", "breakers", "pools"])
def test_a_kind_nobody_configured_is_not_a_degradation(traces_only: Path, page: str) -> None:
    at = _page(page)
    assert not [e.value for e in at.error if "no configured source serves" in e.value]
    if page == "overview":
        notes = [c.value for c in at.caption if "No configured source serves change events" in c.value]
        assert len(notes) == 1, "said once, quietly, where the events would be drawn"


def test_pools_draws_a_heatmap_of_busy_share_per_pool_and_time(small_demo: Path, demo_frames_small) -> None:
    at = _page("pools")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    heat = spec["data"][0]
    assert heat["type"] == "heatmap" and sorted(heat["y"]) == sorted(demo_frames_small["pools"]["pool"].unique())
    cells = [v for row in heat["z"] for v in row if v is not None]
    assert max(cells) >= 100 and min(cells) < 100  # the demo's payments pool is exhausted, others are not


@pytest.mark.parametrize("page", ["snapshots", "sources"])
def test_every_page_has_the_snapshot_button(small_demo: Path, page: str) -> None:
    at = _page(page)
    assert [b for b in at.button if b.label == "Save snapshot"], f"{page} offers the Snapshot form"


def test_no_emoji_in_the_ui_code() -> None:
    files = [*REPO.glob("views/*.py"), *REPO.glob("ui/*.py"), REPO / "app.py"]
    found = {str(f.relative_to(REPO)): EMOJI.findall(f.read_text(encoding="utf-8")) for f in files}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_page_icon_is_a_local_file() -> None:
    source = (REPO / "app.py").read_text(encoding="utf-8")
    icon = re.search(r"page_icon=\"([^\"]+)\"", source)
    assert icon and (REPO / icon.group(1)).is_file(), "a :material/…: or emoji icon is fetched from a font host"
