"""Per-source resilience policy, read from a source's ``options`` in ``sources.yaml``.

Every key is optional; defaults shown::

    options:
      timeouts: {connect_s: 3, read_s: <timeout_s>, pool_s: 2}   # each capped by timeout_s
      retry: true                       # one jittered retry of idempotent reads
      breaker: {failure_threshold: 3, open_s: 30, half_open_max_calls: 1}
      bulkhead: {max_concurrent: 4, max_queued: 8}
      max_body_mb: 64

Pure parsing: ``connectors.runtime.source`` builds each source's runtime (breaker, bulkhead) from it,
for every source, HTTP or not; ``http.make_client`` takes its timeouts from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.errors import ConfigError

# The option keys read here; a connector that checks its own options must let these through.
RESILIENCE_OPTIONS = frozenset({"timeouts", "retry", "breaker", "bulkhead", "max_body_mb"})


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 3
    open_s: float = 30.0
    half_open_max_calls: int = 1


@dataclass(frozen=True)
class SourcePolicy:
    connect_s: float = 3.0
    read_s: float = 5.0
    pool_s: float = 2.0
    retry: bool = True
    breaker: BreakerConfig = BreakerConfig()
    max_concurrent: int = 4
    max_queued: int = 8
    max_body_bytes: int = 64 * 1024 * 1024


def policy_from_options(name: str, options: Mapping[str, Any], timeout_s: float = 5.0) -> SourcePolicy:
    """Read the resilience keys of a source's ``options``; a bad value raises ConfigError."""
    where = f"sources[{name}].options"
    timeouts = _mapping(options.get("timeouts"), f"{where}.timeouts")
    breaker = _mapping(options.get("breaker"), f"{where}.breaker")
    bulkhead = _mapping(options.get("bulkhead"), f"{where}.bulkhead")
    retry = options.get("retry", True)
    if not isinstance(retry, bool):
        raise ConfigError(f"{where}.retry must be true or false", source=name)
    return SourcePolicy(
        connect_s=min(timeout_s, _number(timeouts, "connect_s", 3.0, where)),
        read_s=min(timeout_s, _number(timeouts, "read_s", timeout_s, where)),
        pool_s=min(timeout_s, _number(timeouts, "pool_s", 2.0, where)),
        retry=retry,
        breaker=BreakerConfig(
            failure_threshold=int(_number(breaker, "failure_threshold", 3, where, integer=True)),
            open_s=_number(breaker, "open_s", 30.0, where),
            half_open_max_calls=int(_number(breaker, "half_open_max_calls", 1, where, integer=True)),
        ),
        max_concurrent=int(_number(bulkhead, "max_concurrent", 4, where, integer=True)),
        max_queued=int(_number(bulkhead, "max_queued", 8, where, integer=True, allow_zero=True)),
        max_body_bytes=int(_number(options, "max_body_mb", 64, where) * 1024 * 1024),
    )


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    return value


def _number(raw: Mapping[str, Any], key: str, default: float, where: str, *, integer: bool = False, allow_zero: bool = False) -> float:
    value = raw.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value > 0 or (allow_zero and value == 0))
    if not ok or (integer and int(value) != value):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{where}: '{key}' must be {kind} {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)
