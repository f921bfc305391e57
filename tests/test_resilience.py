"""connectors.runtime.resilience: the breaker state machine (fake clocks), deadlines, and policy parsing."""

from __future__ import annotations

import threading

import pytest

from connectors.errors import ConfigError, ConnectorBug, PayloadError, SourceRejected, SourceTimeout, SourceUnavailable
from connectors.runtime.policy import policy_from_options
from connectors.runtime.resilience import (
    BreakerConfig,
    Deadline,
    SourceBreaker,
    current_deadline,
    use_deadline,
)
from connectors.runtime.source import breaker_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(threshold: int = 3, open_s: float = 30.0, probes: int = 1) -> tuple[SourceBreaker, Clock]:
    clock = Clock()
    wall = lambda: 1_700_000_000.0 + clock.now  # noqa: E731 - wall time moves with the fake clock
    return SourceBreaker("src", BreakerConfig(threshold, open_s, probes), clock=clock, wall=wall), clock


def test_closed_until_the_threshold_of_consecutive_failures() -> None:
    breaker, _ = _breaker(threshold=3)
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure(SourceTimeout("slow"))
    assert breaker.state == "closed"
    breaker.record_success()  # a success resets the count
    for _ in range(2):
        breaker.record_failure(SourceTimeout("slow"))
    assert breaker.state == "closed"
    breaker.record_failure(SourceTimeout("slow"))
    assert breaker.state == "open"


def test_open_refuses_with_the_next_probe_time_then_half_opens() -> None:
    breaker, clock = _breaker(threshold=1, open_s=30)
    breaker.record_failure(SourceUnavailable("refused", source="src"))
    clock.now += 10
    with pytest.raises(SourceUnavailable) as caught:
        breaker.acquire()
    # opened at fake wall 1_700_000_000 + 1000 s = 2023-11-14 22:30:00 UTC; probe 30 s later
    assert "breaker open; next probe at 22:30:30 UTC" in caught.value.message
    assert caught.value.retry_after_s == pytest.approx(20.0)
    assert "refused" in caught.value.hint
    assert breaker.is_rejecting()
    clock.now += 20
    assert breaker.state == "half_open" and not breaker.is_rejecting()


def test_half_open_admits_limited_probes_and_closes_on_success() -> None:
    breaker, clock = _breaker(threshold=1, open_s=5, probes=1)
    breaker.record_failure(SourceTimeout("slow"))
    clock.now += 5
    breaker.acquire()  # the probe
    with pytest.raises(SourceUnavailable, match="probe is in flight"):
        breaker.acquire()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.acquire()
    breaker.acquire()


def test_a_failed_probe_reopens_for_a_full_period() -> None:
    breaker, clock = _breaker(threshold=3, open_s=5)
    for _ in range(3):
        breaker.record_failure(SourceTimeout("slow"))
    clock.now += 6
    breaker.acquire()
    breaker.record_failure(SourceTimeout("still slow"))  # one failure in half-open is enough
    assert breaker.state == "open"
    clock.now += 4.9
    assert breaker.state == "open"
    clock.now += 0.2
    assert breaker.state == "half_open"


def test_a_neutral_outcome_frees_the_probe_slot() -> None:
    breaker, clock = _breaker(threshold=1, open_s=1)
    breaker.record_failure(SourceTimeout("slow"))
    clock.now += 1
    breaker.acquire()
    breaker.record(ConnectorBug("ours"))
    assert breaker.state == "half_open"
    breaker.acquire()  # the slot is free again


@pytest.mark.parametrize(
    ("error", "state"),
    [(SourceTimeout("t"), "open"), (SourceUnavailable("u"), "open"), (PayloadError("p"), "open"),
     (SourceRejected("r"), "closed"), (ConnectorBug("b"), "closed"), (None, "closed")],
)
def test_which_errors_count(error: Exception | None, state: str) -> None:
    breaker, _ = _breaker(threshold=1)
    breaker.record(error)
    assert breaker.state == state


def test_snapshot_reports_times_and_last_error() -> None:
    breaker, clock = _breaker(threshold=1, open_s=30)
    breaker.record_success()
    clock.now += 5
    breaker.record_failure(SourceTimeout("no answer", source="src"))
    snap = breaker.snapshot()
    assert snap.state == "open" and snap.consecutive_failures == 1
    assert snap.last_error == "src: SourceTimeout: no answer"
    assert snap.last_success_at is not None and snap.last_failure_at is not None
    assert (snap.last_failure_at - snap.last_success_at).total_seconds() == pytest.approx(5)
    assert (snap.next_probe_at - snap.last_failure_at).total_seconds() == pytest.approx(30)


def test_breaker_is_thread_safe_under_contention() -> None:
    breaker, _ = _breaker(threshold=10_000)
    def hammer() -> None:
        for _ in range(1000):
            breaker.record_failure(SourceTimeout("x"))
    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.snapshot().consecutive_failures == 8000


def test_registry_is_per_source_and_updates_thresholds_keeping_state() -> None:
    a = breaker_for("a", BreakerConfig(1, 60))
    a.record_failure(SourceTimeout("x"))
    assert breaker_for("a") is a and breaker_for("b") is not a
    breaker_for("a", BreakerConfig(5, 10))
    assert a.config.failure_threshold == 5 and a.state == "open"


def test_deadline_counts_down_and_nests_to_the_earlier() -> None:
    clock = Clock()
    deadline = Deadline(2.0, clock=clock)
    clock.now += 1.5
    assert deadline.remaining_s() == pytest.approx(0.5) and not deadline.expired
    clock.now += 1
    assert deadline.remaining_s() == 0 and deadline.expired
    assert current_deadline() is None
    with use_deadline(1.0) as outer:
        with use_deadline(10.0) as inner:
            assert inner is outer and current_deadline() is outer
        with use_deadline(0.1) as tighter:
            assert tighter is not outer and current_deadline() is tighter
    assert current_deadline() is None


POLICY_ERRORS = [
    {"breaker": {"failure_threshold": 0}},
    {"breaker": {"open_s": -1}},
    {"breaker": "tight"},
    {"timeouts": {"read_s": "5"}},
    {"retry": "no"},
    {"bulkhead": {"max_concurrent": 2.5}},
    {"max_body_mb": True},
]


@pytest.mark.parametrize("options", POLICY_ERRORS, ids=[str(o) for o in POLICY_ERRORS])
def test_bad_policy_options_are_config_errors(options: dict) -> None:
    with pytest.raises(ConfigError):
        policy_from_options("src", options)


def test_policy_defaults_and_caps() -> None:
    default = policy_from_options("src", {}, timeout_s=5)
    assert (default.connect_s, default.read_s, default.pool_s, default.retry) == (3.0, 5.0, 2.0, True)
    tight = policy_from_options(
        "src",
        {"timeouts": {"connect_s": 9, "read_s": 9}, "breaker": {"failure_threshold": 2, "open_s": 5},
         "bulkhead": {"max_concurrent": 2, "max_queued": 0}, "max_body_mb": 1, "retry": False},
        timeout_s=4,
    )
    assert (tight.connect_s, tight.read_s) == (4.0, 4.0)  # capped by timeout_s
    assert tight.breaker == BreakerConfig(2, 5.0, 1)
    assert (tight.max_concurrent, tight.max_queued, tight.max_body_bytes, tight.retry) == (2, 0, 1024 * 1024, False)
