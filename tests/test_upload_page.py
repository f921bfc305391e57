"""Uploading a trace file in the UI: good files join every page's spans; bad ones load nothing, say why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from connectors.demo import demo_frames
from tests.conftest import DEMO_SMALL, app_test
from tests.trace_payloads import otlp_document, span, zipkin_document
from tests.trace_wire import Span

T0 = datetime(2026, 3, 14, 2, 40, tzinfo=UTC)


def _specs() -> list[Span]:
    root = span("ab" * 16, "cd" * 8, None, "uploaded-svc", "GET /pasted", T0, 11_000.0, http_status=200,
                attrs={"region": "eu-west-1", "client_version": "5.2.0"})
    child = span("ab" * 16, "ef" * 8, "cd" * 8, "uploaded-db", "SELECT", T0 + timedelta(milliseconds=5), 10_900.0)
    return [root, child]


@pytest.fixture()
def at(small_demo: Path) -> AppTest:
    app = app_test()
    app.run()
    app.switch_page("views/traces.py").run()
    assert not app.exception
    return app


@pytest.mark.parametrize("writer", [otlp_document, zipkin_document])
def test_uploaded_file_joins_the_spans(at: AppTest, writer: object) -> None:
    body = json.dumps(writer(_specs())).encode()  # type: ignore[operator]
    at.file_uploader(key="trace_upload").set_value(("pasted.json", body, "application/json")).run()
    assert not at.exception
    assert any("Loaded 2 spans (1 traces) from pasted.json" in s.value for s in at.success)
    services = set(at.session_state["uploaded_spans"]["pasted.json"].get_column("service"))
    assert services == {"uploaded-svc", "uploaded-db"}
    at.switch_page("views/service_map.py").run()
    assert not at.exception
    assert "uploaded-svc" in json.dumps([json.loads(c.proto.spec) for c in at.get("plotly_chart")])
    # an upload is every span of its file: the figures still say they cover all requests, one more than before
    demo_requests = demo_frames(**DEMO_SMALL)["spans"].filter(pl.col("is_root")).height
    assert any(f"Computed over all {demo_requests + 1:,} requests" in c.value for c in at.caption)


@pytest.mark.parametrize(("name", "body", "why"), [
    ("broken.json", b'{"resourceSpans": [ {"scopeSpans": ', "PayloadError"),
    ("notes.txt", b"the db is on fire", "PayloadError"),
    ("wrong.json", b'{"hello": "world"}', "PayloadError"),
])
def test_bad_file_loads_nothing_and_says_why(at: AppTest, name: str, body: bytes, why: str) -> None:
    at.file_uploader(key="trace_upload").set_value((name, body, "application/json")).run()
    assert not at.exception
    assert any(f"{name} was not loaded" in e.value and why in e.value for e in at.error)
    assert "uploaded_spans" not in at.session_state or not at.session_state["uploaded_spans"]
