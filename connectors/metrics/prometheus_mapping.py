"""Load and check the YAML that maps Prometheus series onto breakers/pools/events frames.

The built-in file is ``connectors/metrics/prometheus_mappings.yaml`` (its header documents every key).
Extra files (source option ``mappings``) replace families/rules of the same name and append new
ones. Every mistake raises ConfigError naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping as AnyMapping
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connectors.errors import ConfigError

BUILTIN_PATH = Path(__file__).with_name("prometheus_mappings.yaml")
BREAKER_FIELDS = ("failure_rate", "slow_call_rate", "calls", "not_permitted_calls")
POOL_FIELDS = ("active", "idle", "pending", "max", "timeouts", "acquire_p99_ms")
FIELDS = {"breakers": BREAKER_FIELDS, "pools": POOL_FIELDS}
TRIGGERS = ("increase", "change", "reset", "nonzero")
AGGREGATES = ("sum", "max", "min")


@dataclass(frozen=True)
class FieldSpec:
    metrics: tuple[str, ...]
    combine: str = "first"  # first | sum across the metric list
    match: tuple[tuple[str, str], ...] = ()
    aggregate: str = "sum"
    scale: float = 1.0
    negative_is_null: bool = False
    zero_is_null: bool = False
    subtract: FieldSpec | None = None
    rename: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StateSpec:
    metric: str | None = None
    label: str | None = None
    map: tuple[tuple[str, str], ...] = ()
    open_when_any: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    name_labels: tuple[str, ...]
    fields: tuple[tuple[str, FieldSpec], ...]
    name_mode: str = "first"
    name_prefix: str = ""
    instance_labels: tuple[str, ...] = ()
    state: StateSpec | None = None

    def metrics(self) -> set[str]:
        names = set(self.state.open_when_any) if self.state else set()
        if self.state and self.state.metric:
            names.add(self.state.metric)
        for _, spec in self.fields:
            names |= _spec_metrics(spec)
        return names


@dataclass(frozen=True)
class EventRule:
    name: str
    kind: str
    trigger: str
    metrics: tuple[str, ...] = ()
    query: str | None = None
    service_labels: tuple[str, ...] = ()
    description: str = "{kind} on {service}"


@dataclass(frozen=True)
class MappingSet:
    families: tuple[Family, ...] = ()
    events: tuple[EventRule, ...] = ()
    origins: tuple[str, ...] = field(default_factory=tuple)

    def of_kind(self, kind: str) -> tuple[Family, ...]:
        return tuple(f for f in self.families if f.kind == kind)

    def metrics(self, kind: str) -> list[str]:
        if kind == "events":
            return sorted({m for r in self.events if r.query is None for m in r.metrics})
        return sorted({m for f in self.of_kind(kind) for m in f.metrics()})


def load_mappings(extra: Sequence[str | Path] = (), *, builtin: bool = True) -> MappingSet:
    """The built-in mapping plus ``extra`` files, later files overriding same-named entries."""
    paths = ([BUILTIN_PATH] if builtin else []) + [Path(p) for p in extra]
    families: dict[str, Family] = {}
    rules: dict[str, EventRule] = {}
    for path in paths:
        parsed = parse_mapping(_read(path), origin=str(path))
        families.update({f.name: f for f in parsed.families})
        rules.update({r.name: r for r in parsed.events})
    return MappingSet(tuple(families.values()), tuple(rules.values()), tuple(str(p) for p in paths))


def parse_mapping(raw: object, origin: str = "<mapping>") -> MappingSet:
    """Check one parsed YAML mapping document."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a mapping file must be a YAML mapping with 'families' and/or 'events'")
    unknown = set(raw) - {"version", "families", "events"}
    if unknown:
        raise ConfigError(f"{origin}: unknown top-level key(s) {sorted(unknown)}")
    if raw.get("version", 1) != 1:
        raise ConfigError(f"{origin}: unsupported mapping version {raw.get('version')!r}; expected 1")
    families = tuple(_family(item, f"{origin}: families[{i}]") for i, item in enumerate(_list(raw, "families", origin)))
    events = tuple(_rule(item, f"{origin}: events[{i}]") for i, item in enumerate(_list(raw, "events", origin)))
    return MappingSet(families, events, (origin,))


def _read(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"mapping file {path} does not exist", hint="options.mappings") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"mapping file {path} is not valid YAML: {first}", hint="the YAML syntax") from exc


