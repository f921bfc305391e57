"""A generator of OpenTelemetry-SDK-shaped collector files (OTLP/JSON lines) with a known incident.

Used by the trace-file tests and by ``bench/ingest_speed.py``. What it writes looks like what a small
shop's Flask + httpx services export through the collector's file exporter: one ``{"resourceSpans": [...]}``
per line (one SDK batch of one service instance), hex ids, int enums, nanoseconds as decimal strings, and
the current semantic conventions (``http.request.method``, ``http.route``, ``http.response.status_code``,
``enduser.id``, ``tenant.id``, ``app.client.version``; resource ``cloud.region``, ``host.name``,
``service.version``). The ``cart`` and ``inventory`` services still run an older instrumentation that writes
the legacy names (``http.method``, ``http.status_code``), as a mixed fleet does.

Injected, and returned as :class:`GroundTruth`:

* the incident: from ``start + incident_after`` on, requests with ``cloud.region=eu-west-1 AND
  app.client.version=5.2.0`` answer **200 OK in ~11 s** (payments / the deepest service stalls ~10.5 s);
* background errors (~1 % of requests, 500 from the deepest service) and background slowness (a lognormal tail);
* a chronically bad tenant (``t-0007`` fails 45 % of its requests, before the incident too);
* high-cardinality user ids (``enduser.id``, about one user per three requests).

Deterministic by ``seed``; ``requests`` is the size knob (:func:`requests_for_spans` picks it for a span count).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import numpy as np

START = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1")
REGION_WEIGHTS = (0.3, 0.15, 0.25, 0.15, 0.15)
CLIENT_VERSIONS = ("5.0.3", "5.1.0", "5.2.0")
CLIENT_WEIGHTS = (0.2, 0.45, 0.35)
COHORT = {"cloud.region": "eu-west-1", "app.client.version": "5.2.0"}
BAD_TENANT = "t-0007"
BAD_TENANT_ERROR_RATE = 0.45
BACKGROUND_ERROR_RATE = 0.01
INCIDENT_DELAY_MS = 10_500.0
SLO_MS = 2000.0  # what the ground truth counts as slow (the default SLO of sources.yaml)
LEGACY_SERVICES = frozenset({"cart", "inventory"})  # older instrumentation: http.method / http.status_code
VERSIONS = {"frontend": "3.8.1", "checkout": "1.12.0", "payments": "2.14.0", "catalog": "4.2.2", "cart": "0.9.7",
            "inventory": "7.0.1"}
HOSTS_PER_REGION = 2
BATCH_S = 5  # one line per service instance per 5 s of request starts, as a BatchSpanProcessor exports

# A route is a chain of hops: (service, kind, span name, route or target); every hop is the child of the one
# before, except "internal" hops, which are children of the last server span. The last server does the work.
ROUTES: tuple[tuple[str, float, tuple[tuple[str, str, str, str], ...]], ...] = (
    ("POST /checkout", 0.35, (
        ("frontend", "server", "POST /checkout", "/checkout"), ("frontend", "client", "POST", "http://checkout/orders"),
        ("checkout", "server", "POST /orders", "/orders"), ("checkout", "client", "POST", "http://payments/charge"),
        ("payments", "server", "POST /charge", "/charge"), ("payments", "internal", "SELECT payments", "payments"),
        ("payments", "internal", "INSERT payments", "payments"))),
    ("GET /products/<id>", 0.4, (
        ("frontend", "server", "GET /products/<id>", "/products/<id>"),
        ("frontend", "client", "GET", "http://catalog/items"), ("catalog", "server", "GET /items/<id>", "/items/<id>"),
        ("catalog", "internal", "SELECT items", "items"))),
    ("GET /cart", 0.25, (
        ("frontend", "server", "GET /cart", "/cart"), ("frontend", "client", "GET", "http://cart/cart"),
        ("cart", "server", "GET /cart", "/cart"), ("cart", "client", "GET", "http://inventory/stock"),
        ("inventory", "server", "GET /stock", "/stock"))),
)
KIND_INT = {"internal": 1, "server": 2, "client": 3}


@dataclass(frozen=True)
class GroundTruth:
    """What was injected into a generated file (counts are over requests, i.e. root spans)."""

    path: Path
    requests: int
    spans: int
    lines: int
    start: datetime  # window start
    end: datetime  # window end (exclusive)
    incident_start: datetime
    cohort: dict[str, str] = field(default_factory=lambda: dict(COHORT))
    affected_requests: int = 0  # requests in the cohort after the incident start (all ~11 s)
    affected_users: int = 0  # distinct enduser.id among them
    excess_bad_requests: int = 0  # affected requests that would not have been bad without the incident
    bad_tenant: str = BAD_TENANT
    malformed_lines: int = 0  # broken lines written in addition to the good ones
    http_status_counts: dict[int, int] = field(default_factory=dict)  # over root spans


def spans_per_request() -> float:
    """The mean number of spans per request (route weights × hops)."""
    return sum(weight * len(hops) for _, weight, hops in ROUTES)


def requests_for_spans(spans: int) -> int:
    """How many requests make about ``spans`` spans."""
    return max(1, round(spans / spans_per_request()))


def write_otel_file(
    path: str | Path,
    *,
    requests: int = 21_000,
    seed: int = 7,
    start: datetime = START,
    minutes: int = 60,
    incident_after: timedelta = timedelta(minutes=22),
    malformed_lines: int = 0,
) -> GroundTruth:
    """Write ``requests`` requests over ``minutes`` to ``path`` as collector JSON lines; return the ground truth.

    ``malformed_lines`` broken lines (truncated JSON, a stray text line) are mixed in at seeded positions.
    """
    out = Path(path)
    rng = np.random.default_rng(seed)
    window_us = minutes * 60 * 1_000_000
    start_us = int(start.timestamp() * 1_000_000)
    offsets_us = np.sort(rng.integers(0, window_us, requests))
    route = rng.choice(len(ROUTES), requests, p=[w for _, w, _ in ROUTES])
    region = rng.choice(len(REGIONS), requests, p=REGION_WEIGHTS)
    client = rng.choice(len(CLIENT_VERSIONS), requests, p=CLIENT_WEIGHTS)
    host = rng.integers(0, HOSTS_PER_REGION, requests)
    users = rng.integers(0, max(1, requests // 3), requests)
    tenants = np.minimum(rng.zipf(1.6, requests), 400) - 1
    work_ms = rng.lognormal(np.log(60.0), 0.7, requests)  # the deepest service's own time; tail past the SLO
    error_draw = rng.random(requests)
    tenant_names = np.array([f"t-{t:04d}" for t in range(400)])
    bad_tenant = tenant_names[tenants] == BAD_TENANT
    error = (error_draw < BACKGROUND_ERROR_RATE) | (bad_tenant & (rng.random(requests) < BAD_TENANT_ERROR_RATE))
    incident_us = int(incident_after.total_seconds() * 1_000_000)
    affected = ((region == REGIONS.index(COHORT["cloud.region"]))
                & (client == CLIENT_VERSIONS.index(COHORT["app.client.version"]))
                & (offsets_us >= incident_us))
    overhead_ms = rng.uniform(0.3, 2.5, (requests, 8))
    ids = rng.integers(1, 2**63 - 1, (requests, 10), dtype=np.int64)
    bad_lines = (set(rng.choice(max(1, requests // 20), malformed_lines, replace=False).tolist())
                 if malformed_lines else set())

    root_ms = np.zeros(requests)
    status_counts: dict[int, int] = defaultdict(int)
    n_spans = n_lines = n_bad = 0
    with out.open("w", encoding="utf-8") as fh:
        batch: dict[tuple[str, int, int], list[str]] = defaultdict(list)
        bucket_end = BATCH_S * 1_000_000
        for i in range(requests):
            if offsets_us[i] >= bucket_end:
                n_lines, n_bad = _flush(fh, batch, n_lines, n_bad, bad_lines)
                bucket_end = (offsets_us[i] // (BATCH_S * 1_000_000) + 1) * BATCH_S * 1_000_000
            spans, root_ms[i], status = _request_spans(
                i, ROUTES[route[i]][2], start_us + int(offsets_us[i]), float(work_ms[i]),
                INCIDENT_DELAY_MS if affected[i] else 0.0, bool(error[i]), overhead_ms[i], ids[i],
                {"enduser.id": f"u-{users[i]:06d}", "tenant.id": str(tenant_names[tenants[i]]),
                 "app.client.version": CLIENT_VERSIONS[client[i]]})
            status_counts[status] += 1
            for service, line in spans:
                batch[(service, int(region[i]), int(host[i]))].append(line)
            n_spans += len(spans)
        n_lines, n_bad = _flush(fh, batch, n_lines, n_bad, bad_lines)
    # Without the incident a request is bad when it errored or its own work (plus overheads) passed the SLO.
    bad_anyway = error | (root_ms - np.where(affected, INCIDENT_DELAY_MS, 0.0) > SLO_MS)
    return GroundTruth(
        path=out, requests=requests, spans=n_spans, lines=n_lines, start=start, end=start + timedelta(minutes=minutes),
        incident_start=start + incident_after, affected_requests=int(affected.sum()),
        affected_users=int(np.unique(users[affected]).size), excess_bad_requests=int((affected & ~bad_anyway).sum()),
        malformed_lines=n_bad, http_status_counts=dict(status_counts))


def _request_spans(
    index: int, hops: tuple[tuple[str, str, str, str], ...], start_us: int, work_ms: float, delay_ms: float,
    error: bool, overhead_ms: np.ndarray, ids: np.ndarray, request_attrs: dict[str, str],
) -> tuple[list[tuple[str, str]], float, int]:
    """The spans of one request as ``(service, span JSON)``, the root duration (ms) and the root's HTTP status."""
    trace_id = f"{int(ids[0]):016x}{int(ids[1]) ^ index:016x}"
    chain = [h for h in hops if h[1] != "internal"]
    internals = [h for h in hops if h[1] == "internal"]
    status = 500 if error else 200
    # Durations from the deepest span outwards: each enclosing hop adds its own overhead (ms).
    durations = [0.0] * len(chain)
    durations[-1] = work_ms + delay_ms
    for k in range(len(chain) - 2, -1, -1):
        durations[k] = durations[k + 1] + float(overhead_ms[k])
    out: list[tuple[str, str]] = []
    parent = ""
    begin_us = start_us
    span_ids = [f"{int(v):016x}" for v in ids[2:]]
    for k, (service, kind, name, target) in enumerate(chain):
        attrs = _http_attrs(service, kind, target, status, name)
        if k == 0:
            attrs += [(key, value) for key, value in request_attrs.items()]
        out.append((service, _span(trace_id, span_ids[k], parent, name, kind, begin_us, durations[k], attrs, error)))
        parent = span_ids[k]
        begin_us += int(float(overhead_ms[k]) * 500)  # half the overhead before the child starts (ms -> µs)
    last_server = span_ids[len(chain) - 1]
    for j, (service, kind, name, table) in enumerate(internals):
        db_ms = work_ms * 0.3 / len(internals)
        attrs = [("db.system", "postgresql"), ("db.namespace", service), ("db.collection.name", table)]
        out.append((service, _span(trace_id, span_ids[len(chain) + j], last_server, name, kind,
                                   begin_us + int(j * db_ms * 1000), db_ms, attrs, False)))
    return out, durations[0], status


