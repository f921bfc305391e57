"""AppTest over the Breakers and Pools pages on the demo incident: the analysis shows up and links."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import app_test


@pytest.fixture()
def app(small_demo: Path) -> AppTest:
    at = app_test()
    at.run()
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: str(m.value) for m in at.metric}


def test_breakers_page_flags_the_never_tripping_breaker(app: AppTest) -> None:
    app.switch_page("views/breakers.py").run()
    assert not app.exception, [e.value for e in app.exception]
    metrics = _metrics(app)
    assert metrics["should have tripped"] == "1" and int(metrics["open periods"]) >= 6
    text = " ".join(md.value for md in app.markdown)
    assert "payments->fraud" in text and "slow call threshold above latency" in text
    focus = [b for b in app.button if b.key == "breaker_focus_0"]
    focus[0].click().run()
    assert not app.exception and app.session_state["flt_service"] == "fraud"


def test_pools_page_walks_the_exhaustion_chain(app: AppTest) -> None:
    app.switch_page("views/pools.py").run()
    assert not app.exception, [e.value for e in app.exception]
    metrics = _metrics(app)
    assert int(metrics["requests stuck on a pool"].replace(",", "")) > 0
    assert int(metrics["users affected"].replace(",", "")) > 0
    text = " ".join(md.value for md in app.markdown)
    assert "pid 48213" in text and "reporting-job" in text
    apply = [b for b in app.button if b.key == "pool_cohort_0"]
    assert apply, "the stuck requests' cohort should offer a filter button"
    apply[0].click().run()
    assert not app.exception and dict(app.session_state["flt_cohort"])
