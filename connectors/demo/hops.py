"""The demo's hop catalogue (who calls whom, with which attributes) and the spans-frame assembly.

``demo_spans`` simulates hops as numpy arrays of codes and numbers; this module turns them into
polars columns once: categorical strings come from gathering small vocabularies
(``pl.Series(vocab).gather(codes)``), ids from random bytes encoded as hex.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import polars as pl

from connectors.demo.traffic import (
    CLIENTS, N_GATEWAYS, N_TENANTS, N_USERS, REGIONS, ROUTES, WINDOW_START, Traffic, hex_series, random_ids,
    tenant_name,
)

BY_DEPLOY = "by-deploy"  # service_version follows the payments deploy: PAYMENTS_VERSIONS[deployed]
PAYMENTS_VERSIONS = ("2.13.4", "2.14.0")
LEDGER_SQL = "UPDATE ledger SET balance = balance - $1 WHERE id = $2"


@dataclass(frozen=True)
class Spec:
    """A hop of the trace tree. Children of one parent run in the order they are listed."""

    name: str
    parent: str | None
    service: str
    operation: str
    kind: str
    hosts: int = 0  # attr.host is "<service>-<i>", i < hosts (0: no host attribute)
    version: str | None = None  # attr.service_version (BY_DEPLOY: the payments deploy decides)
    http_status_error: int = 500
    attrs: tuple[tuple[str, str], ...] = ()  # constant attributes
    children: tuple[str, ...] = ()
    host_code: int = 0  # offset of this hop's hosts in HOSTS
    version_code: int = 0  # index of its version in VERSIONS

    @property
    def versioned_by_deploy(self) -> bool:
        return self.version == BY_DEPLOY


def _catalogue() -> tuple[list[Spec], list[str | None], list[str | None]]:
    specs = [
        Spec("root", None, "gateway", "", "server", N_GATEWAYS, "1.42.0"),
        Spec("auth", "root", "auth", "POST /verify", "server", 4, "3.8.1"),
        Spec("sca", "auth", "payments", "GET /sca/status", "server", 4, BY_DEPLOY),
        Spec("sca_fraud", "sca", "fraud", "POST /score", "server", 2, "0.9.7"),
        Spec("search", "root", "search", "GET /query", "server", 6, "5.0.2", http_status_error=502),
        Spec("rank", "search", "recommender", "GET /rank", "server", 4, "2.2.0"),
        Spec("account", "root", "account", "GET /profile", "server", 2, "1.3.0"),
        Spec("account_db", "account", "postgres", "SELECT users", "client", attrs=(("db.system", "postgresql"),)),
        Spec("checkout", "root", "checkout", "POST /orders", "server", 4, "4.1.0"),
        Spec("cart", "root", "cart", "GET /cart", "server", 2, "2.0.5", http_status_error=503),
    ]
    for parent, operation in (("root", "GET /stock"), ("checkout", "POST /reserve"), ("cart", "GET /stock")):
        for attempt in range(3):
            specs.append(Spec(f"inv_{parent}_{attempt}", parent, "inventory", operation, "server", 4, "7.4.2",
                              http_status_error=503, attrs=(("retry_attempt", str(attempt)),) if attempt else ()))
    specs += [
        Spec("related", "root", "recommender", "GET /related", "server", 4, "2.2.0"),
        Spec("charge", "checkout", "payments", "POST /charge", "server", 4, BY_DEPLOY),  # + attr.idempotency_key
        Spec("acquire", "charge", "payments", "hikari.acquire", "internal", attrs=(("db.pool", "payments-db"),)),
        Spec("ledger", "charge", "postgres", "UPDATE ledger", "client",
             attrs=(("db.system", "postgresql"), ("db.statement", LEDGER_SQL))),
        Spec("charge_fraud", "charge", "fraud", "POST /score", "server", 2, "0.9.7"),
    ]
    hosts: list[str | None] = [None]
    versions: list[str | None] = [None, *PAYMENTS_VERSIONS]
    done: list[Spec] = []
    for spec in specs:
        host_code = len(hosts)
        hosts += [f"{spec.service}-{i}" for i in range(spec.hosts)]
        if spec.version and spec.version != BY_DEPLOY and spec.version not in versions:
            versions.append(spec.version)
        version_code = 1 if spec.versioned_by_deploy else versions.index(spec.version) if spec.version else 0
        children = tuple(s.name for s in specs if s.parent == spec.name)
        done.append(replace(spec, children=children, host_code=host_code, version_code=version_code))
    return done, hosts, versions


SPECS, HOSTS, VERSIONS = _catalogue()
ROOT_CHILDREN = [s for s in SPECS if s.parent == "root"]
CHARGE = [s.name for s in SPECS].index("charge")


def _vocab(values: list[str | None] | tuple[str, ...], dtype: type[pl.DataType] = pl.Categorical) -> pl.Series:
    """A vocabulary to gather from: Categorical (a 4-byte code a row, model.encoding) unless it is too big."""
    return pl.Series(values, dtype=dtype)


@lru_cache(maxsize=1)
def _names() -> dict[str, pl.Series]:
    """Vocabularies of the root attributes, indexed by the traffic's codes."""
    return {
        "route": _vocab(ROUTES), "method": _vocab([r.split(" ")[0] for r in ROUTES]), "region": _vocab(REGIONS),
        "client_version": _vocab([c[0] for c in CLIENTS]), "platform": _vocab([c[1] for c in CLIENTS]),
        "tenant": _vocab([None] + [tenant_name(r) for r in range(1, N_TENANTS + 1)]),
        "user": _vocab([f"u-{i:06d}" for i in range(N_USERS)], pl.String),  # past MAX_CATEGORIES
        "gateway": _vocab([f"gateway-{i}" for i in range(N_GATEWAYS)]),
        "flag": _vocab(["off", "on"]), "status": _vocab(["unset", "error"]), "retry": _vocab([None, "1", "2"]),
        "address": _vocab([f"203.0.113.{i}" for i in range(255)]),
    }


