"""connectors.runtime.log: JSON lines, correlation ids across threads, the log file, and secret scrubbing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from connectors.errors import SourceTimeout
from connectors.runtime.log import current_correlation_id, log_call, log_event, page_run, redact

REPO = Path(__file__).resolve().parent.parent


def _lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_log_call_writes_one_json_line(capsys: pytest.CaptureFixture[str], info_logs: None) -> None:
    with page_run() as cid:
        error = SourceTimeout("slow", source="jaeger", hint="load")
        call_id = log_call("jaeger", "A", "spans", 12.345, "timeout", error)
    (line,) = _lines(capsys.readouterr().err)
    assert line["event"] == "source_call" and line["level"] == "warning"
    assert line["correlation_id"] == cid and line["call_id"] == call_id and len(call_id) == 12
    fields = (line["source"], line["ref_id"], line["kind"], line["duration_ms"], line["outcome"])
    assert fields == ("jaeger", "A", "spans", 12.3, "timeout")
    assert line["error"] == "jaeger: SourceTimeout: slow — check load" and line["error_type"] == "SourceTimeout"


def test_page_runs_nest_and_reset() -> None:
    assert current_correlation_id() is None
    with page_run("outer"):
        with page_run("inner"):
            assert current_correlation_id() == "inner"
        assert current_correlation_id() == "outer"
    assert current_correlation_id() is None


def test_threads_do_not_share_a_page_run() -> None:
    seen: dict[str, str | None] = {}

    def run(name: str) -> None:
        with page_run(name):
            threading.Event().wait(0.05)
            seen[name] = current_correlation_id()

    threads = [threading.Thread(target=run, args=(f"p{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {f"p{i}": f"p{i}" for i in range(4)}


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET http://admin:hunter2@prom:9090/api", "hunter2"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("url?api_key=XYZ123&service=a", "XYZ123"),
        ("dsn postgresql://u:pw-42@db/x", "pw-42"),
        ("token=tok_987", "tok_987"),
    ],
)
def test_redact_scrubs_credentials(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned and "[redacted]" in cleaned


def test_secret_looking_fields_are_dropped(capsys: pytest.CaptureFixture[str], info_logs: None) -> None:
    log_event("connect", password="p4ss", api_token="t0k", source="db", detail="Basic dXNlcjpwYXNz")
    (line,) = _lines(capsys.readouterr().err)
    assert line["password"] == "[redacted]" and line["api_token"] == "[redacted]" and line["source"] == "db"
    assert "dXNlcjpwYXNz" not in json.dumps(line)


def test_log_file_and_level_from_the_environment(tmp_path: Path) -> None:
    log_file = tmp_path / "faultline.log"
    code = (
        "from connectors.runtime.log import log_call, page_run\n"
        "with page_run('cid-1'):\n"
        "    log_call('s', 'A', 'spans', 1.0, 'ok')\n"
        "    log_call('s', 'B', 'spans', 1.0, 'error', 'boom')\n"
    )
    env = {"FAULTLINE_LOG_FILE": str(log_file), "FAULTLINE_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = _lines(log_file.read_text())  # the ok line is below WARNING
    assert line["ref_id"] == "B" and line["correlation_id"] == "cid-1"
    assert _lines(done.stderr) == [line]

