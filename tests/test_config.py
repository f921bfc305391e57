"""sources.yaml: precedence, and every mistake gives a clear ConfigError (never a stack trace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import DEMO_CONFIG
from connectors.errors import ConfigError
from connectors.registry import build_all, load_config, parse_config

GOOD = "sources:\n  - {name: demo, type: demo, options: {requests: 5000}}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [\n  - name: x", "not valid YAML"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("sources: []\n", "non-empty list"),
        ("sources:\n  - {name: a, type: kafka}\n", "unknown connector type 'kafka'"),
        ("sources:\n  - {type: demo}\n", "'name' must be a non-empty string"),
        ("sources:\n  - {name: a, type: demo, timeout_s: -1}\n", "timeout_s"),
        ("sources:\n  - {name: a, type: demo}\n  - {name: a, type: demo}\n", "duplicate source name"),
        ("sources:\n  - {name: a, type: demo, options: [1]}\n", "'options' must be a mapping"),
        (GOOD + "slo: {default_ms: -5}\n", "default_ms"),
        (GOOD + "slo: {objective: 99}\n", "objective"),
        (GOOD + "window: {start: 2026-01-01T02:00:00Z}\n", "window"),
        (GOOD + "colour: red\n", "unknown top-level key"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value) or "YAML" in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_precedence_explicit_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env, local = tmp_path / "explicit.yaml", tmp_path / "env.yaml", tmp_path / "sources.yaml"
    for path, name in ((explicit, "explicit"), (env, "env"), (local, "local")):
        path.write_text(f"sources:\n  - {{name: {name}, type: demo}}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAULTLINE_SOURCES", str(env))
    assert load_config(explicit).sources[0].name == "explicit"
    assert load_config().sources[0].name == "env"
    monkeypatch.delenv("FAULTLINE_SOURCES")
    assert load_config().sources[0].name == "local"
    local.unlink()
    assert load_config() == DEMO_CONFIG


def test_secrets_are_attached_by_source_name() -> None:
    config = parse_config({"sources": [{"name": "jaeger", "type": "jaeger", "options": {"url": "http://x"}}]},
                          secrets={"connections": {"jaeger": {"token": "s3cret"}}})
    assert config.sources[0].secrets == {"token": "s3cret"}
    assert "s3cret" not in repr(config.sources[0].options)


def test_repo_sources_yaml_builds_the_demo() -> None:
    config = load_config(Path(__file__).resolve().parent.parent / "sources.yaml")
    assert config.window is not None and config.window.start is not None
    assert config.slo.rules[0].ms == 3000
    built = build_all(parse_config({"sources": [{"name": "d", "type": "demo", "options": {"requests": 5000}}]}))
    assert "spans" in built["d"].capabilities