def _start(start_us: np.ndarray) -> pl.Series:
    base_us = int(WINDOW_START.timestamp() * 1e6)
    return pl.Series(start_us + base_us).cast(pl.Datetime("us", "UTC"))


def root_frame(rng: np.random.Generator, tr: Traffic, trace_ids: pl.Series, root_ids: pl.Series,
               duration_ms: np.ndarray, error: np.ndarray, http_status: np.ndarray) -> pl.DataFrame:
    """One root span per request with the request's attributes (``trace_ids``/``root_ids``: hex, by request)."""
    v = _names()
    route = v["route"].gather(tr.route)
    columns = {
        "trace_id": trace_ids, "span_id": root_ids, "operation": route,
        "start": _start((tr.t_s * 1e6).astype(np.int64)), "duration_ms": np.round(duration_ms, 3),
        "status": v["status"].gather(error.view(np.uint8)), "http_status": http_status,
        "attr.region": v["region"].gather(tr.region), "attr.client_version": v["client_version"].gather(tr.client),
        "attr.platform": v["platform"].gather(tr.client), "attr.tenant": v["tenant"].gather(tr.tenant),
        "attr.user_id": v["user"].gather(tr.user), "attr.http.route": route,
        "attr.http.method": v["method"].gather(tr.route),
        "attr.feature_flag.new_checkout": v["flag"].gather(tr.flag_new_checkout.view(np.uint8)),
        "attr.feature_flag.dark_mode": v["flag"].gather(tr.flag_dark_mode.view(np.uint8)),
        "attr.correlation_id": "req-" + hex_series(random_ids(rng, tr.n, 6)),
        "attr.client.address": v["address"].gather(rng.integers(1, 255, tr.n, dtype=np.uint8)),
        "attr.retry_attempt": v["retry"].gather(tr.client_retry),
        "attr.host": v["gateway"].gather(tr.gateway_host),
    }
    return pl.DataFrame(columns).with_columns(
        parent_span_id=pl.lit(None, pl.String), service=pl.lit("gateway"), kind=pl.lit("server"),
        is_root=pl.lit(True), **{"attr.service_version": pl.lit(SPECS[0].version)},
    )


def child_frame(rng: np.random.Generator, tr: Traffic, trace_ids: pl.Series, root_ids: pl.Series,
                c: dict[str, np.ndarray]) -> pl.DataFrame:
    """The kept requests' child spans from ``demo_spans``' columns: request, hop, offset_ms, duration_ms, error,
    span_id (raw bytes), parent_row (the parent's row in roots-then-children order), host and version codes."""
    v = _names()
    hop = c["hop"]
    per_hop = {"service": [s.service for s in SPECS], "operation": [s.operation for s in SPECS],
               "kind": [s.kind for s in SPECS]}
    for key in sorted({k for s in SPECS for k, _ in s.attrs}):
        per_hop[f"attr.{key}"] = [dict(s.attrs).get(key) for s in SPECS]
    is_server = np.array([s.kind == "server" for s in SPECS])[hop]
    status = np.where(c["error"], np.array([s.http_status_error for s in SPECS], dtype=np.int32)[hop], 200)
    charge = hop == CHARGE
    idempotency = np.zeros(hop.size, dtype="S8")
    idempotency[charge] = random_ids(rng, int(np.count_nonzero(charge)), 8)
    start_us = (tr.t_s[c["request"]] * 1e6).astype(np.int64) + (c["offset_ms"] * 1000).astype(np.int64)
    span_ids = hex_series(c["span_id"])
    all_span_ids = pl.concat([root_ids, span_ids], rechunk=False)  # row order of the spans frame
    columns = {
        "trace_id": trace_ids.gather(c["request"]), "span_id": span_ids,
        "parent_span_id": all_span_ids.gather(c["parent_row"]), "start": _start(start_us),
        "duration_ms": np.round(c["duration_ms"], 3), "status": v["status"].gather(c["error"].view(np.uint8)),
        "http_status": status.astype(np.int32), "_server": is_server, "_charge": charge,
        "attr.host": _vocab(HOSTS).gather(c["host"]), "attr.service_version": _vocab(VERSIONS).gather(c["version"]),
        "attr.idempotency_key": hex_series(idempotency),
        **{name: _vocab(values).gather(hop) for name, values in per_hop.items()},
    }
    return pl.DataFrame(columns).with_columns(
        http_status=pl.when("_server").then("http_status"),
        is_root=pl.lit(False),
        **{"attr.idempotency_key": pl.when("_charge").then("attr.idempotency_key")},
    ).drop("_server", "_charge")
