"""Generated request (root span) frames with a known incident, for the cohort finder's tests."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from model.schemas import SPANS

REPO_ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SLO_MS = 1000.0

Row = dict[str, object]


def make_requests(
    n: int,
    attributes: Mapping[str, Sequence[str]],
    *,
    minutes: int = 60,
    incident_minute: int = 40,
    in_incident: Callable[[Row], bool] = lambda row: False,
    incident_effect: str = "slow",  # slow (200 OK over the SLO) or error (HTTP 503)
    incident_prob: float = 0.8,
    chronic: Callable[[Row], bool] = lambda row: False,
    decoy: Callable[[Row], bool] = lambda row: False,
    base_error: float = 0.01,
    seed: int = 7,
    user_ids: bool = True,
    ramp_minutes: float = 0.0,
) -> pl.DataFrame:
    """``n`` root spans over ``minutes``; from ``incident_minute`` on, matching requests go bad.

    With ``ramp_minutes`` the incident degrades slowly: the chance of going bad rises linearly from
    0 at ``incident_minute`` to ``incident_prob`` that many minutes later.

    ``chronic`` requests fail half the time throughout (a problem already in the baseline);
    ``decoy`` requests are slower (800 ms) but within the 1 s SLO.
    """
    rng = random.Random(seed)
    rows: list[Row] = []
    for i in range(n):
        row: Row = {f"attr.{k}": rng.choice(list(v)) for k, v in attributes.items()}
        minute = rng.uniform(0, minutes)
        start = T0 + timedelta(minutes=minute)
        duration, status, http = rng.uniform(20, 300), "ok", 200
        if decoy(row):
            duration = rng.uniform(700, 900)
        if rng.random() < base_error or (chronic(row) and rng.random() < 0.5):
            status, http = "error", 500
        prob = incident_prob * (min(1.0, (minute - incident_minute) / ramp_minutes) if ramp_minutes > 0 else 1.0)
        if minute >= incident_minute and in_incident(row) and rng.random() < prob:
            if incident_effect == "slow":
                duration = rng.uniform(5_000, 11_000)
            else:
                status, http = "error", 503
        if user_ids:
            row["attr.user_id"] = f"u{rng.randrange(10**9):09d}"
            row["attr.request_id"] = f"r{i:08d}"
        row.update(
            trace_id=f"{i:032x}", span_id=f"{i:016x}", parent_span_id=None, service="api", operation="GET /x",
            kind="server", start=start, duration_ms=duration, status=status, http_status=http, is_root=True,
        )
        rows.append(row)
    attr_cols = sorted({k for r in rows for k in r if k.startswith("attr.")})
    schema = {**dict(SPANS), **{c: pl.String for c in attr_cols}}
    return pl.DataFrame(rows, schema=schema)


STANDARD = {
    "region": ["eu-west", "us-east", "us-west", "ap-south"],
    "client_version": ["5.0.1", "5.1.0", "5.2.0", "4.9.3", "5.1.2"],
    "platform": ["ios", "android", "web"],
    "tenant": ["acme", "globex", "initech", "umbrella", "hooli", "wayne"],
}