def _list(raw: AnyMapping[str, Any], key: str, origin: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise ConfigError(f"{origin}: '{key}' must be a list")
    return value


def _names(value: object, where: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items) or (not items and not allow_empty):
        raise ConfigError(f"{where} must be a name or a list of names")
    return tuple(items)


def _family(item: object, where: str) -> Family:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping")
    allowed = {"name", "kind", "name_labels", "name_mode", "name_prefix", "instance_labels", "state", "fields"}
    if set(item) - allowed:
        raise ConfigError(f"{where}: unknown key(s) {sorted(set(item) - allowed)}; allowed: {sorted(allowed)}")
    name, kind = item.get("name"), item.get("kind")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: 'name' must be a non-empty string")
    where = f"{where} ({name})"
    if kind not in FIELDS:
        raise ConfigError(f"{where}: 'kind' must be one of {sorted(FIELDS)}, got {kind!r}")
    if item.get("name_mode", "first") not in ("first", "join"):
        raise ConfigError(f"{where}: 'name_mode' must be 'first' or 'join'")
    fields_raw = item.get("fields") or {}
    if not isinstance(fields_raw, dict):
        raise ConfigError(f"{where}: 'fields' must be a mapping of column -> spec")
    bad = set(fields_raw) - set(FIELDS[kind])
    if bad:
        raise ConfigError(f"{where}: unknown {kind} column(s) {sorted(bad)}; allowed: {list(FIELDS[kind])}")
    fields = tuple((col, _spec(spec, f"{where}.fields.{col}")) for col, spec in fields_raw.items())
    state = _state(item["state"], f"{where}.state") if item.get("state") is not None else None
    if state is not None and kind != "breakers":
        raise ConfigError(f"{where}: 'state' only applies to kind breakers")
    if not fields and state is None:
        raise ConfigError(f"{where}: needs at least one field or a state")
    return Family(
        name=name, kind=kind, name_labels=_names(item.get("name_labels"), f"{where}.name_labels"),
        fields=fields, name_mode=item.get("name_mode", "first"), name_prefix=str(item.get("name_prefix", "")),
        instance_labels=_names(item.get("instance_labels", []), f"{where}.instance_labels", allow_empty=True), state=state,
    )


def _spec(raw: object, where: str) -> FieldSpec:
    if isinstance(raw, (str, list)):
        return FieldSpec(metrics=_names(raw, where))
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a metric name, a list of names or a mapping")
    allowed = {"metric", "combine", "match", "aggregate", "scale", "negative_is_null", "zero_is_null", "subtract", "rename"}
    if set(raw) - allowed:
        raise ConfigError(f"{where}: unknown key(s) {sorted(set(raw) - allowed)}; allowed: {sorted(allowed)}")
    if raw.get("combine", "first") not in ("first", "sum"):
        raise ConfigError(f"{where}.combine must be 'first' or 'sum'")
    if raw.get("aggregate", "sum") not in AGGREGATES:
        raise ConfigError(f"{where}.aggregate must be one of {AGGREGATES}")
    scale = raw.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ConfigError(f"{where}.scale must be a number")
    return FieldSpec(
        metrics=_names(raw.get("metric"), f"{where}.metric"), combine=raw.get("combine", "first"),
        match=_pairs(raw.get("match"), f"{where}.match"), aggregate=raw.get("aggregate", "sum"), scale=float(scale),
        negative_is_null=bool(raw.get("negative_is_null", False)), zero_is_null=bool(raw.get("zero_is_null", False)),
        subtract=_spec(raw["subtract"], f"{where}.subtract") if raw.get("subtract") is not None else None,
        rename=_pairs(raw.get("rename"), f"{where}.rename"),
    )


def _pairs(raw: object, where: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of label -> value")
    return tuple((str(k), str(v)) for k, v in raw.items())


def _state(raw: object, where: str) -> StateSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    if "open_when_any" in raw:
        return StateSpec(open_when_any=_names(raw["open_when_any"], f"{where}.open_when_any"))
    if not isinstance(raw.get("metric"), str) or not isinstance(raw.get("label"), str):
        raise ConfigError(f"{where} needs 'metric' and 'label', or 'open_when_any'")
    return StateSpec(metric=raw["metric"], label=raw["label"], map=_pairs(raw.get("map"), f"{where}.map"))


def _rule(item: object, where: str) -> EventRule:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping")
    allowed = {"name", "kind", "trigger", "metric", "query", "service_labels", "description"}
    if set(item) - allowed:
        raise ConfigError(f"{where}: unknown key(s) {sorted(set(item) - allowed)}; allowed: {sorted(allowed)}")
    name, kind = item.get("name"), item.get("kind")
    if not isinstance(name, str) or not name or not isinstance(kind, str) or not kind:
        raise ConfigError(f"{where}: 'name' and 'kind' must be non-empty strings")
    if item.get("trigger") not in TRIGGERS:
        raise ConfigError(f"{where} ({name}): 'trigger' must be one of {TRIGGERS}")
    if ("metric" in item) == ("query" in item):
        raise ConfigError(f"{where} ({name}): give exactly one of 'metric' or 'query'")
    query = item.get("query")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise ConfigError(f"{where} ({name}): 'query' must be a PromQL string")
    return EventRule(
        name=name, kind=kind, trigger=item["trigger"],
        metrics=_names(item["metric"], f"{where}.metric") if "metric" in item else (), query=query,
        service_labels=_names(item.get("service_labels", []), f"{where}.service_labels", allow_empty=True),
        description=str(item.get("description", "{kind} on {service}")),
    )


def _spec_metrics(spec: FieldSpec) -> set[str]:
    return set(spec.metrics) | (_spec_metrics(spec.subtract) if spec.subtract else set())
