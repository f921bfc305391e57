"""The app's configuration: ``sources.yaml`` parsed into frozen dataclasses (no connector code here).

File shape (every key but ``sources`` is optional)::

    slo:
      default_ms: 2000            # a request slower than this is "slow" (bad)
      rules:                      # first match wins; omit service/operation to match any
        - {service: gateway, operation: "POST /checkout", ms: 3000}
    attributes:                   # which span attribute carries a role (default: OpenTelemetry names first)
      user: org.member_id         # roles: user, tenant, client_version, region, host, service_version
      tenant: org.id
    auth:                         # who may use the app once sign-in is on (``[auth]`` in secrets.toml)
      allow_domains: [example.com]  # e-mail domains (the part after @); omit both lists to allow any signed-in user
      allow_groups: [oncall]      # or membership of one of these groups (the ID token's ``groups`` claim)
    sources:
      - name: demo                # unique; shown in the UI and logs
        type: demo                # one of connectors.registry.CONNECTOR_TYPES
        timeout_s: 5              # per-call deadline (HTTP sources)
        options: {seed: 7, requests: 200000}

Precedence: explicit argument > ``FAULTLINE_SOURCES`` env var (a path) > ``./sources.yaml`` >
the built-in demo. Credentials never live here: ``options.secret`` names a
``[connections.<name>]`` table of ``.streamlit/secrets.toml``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from connectors.errors import ConfigError
from model.semconv import ROLE_NAMES

DEFAULT_SLO_MS = 2000.0
DEFAULT_PATH = Path("sources.yaml")


@dataclass(frozen=True)
class SloRule:
    ms: float
    service: str | None = None
    operation: str | None = None


@dataclass(frozen=True)
class SloConfig:
    default_ms: float = DEFAULT_SLO_MS
    rules: tuple[SloRule, ...] = ()
    objective: float = 0.99  # share of requests that must be good; 1 - objective is the error budget


@dataclass(frozen=True)
class WindowConfig:
    """The incident window: fixed ``start``/``end`` (UTC) or the last ``last_minutes`` before now."""

    start: datetime | None = None
    end: datetime | None = None
    last_minutes: float = 60.0


@dataclass(frozen=True)
class SourceConfig:
    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 5.0
    secrets: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthConfig:
    """Who may use Faultline once signed in: e-mail domains (lower case) or groups; both empty: anyone signed in."""

    allow_domains: tuple[str, ...] = ()
    allow_groups: tuple[str, ...] = ()

    @property
    def restricted(self) -> bool:
        return bool(self.allow_domains or self.allow_groups)


@dataclass(frozen=True)
class AppConfig:
    sources: tuple[SourceConfig, ...]
    slo: SloConfig = SloConfig()
    window: WindowConfig | None = None
    origin: str = "built-in demo"
    attributes: Mapping[str, str] = field(default_factory=dict)  # role -> attribute key (model.semconv)
    auth: AuthConfig = AuthConfig()


DEMO_CONFIG = AppConfig(sources=(SourceConfig(name="demo", type="demo"),))


def resolve_path(explicit: str | Path | None = None) -> Path | None:
    """The config file to read, by precedence; None means the built-in demo."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("FAULTLINE_SOURCES")
    if env:
        return Path(env)
    return DEFAULT_PATH if DEFAULT_PATH.exists() else None


def load_config(path: str | Path | None = None, secrets: Mapping[str, Any] | None = None,
                known_types: Collection[str] | None = None) -> AppConfig:
    """Parse and check the config; every mistake raises ConfigError naming the file and the key."""
    resolved = resolve_path(path)
    if resolved is None:
        return DEMO_CONFIG
    try:
        raw = yaml.safe_load(resolved.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {resolved} does not exist", hint="FAULTLINE_SOURCES or ./sources.yaml") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{resolved} is not valid YAML: {_first_line(exc)}", hint="the YAML syntax") from exc
    return parse_config(raw, origin=str(resolved), secrets=secrets or {}, known_types=known_types)


