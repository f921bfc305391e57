"""Where the data comes from: the config, secrets, the connectors, the incident window and the budgets.

Connector instances are kept in ``st.cache_resource`` keyed by the config, so an edit rebuilds them.
Nothing here fetches frames (that is :mod:`ui.frames`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import streamlit as st

from config import AppConfig, SloConfig, resolve_path
from connectors.base import Connector
from connectors.demo import window as demo_window
from connectors.errors import ConfigError, ConnectorError
from connectors.registry import build_connector, load_config
from connectors.runtime.health import SourceStatus, check_all
from ui.problems import Problem, cannot_start
from ui.snapshot_mode import snapshot_window

log = logging.getLogger("faultline.ui")
DEADLINE_S = 8.0
LOCAL_DEADLINE_S = 900.0
WINDOW_BUDGET_TRACES = 8000


@dataclass(frozen=True)
class Built:
    """The connectors that started, and a typed problem for each source that could not."""

    connectors: dict[str, Connector]
    problems: tuple[Problem, ...]


def _config_key() -> tuple[str, float]:
    path = resolve_path()
    if path is None:
        return ("", 0.0)
    try:
        return (str(path), path.stat().st_mtime)
    except OSError:
        return (str(path), -1.0)


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_config(path: str, mtime: float) -> AppConfig | ConfigError:
    try:
        return load_config(Path(path) if path else None, secrets=_secrets())
    except ConfigError as exc:
        log.error("config error: %s", exc.describe())
        return exc


def _secrets() -> dict[str, object]:
    try:
        return {"connections": dict(st.secrets.get("connections", {}))}
    except Exception:  # noqa: BLE001 — no secrets.toml (or a broken one): Streamlit raises; no secrets then
        return {}


def app_config() -> AppConfig:
    """The parsed config; a broken config stops the page with a clear message (never a trace)."""
    loaded = _load_config(*_config_key())
    if isinstance(loaded, ConfigError):
        st.error(f"**Configuration problem** — {loaded.message}")
        st.caption("Fix the file and reload the page. Faultline does not guess at a broken configuration.")
        st.stop()
    assert isinstance(loaded, AppConfig)
    return loaded


def config_key() -> str:
    """A string that changes whenever the configuration does (part of every data generation)."""
    return repr(app_config())


def slo() -> SloConfig:
    return app_config().slo


@st.cache_resource(show_spinner=False, max_entries=4)
def _connectors(config_key: str, _config: AppConfig) -> Built:
    built: dict[str, Connector] = {}
    problems: list[Problem] = []
    for source in _config.sources:
        try:
            built[source.name] = build_connector(source)
        except ConnectorError as exc:
            log.error("cannot build source %s: %s", source.name, exc.describe())
            problems.append(cannot_start(source.name, exc, exc.describe()))
        except Exception as exc:  # a connector constructor bug must not take the page down
            log.exception("connector %s failed to build", source.name)
            message = f"{source.name}: cannot start ({type(exc).__name__}: {exc})"
            problems.append(cannot_start(source.name, None, message))
    return Built(built, tuple(problems))


def connectors() -> Built:
    """Every configured source's connector (built once per config), with the sources that failed to start."""
    config = app_config()
    return _connectors(repr(config), config)


def incident_window() -> tuple[datetime, datetime]:
    """The window every page works in: an open snapshot's, else sources.yaml's, else the last N minutes."""
    config = app_config()
    snap_start, snap_end = snapshot_window()
    if snap_start and snap_end:
        return snap_start, snap_end
    window = config.window
    if window and window.start and window.end:
        return window.start, window.end
    if window is None and any(s.type == "demo" for s in config.sources):
        return demo_window()
    minutes = window.last_minutes if window else 60.0
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(minutes=minutes), end


def _env_float(name: str, default: float, floor: float) -> float:
    try:
        return max(floor, float(os.environ.get(name, default)))
    except ValueError:
        return default


def deadline_s() -> float:
    """The page's budget for one round of backend queries (FAULTLINE_DEADLINE_S, default 8 s)."""
    return _env_float("FAULTLINE_DEADLINE_S", DEADLINE_S, 0.5)


def local_deadline_s() -> float:
    """How long a read of local files may run in the background (FAULTLINE_LOCAL_DEADLINE_S, default 900 s).

    Not the page deadline: that bounds calls to backends, and a big file the user pointed at takes as
    long as it takes; the page shows its progress meanwhile.
    """
    return _env_float("FAULTLINE_LOCAL_DEADLINE_S", LOCAL_DEADLINE_S, 1.0)


def window_budget_traces() -> int:
    """How many traces a search-only backend samples for window-wide analysis (FAULTLINE_WINDOW_BUDGET_TRACES)."""
    return int(_env_float("FAULTLINE_WINDOW_BUDGET_TRACES", WINDOW_BUDGET_TRACES, 1))


def source_statuses() -> list[SourceStatus]:
    """Health, latency, breaker and last error of every started source, checked now under the page deadline."""
    config = app_config()
    return check_all(connectors().connectors, deadline_s(), sources={s.name: s for s in config.sources})