def _http_attrs(service: str, kind: str, target: str, status: int, name: str) -> list[tuple[str, str | int]]:
    method = name.split(" ")[0]
    if service in LEGACY_SERVICES:
        if kind == "server":
            return [("http.method", method), ("http.target", target), ("http.status_code", status),
                    ("http.scheme", "http"), ("net.host.name", service)]
        return [("http.method", method), ("http.url", target), ("http.status_code", status)]
    if kind == "server":
        return [("http.request.method", method), ("http.route", target), ("url.path", target), ("url.scheme", "https"),
                ("http.response.status_code", status), ("server.address", service), ("network.protocol.version", "1.1"),
                ("user_agent.original", "shop-app/5 (okhttp)")]
    host = target.split("/")[2]
    return [("http.request.method", method), ("url.full", target), ("server.address", host), ("server.port", 8080),
            ("http.response.status_code", status)]


def _span(trace_id: str, span_id: str, parent: str, name: str, kind: str, start_us: int, duration_ms: float,
          attrs: list[tuple[str, str | int]], error: bool) -> str:
    start_ns = start_us * 1000
    end_ns = start_ns + int(duration_ms * 1_000_000)  # ms -> ns
    attr_json = ",".join(
        f'{{"key":"{k}","value":{{"intValue":"{v}"}}}}' if isinstance(v, int)
        else f'{{"key":"{k}","value":{{"stringValue":{json.dumps(v)}}}}}'
        for k, v in attrs)
    status = '{"code":2,"message":"HTTP 500"}' if error and kind != "internal" else "{}"
    return (f'{{"traceId":"{trace_id}","spanId":"{span_id}","parentSpanId":"{parent}","flags":1,"name":"{name}",'
            f'"kind":{KIND_INT[kind]},"startTimeUnixNano":"{start_ns}","endTimeUnixNano":"{end_ns}",'
            f'"attributes":[{attr_json}],"status":{status}}}')


