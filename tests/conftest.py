import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402
import pytest  # noqa: E402

DEMO_SMALL = {"seed": 11, "requests": 20_000, "full_trace_limit": 20_000}
SMALL_DEMO_YAML = """
slo:
  default_ms: 2000
  rules: [{service: gateway, operation: "POST /checkout", ms: 3000}]
sources:
  - {name: demo, type: demo, options: {seed: 11, requests: 20000, full_trace_limit: 20000}}
"""


@pytest.fixture(autouse=True)
def _fresh_resilience_state():
    """Breakers, bulkheads and last-good answers are process-wide: start every test from a clean slate."""
    yield
    from connectors.runtime import fanout, health, source

    source.reset_runtimes()
    fanout.LAST_GOOD.clear()
    health.reset_health()


@pytest.fixture
def info_logs():
    """These tests read the log: make sure INFO lines are written whatever FAULTLINE_LOG_LEVEL says."""
    from connectors.runtime.log import get_logger

    logger = get_logger()
    level = logger.level
    logger.setLevel("INFO")
    yield
    logger.setLevel(level)


@pytest.fixture(scope="session")
def demo_frames_small() -> dict[str, pl.DataFrame]:
    """A small demo incident (20k requests), generated once per test session."""
    from connectors.demo import demo_frames

    return demo_frames(**DEMO_SMALL)


@pytest.fixture()
def small_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the app at the small demo (and a private snapshot store) for one test; returns the config path."""
    path = tmp_path / "sources.yaml"
    path.write_text(SMALL_DEMO_YAML)
    monkeypatch.setenv("FAULTLINE_SOURCES", str(path))
    monkeypatch.setenv("FAULTLINE_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.chdir(REPO)
    return path


def app_test(redaction_key: str = "test-key") -> "AppTest":  # noqa: F821
    """An AppTest of the whole app (app.py), with secrets set so st.secrets never raises."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.secrets["faultline"] = {"snapshot_redaction_key": redaction_key}
    return at


def run_until_drawn(at: "AppTest", metric: str = "Bad requests (excess)", tries: int = 240) -> "AppTest":  # noqa: F821
    """Run the app until ``metric`` is drawn: data loads in the background (shared across sessions), so a
    page may first show progress and fill in on a later run."""
    import time

    for _ in range(tries):
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        loading = any("still reading" in c.value for c in at.caption)
        if not loading and any(m.label == metric for m in at.metric):
            return at
        time.sleep(0.5)
    raise AssertionError(f"the page never drew {metric!r}")
