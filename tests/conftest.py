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