def _resource(service: str, region: int, host: int) -> str:
    attrs = [("service.name", service), ("service.version", VERSIONS[service]), ("service.namespace", "shop"),
             ("host.name", f"{service}-{REGIONS[region]}-{host}"), ("cloud.region", REGIONS[region]),
             ("cloud.provider", "aws"), ("deployment.environment.name", "production"),
             ("telemetry.sdk.name", "opentelemetry"), ("telemetry.sdk.language", "python"),
             ("telemetry.sdk.version", "1.27.0")]
    return ",".join(f'{{"key":"{k}","value":{{"stringValue":"{v}"}}}}' for k, v in attrs)


def _flush(fh: TextIO, batch: dict[tuple[str, int, int], list[str]], n_lines: int, n_bad: int,
           bad_lines: set[int]) -> tuple[int, int]:
    """Write one line per service instance of the batch (Flask server spans and httpx client spans as two scopes)."""
    for (service, region, host), spans in sorted(batch.items()):
        line = (f'{{"resourceSpans":[{{"resource":{{"attributes":[{_resource(service, region, host)}]}},"scopeSpans":['
                f'{{"scope":{{"name":"opentelemetry.instrumentation.flask","version":"0.48b0"}},"spans":[{",".join(spans)}]}}'
                f'],"schemaUrl":"https://opentelemetry.io/schemas/1.26.0"}}]}}')
        if n_lines in bad_lines:  # an extra broken line before this one: a crash mid-write, a stray log line
            fh.write(line[: len(line) // 2] + "\n" if n_bad % 2 == 0 else "this is not json\n")
            n_bad += 1
        fh.write(line + "\n")
        n_lines += 1
    batch.clear()
    return n_lines, n_bad
