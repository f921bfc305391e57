"""Connector types and how to build them from a :class:`config.SourceConfig`."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import config
from config import AppConfig, SourceConfig
from connectors.base import Connector
from connectors.errors import ConfigError
from connectors.runtime.source import runtime_for_source

# type name -> "module:factory"; a factory takes a SourceConfig and returns a Connector.
CONNECTOR_TYPES: dict[str, str] = {
    "demo": "connectors.demo:build",
    "jaeger": "connectors.traces.jaeger:build",
    "tempo": "connectors.traces.tempo:build",
    "zipkin": "connectors.traces.zipkin:build",
    "trace_files": "connectors.traces.files:build",
    "prometheus": "connectors.metrics.prometheus:build",
    "actuator": "connectors.metrics.actuator:build",
    "hystrix": "connectors.metrics.hystrix:build",
    "envoy": "connectors.metrics.envoy:build",
    "pgbouncer": "connectors.postgres:build",
    "clickhouse": "connectors.clickhouse:build",
}


def load_config(path: str | Path | None = None, secrets: Mapping[str, Any] | None = None) -> AppConfig:
    """:func:`config.load_config`, checking every source's type against :data:`CONNECTOR_TYPES`."""
    return config.load_config(path, secrets, known_types=CONNECTOR_TYPES)


def parse_config(raw: object, *, origin: str = "<config>", secrets: Mapping[str, Any] | None = None) -> AppConfig:
    """:func:`config.parse_config`, checking every source's type against :data:`CONNECTOR_TYPES`."""
    return config.parse_config(raw, origin=origin, secrets=secrets, known_types=CONNECTOR_TYPES)


def build_connector(source: SourceConfig) -> Connector:
    """Instantiate one connector and its runtime (policy, breaker, bulkhead; every source has one, HTTP or not).

    An import or option problem becomes ConfigError.
    """
    runtime_for_source(source)
    module_name, _, factory_name = CONNECTOR_TYPES[source.type].partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"connector type {source.type!r} is not available in this build: {exc}", source=source.name) from exc
    connector: Connector = factory(source)
    return connector


def build_all(config: AppConfig) -> dict[str, Connector]:
    return {source.name: build_connector(source) for source in config.sources}
