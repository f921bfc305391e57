"""Benchmark: parse + convert a 100k-span trace file in each wire format (OTLP/JSON, Jaeger v1, Zipkin v2).

Run: ``.venv/bin/python -m bench.trace_convert_benchmark [spans]``. The payloads are generated here
(10 spans per trace, 6 attributes per span, 4 services), written as JSON bytes, then converted with
``connectors.traces.files.convert_bytes`` exactly as an upload would be. Prints wall and CPU seconds per format.
"""

from __future__ import annotations

import json
import time
from typing import TypedDict

from connectors.traces.files import convert_bytes
from model.validate import validate

BASE_NS = 1_700_000_000_000_000_000


class _Span(TypedDict):
    trace: str
    span: str
    parent: str | None
    service: str
    name: str
    start_ns: int
    dur_ns: int
    error: bool
    attrs: dict[str, str]


def _spans(n: int) -> list[_Span]:
    out: list[_Span] = []
    for i in range(n):
        trace, pos = divmod(i, 10)
        out.append({"trace": f"{trace + 1:032x}", "span": f"{i + 1:016x}",
                    "parent": None if pos == 0 else f"{trace * 10 + 1:016x}", "service": f"svc{i % 4}",
                    "name": f"op{i % 7}", "start_ns": BASE_NS + i * 1000, "dur_ns": 5_000_000 + (i % 97) * 1000,
                    "error": i % 50 == 0, "attrs": {"region": f"r{i % 3}", "client_version": f"5.{i % 4}.0",
                                                    "user_id": f"u{i % 5000}", "tenant": f"t{i % 20}",
                                                    "http.route": f"/r{i % 9}", "http.status_code": "200"}})
    return out


def otlp(spans: list[_Span]) -> bytes:
    by_service: dict[str, list[dict[str, object]]] = {}
    for s in spans:
        by_service.setdefault(str(s["service"]), []).append({
            "traceId": s["trace"], "spanId": s["span"], "parentSpanId": s["parent"] or "", "name": s["name"],
            "kind": 2, "startTimeUnixNano": str(s["start_ns"]), "endTimeUnixNano": str(s["start_ns"] + s["dur_ns"]),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in s["attrs"].items()],
            "status": {"code": 2} if s["error"] else {}})
    return json.dumps({"resourceSpans": [
        {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
         "scopeSpans": [{"spans": items}]} for svc, items in by_service.items()]}).encode()


def jaeger(spans: list[_Span]) -> bytes:
    traces: dict[str, list[dict[str, object]]] = {}
    for s in spans:
        tags: list[dict[str, object]] = [
            {"key": k, "type": "string", "value": v} for k, v in s["attrs"].items()
        ]
        tags += [{"key": "error", "type": "bool", "value": True}] if s["error"] else []
        refs = [{"refType": "CHILD_OF", "traceID": s["trace"], "spanID": s["parent"]}] if s["parent"] else []
        traces.setdefault(str(s["trace"]), []).append({
            "traceID": s["trace"], "spanID": s["span"], "operationName": s["name"],
            "references": refs,
            "startTime": s["start_ns"] // 1000, "duration": s["dur_ns"] // 1000, "tags": tags,
            "processID": s["service"]})
    processes = {f"svc{i}": {"serviceName": f"svc{i}", "tags": []} for i in range(4)}
    data = [{"traceID": t, "spans": v, "processes": processes} for t, v in traces.items()]
    return json.dumps({"data": data}).encode()


def zipkin(spans: list[_Span]) -> bytes:
    return json.dumps([{
        "traceId": s["trace"], "id": s["span"], **({"parentId": s["parent"]} if s["parent"] else {}),
        "name": s["name"], "kind": "SERVER", "timestamp": s["start_ns"] // 1000, "duration": s["dur_ns"] // 1000,
        "localEndpoint": {"serviceName": s["service"]}, "tags": {**s["attrs"], **({"error": ""} if s["error"] else {})}}
        for s in spans]).encode()


def main(n: int = 100_000) -> dict[str, float]:
    spans = _spans(n)
    timings = {}
    for name, writer in (("otlp", otlp), ("jaeger", jaeger), ("zipkin", zipkin)):
        data = writer(spans)
        started, cpu = time.perf_counter(), time.process_time()
        converted = convert_bytes(data, "auto", f"bench.{name}.json")
        timings[name] = time.perf_counter() - started
        cpu_s = time.process_time() - cpu  # CPU time: less skewed than wall time on a shared machine
        validate(converted.frame, "spans")
        assert converted.frame.height == n, (name, converted.frame.height)
        print(f"{name:7s} {len(data) / 1e6:6.1f} MB  {n} spans  wall {timings[name]:.2f} s  cpu {cpu_s:.2f} s "
              "(parse + convert)")
    return timings


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="OTLP/Jaeger/Zipkin JSON -> spans frame conversion speed")
    parser.add_argument("spans", nargs="?", type=int, default=100_000, help="spans per payload (default 100000)")
    main(parser.parse_args().spans)
