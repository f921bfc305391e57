import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_resilience_state():
    """Breakers, bulkheads and last-good answers are process-wide: start every test from a clean slate."""
    yield
    try:
        from connectors import fanout, health, resilience
    except ImportError:  # pragma: no cover - the modules are part of the repo
        return
    resilience.reset_all()
    fanout.reset_bulkheads()
    fanout.LAST_GOOD.clear()
    health.reset_health()


import polars as pl  # noqa: E402
import pytest  # noqa: E402

DEMO_SMALL = {"seed": 11, "requests": 20_000, "full_trace_limit": 20_000}


@pytest.fixture(scope="session")
def demo_frames_small() -> dict[str, pl.DataFrame]:
    """A small demo incident (20k requests), generated once per test session."""
    from connectors.demo import demo_frames

    return demo_frames(**DEMO_SMALL)