def parse_config(raw: object, *, origin: str = "<config>", secrets: Mapping[str, Any] | None = None,
                 known_types: Collection[str] | None = None) -> AppConfig:
    """Check an already-parsed YAML document."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping with a 'sources' list")
    unknown = set(raw) - {"sources", "slo", "window", "attributes", "auth"}
    if unknown:
        raise ConfigError(f"{origin}: unknown top-level key(s) {sorted(unknown)}; "
                          "expected 'sources', 'slo', 'window', 'attributes', 'auth'")
    sources_raw = raw.get("sources")
    if not isinstance(sources_raw, list) or not sources_raw:
        raise ConfigError(f"{origin}: 'sources' must be a non-empty list")
    sources = tuple(_source(item, i, origin, secrets or {}, known_types) for i, item in enumerate(sources_raw))
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{origin}: duplicate source name(s) {dupes}")
    return AppConfig(sources=sources, slo=_slo(raw.get("slo"), origin), window=_window(raw.get("window"), origin),
                     origin=origin, attributes=_attributes(raw.get("attributes"), origin),
                     auth=_auth(raw.get("auth"), origin))


def _source(item: object, index: int, origin: str, secrets: Mapping[str, Any],
            known_types: Collection[str] | None) -> SourceConfig:
    where = f"{origin}: sources[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with 'name' and 'type'")
    name, kind = item.get("name"), item.get("type")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: 'name' must be a non-empty string")
    if known_types is not None and kind not in known_types:
        raise ConfigError(f"{where} ({name}): unknown connector type {kind!r}; known types: {', '.join(known_types)}")
    options = item.get("options", {}) or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where} ({name}): 'options' must be a mapping")
    timeout = item.get("timeout_s", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise ConfigError(f"{where} ({name}): 'timeout_s' must be a number of seconds in (0, 300]")
    secret_name = options.get("secret", name)
    source_secrets = secrets.get("connections", {}).get(secret_name, {}) if isinstance(secrets, Mapping) else {}
    return SourceConfig(name=name, type=str(kind), options=options, timeout_s=float(timeout), secrets=source_secrets)


def _slo(raw: object, origin: str) -> SloConfig:
    if raw is None:
        return SloConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: 'slo' must be a mapping")
    default = raw.get("default_ms", DEFAULT_SLO_MS)
    if isinstance(default, bool) or not isinstance(default, (int, float)) or default <= 0:
        raise ConfigError(f"{origin}: slo.default_ms must be a positive number")
    rules = []
    for i, rule in enumerate(raw.get("rules", []) or []):
        if not isinstance(rule, dict) or not isinstance(rule.get("ms"), (int, float)) or rule["ms"] <= 0:
            raise ConfigError(f"{origin}: slo.rules[{i}] needs a positive 'ms'")
        rules.append(SloRule(ms=float(rule["ms"]), service=rule.get("service"), operation=rule.get("operation")))
    objective = raw.get("objective", 0.99)
    if isinstance(objective, bool) or not isinstance(objective, (int, float)) or not 0 < objective < 1:
        raise ConfigError(f"{origin}: slo.objective must be a number between 0 and 1 (e.g. 0.99)")
    return SloConfig(default_ms=float(default), rules=tuple(rules), objective=float(objective))


def _attributes(raw: object, origin: str) -> dict[str, str]:
    """``attributes: {user: org.member_id, …}``: role -> attribute key, roles from model.semconv."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: 'attributes' must be a mapping of role to attribute name "
                          "(e.g. {user: org.member_id, tenant: org.id})")
    out = {}
    for role, key in raw.items():
        if role not in ROLE_NAMES:
            raise ConfigError(f"{origin}: attributes: unknown role {role!r}; known roles: {', '.join(ROLE_NAMES)}")
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{origin}: attributes.{role} must be a non-empty attribute name (e.g. org.member_id)")
        out[str(role)] = key.strip()
    return out


def _auth(raw: object, origin: str) -> AuthConfig:
    if raw is None:
        return AuthConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: 'auth' must be a mapping, e.g. auth: {{allow_domains: [example.com]}}")
    unknown = set(raw) - {"allow_domains", "allow_groups"}
    if unknown:
        raise ConfigError(f"{origin}: auth: unknown key(s) {sorted(unknown)}; expected 'allow_domains', 'allow_groups'")
    domains = tuple(d.lower().removeprefix("@") for d in _names(raw.get("allow_domains"), "allow_domains", origin))
    bad = [d for d in domains if "@" in d or "." not in d or any(c.isspace() for c in d)]
    if bad:
        raise ConfigError(f"{origin}: auth.allow_domains: {bad[0]!r} is not an e-mail domain (e.g. example.com)")
    return AuthConfig(allow_domains=domains, allow_groups=_names(raw.get("allow_groups"), "allow_groups", origin))


def _names(raw: object, key: str, origin: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) and v.strip() for v in raw):
        raise ConfigError(f"{origin}: auth.{key} must be a list of non-empty strings")
    return tuple(v.strip() for v in raw)


def _window(raw: object, origin: str) -> WindowConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: 'window' must be a mapping with start/end or last_minutes")
    try:
        start, end = (_utc(raw[k]) if raw.get(k) is not None else None for k in ("start", "end"))
        last = float(raw.get("last_minutes", 60))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: window: {exc} (use ISO 8601 times and a number of minutes)") from exc
    if (start is None) != (end is None) or (start and end and start >= end) or last <= 0:
        raise ConfigError(f"{origin}: window needs both start < end, or a positive last_minutes")
    return WindowConfig(start=start, end=end, last_minutes=last)


def _utc(value: object) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
