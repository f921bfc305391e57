"""A breaker + pool incident written as OpenMetrics text by our own code, with its ground truth.

Used to backfill a real Prometheus (``tests/services.py``) and to check what the connector reads
back. Times are fixed so the test is deterministic; every value is a function of the offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
STEP_S = 15
DURATION_S = 20 * 60
INSTANCE = "app-1:8080"


@dataclass(frozen=True)
class Truth:
    start: datetime = T0
    end: datetime = T0 + timedelta(seconds=DURATION_S - STEP_S)
    open_s: tuple[int, int] = (300, 420)  # gauge says open in [300, 420)
    half_open_s: tuple[int, int] = (420, 435)
    short_open_s: int = 720  # not_permitted_calls jumps here; the 15 s gauge never sees it
    short_open_blocked: int = 37
    saturated_s: tuple[int, int] = (480, 660)  # pool active == max, pending > 0
    pool_max: int = 10
    deploy_s: int = 180
    election_s: int = 540
    breaker: str = "payments"
    pool: str = "HikariPool-1"
    states: dict[int, str] = field(default_factory=dict)


def state_at(t: int, truth: Truth) -> str:
    if truth.open_s[0] <= t < truth.open_s[1]:
        return "open"
    if truth.half_open_s[0] <= t < truth.half_open_s[1]:
        return "half_open"
    return "closed"


def not_permitted_at(t: int, truth: Truth) -> int:
    """Cumulative blocked calls: 5/s while open, plus the short open's burst."""
    blocked = 5 * max(0, min(t, truth.open_s[1]) - truth.open_s[0])
    return blocked + (truth.short_open_blocked if t >= truth.short_open_s else 0)


def pool_at(t: int, truth: Truth) -> dict[str, float]:
    saturated = truth.saturated_s[0] <= t < truth.saturated_s[1]
    active = truth.pool_max if saturated else 3
    return {
        "active": active,
        "idle": truth.pool_max - active,
        "pending": 5 if saturated else 0,
        "max": truth.pool_max,
        "timeouts": max(0, min(t, truth.saturated_s[1]) - truth.saturated_s[0]) // 30,
        "acquire_max_s": 2.5 if saturated else 0.004,
    }


def incident_openmetrics(truth: Truth = Truth()) -> str:
    """OpenMetrics text (series grouped, `# EOF` terminated) for `promtool tsdb create-blocks-from openmetrics`."""
    offsets = range(0, DURATION_S, STEP_S)
    base = int(truth.start.timestamp())
    b = f'name="{truth.breaker}",instance="{INSTANCE}",application="checkout"'
    p = f'pool="{truth.pool}",instance="{INSTANCE}"'
    series: list[tuple[str, callable]] = []
    for state in ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only"):
        name = f'resilience4j_circuitbreaker_state{{{b},state="{state}"}}'
        series.append((name, lambda t, s=state: 1 if state_at(t, truth) == s else 0))
    series += [
        (f'resilience4j_circuitbreaker_failure_rate{{{b}}}',
         lambda t: 62.5 if 270 <= t < 300 else (-1 if t < 30 else 4.0)),
        (f'resilience4j_circuitbreaker_slow_call_rate{{{b}}}', lambda t: 0.0),
        (f'resilience4j_circuitbreaker_calls_seconds_count{{{b},kind="successful"}}', lambda t: 9 * t),
        (f'resilience4j_circuitbreaker_calls_seconds_count{{{b},kind="failed"}}', lambda t: t),
        (f'resilience4j_circuitbreaker_not_permitted_calls_total{{{b},kind="not_permitted"}}',
         lambda t: not_permitted_at(t, truth)),
        (f"hikaricp_connections_active{{{p}}}", lambda t: pool_at(t, truth)["active"]),
        (f"hikaricp_connections_idle{{{p}}}", lambda t: pool_at(t, truth)["idle"]),
        (f"hikaricp_connections_pending{{{p}}}", lambda t: pool_at(t, truth)["pending"]),
        (f"hikaricp_connections_max{{{p}}}", lambda t: pool_at(t, truth)["max"]),
        (f"hikaricp_connections_timeout_total{{{p}}}", lambda t: pool_at(t, truth)["timeouts"]),
        (f"hikaricp_connections_acquire_seconds_max{{{p}}}", lambda t: pool_at(t, truth)["acquire_max_s"]),
        ('kube_deployment_status_observed_generation{deployment="checkout",namespace="prod"}',
         lambda t: 5 if t >= truth.deploy_s else 4),
        ('leader{job="etcd",instance="etcd-1"}', lambda t: 0 if t >= truth.election_s else 1),
        ('leader{job="etcd",instance="etcd-2"}', lambda t: 1 if t >= truth.election_s else 0),
    ]
    lines = [f"{name} {value(t):g} {base + t}" for name, value in series for t in offsets]
    return "\n".join(lines) + "\n# EOF\n"
