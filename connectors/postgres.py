"""pgbouncer admin console + PostgreSQL ``pg_stat_activity`` → pools and pool_holders.

Source options::

    admin_dsn: "host=pgbouncer port=6432 dbname=pgbouncer user=stats"   # SHOW POOLS/DATABASES/SERVERS
    postgres_dsn: "host=db port=5432 dbname=app user=monitor"          # pg_stat_activity (optional)
    redact_queries: normalise        # drop | normalise (literals → ?) | keep
    statement_timeout_ms: 3000

Passwords come from secrets (``password`` / ``postgres_password``), never from sources.yaml.
pools: one row per SHOW POOLS (database, user): ``active=sv_active``, ``idle=sv_idle``,
``pending=cl_waiting``, ``max`` = the database's pool_size (SHOW DATABASES), ``acquire_p99_ms`` =
``maxwait`` (the longest current wait; pgbouncer has no percentile). pool_holders: the PostgreSQL
backends behind pgbouncer's linked/active server connections (SHOW SERVERS ``remote_pid`` →
``pg_stat_activity.pid``), plus every backend that blocks one of them (``pg_blocking_pids``),
so a pool's waiters lead to the session holding the connections and its query.
The admin console speaks only the simple query protocol, hence psycopg's ClientCursor.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import polars as pl

from connectors.base import Health, Query, Result, run_query
from connectors.errors import ConfigError, SourceRejected, SourceTimeout, SourceUnavailable
from config import SourceConfig
from model.schemas import POOL_HOLDERS, POOLS

REDACT_MODES = ("drop", "normalise", "keep")
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")

HOLDERS_SQL = """
WITH held AS (SELECT unnest(%(pids)s::int[]) AS pid),
blockers AS (SELECT DISTINCT unnest(pg_blocking_pids(a.pid)) AS pid FROM pg_stat_activity a JOIN held USING (pid))
SELECT a.pid, a.state, a.query, a.query_start, a.xact_start, a.wait_event_type, a.application_name,
       host(a.client_addr) AS client_addr, now() AS ts
FROM pg_stat_activity a
WHERE a.pid IN (SELECT pid FROM held UNION SELECT pid FROM blockers)
ORDER BY a.query_start NULLS LAST
"""


def redact_query(expr: pl.Expr, mode: str) -> pl.Expr:
    """Apply ``redact_queries``: drop the text, replace literals with ``?``, or keep it."""
    if mode == "drop":
        return pl.lit(None, dtype=pl.String)
    if mode == "normalise":
        return expr.str.replace_all(_STRING.pattern, "?").str.replace_all(_NUMBER.pattern, "?")
    return expr


def pools_from_pgbouncer(pools: Sequence[Mapping[str, Any]], databases: Sequence[Mapping[str, Any]], *,
                         source: str, instance: str | None, ts: datetime) -> pl.DataFrame:
    """SHOW POOLS + SHOW DATABASES rows (dicts by column name; any version) → pools frame."""
    size = {str(d.get("name")): _int(d.get("pool_size")) for d in databases}
    rows = [
        {
            "ts": ts, "source": source, "pool": f"{p.get('database')}/{p.get('user')}", "instance": instance,
            "active": _int(p.get("sv_active")), "idle": _int(p.get("sv_idle")), "pending": _int(p.get("cl_waiting")),
            "max": size.get(str(p.get("database"))) or None, "timeouts": None,
            "acquire_p99_ms": (_int(p.get("maxwait")) or 0) * 1000.0 + (_int(p.get("maxwait_us")) or 0) / 1000.0,
        }
        for p in pools
        if p.get("database") != "pgbouncer"
    ]
    return pl.DataFrame(rows, schema=POOLS, orient="row") if rows else pl.DataFrame(schema=POOLS)


def holders_from_rows(rows: Sequence[Mapping[str, Any]], *, source: str, redact: str) -> pl.DataFrame:
    """pg_stat_activity rows (HOLDERS_SQL) → pool_holders frame, query text redacted per ``redact``."""
    frame = pl.DataFrame(
        [{**{k: r.get(k) for k in POOL_HOLDERS if k != "source"}, "source": source} for r in rows],
        schema=POOL_HOLDERS, orient="row",
    ) if rows else pl.DataFrame(schema=POOL_HOLDERS)
    return frame.with_columns(redact_query(pl.col("query"), redact).alias("query"))


def holders_from_servers(servers: Sequence[Mapping[str, Any]], *, source: str, ts: datetime) -> pl.DataFrame:
    """Without a postgres_dsn: the busy server connections' pids only (no query text)."""
    rows = [{"ts": ts, "source": source, "pid": _int(s.get("remote_pid")), "state": str(s.get("state")),
             "query": None, "query_start": None, "xact_start": None, "wait_event_type": None,
             "application_name": s.get("application_name"), "client_addr": None} for s in _busy(servers)]
    return pl.DataFrame(rows, schema=POOL_HOLDERS, orient="row") if rows else pl.DataFrame(schema=POOL_HOLDERS)


def _busy(servers: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [s for s in servers if s.get("database") != "pgbouncer" and (s.get("state") == "active" or _int(s.get("link")))
            and _int(s.get("remote_pid"))]


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return int(str(value), 16) if isinstance(value, str) and value.startswith("0x") else None


class PgBouncerConnector:
    capabilities = frozenset({"pools", "pool_holders"})

    def __init__(self, source: SourceConfig) -> None:
        self.name = source.name
        opts = source.options
        self.admin_dsn = str(opts.get("admin_dsn", ""))
        if not self.admin_dsn:
            raise ConfigError("option 'admin_dsn' is required (libpq DSN of the pgbouncer admin console)", source=source.name)
        self.postgres_dsn = str(opts.get("postgres_dsn", "")) or None
        self.redact = str(opts.get("redact_queries", "normalise"))
        if self.redact not in REDACT_MODES:
            raise ConfigError(f"redact_queries must be one of {REDACT_MODES}, got {self.redact!r}", source=source.name)
        self.timeout_s = source.timeout_s
        self.statement_timeout_ms = int(opts.get("statement_timeout_ms", int(source.timeout_s * 1000)))
        self.secrets = source.secrets
        self.instance = opts.get("instance") or _dsn_host(self.admin_dsn)

    def check_health(self) -> Health:
        started = time.perf_counter()
        try:
            self._admin(["SHOW VERSION"])
        except Exception as exc:  # health is a value, never an exception
            return Health("down", exc.describe() if hasattr(exc, "describe") else str(exc), (time.perf_counter() - started) * 1000)
        return Health("ok", "pgbouncer admin console answered", (time.perf_counter() - started) * 1000)

    def query(self, queries: Sequence[Query]) -> list[Result]:
        return [run_query(self.name, q, self._fetch) for q in queries]

    def _fetch(self, query: Query) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
        ts = datetime.now(timezone.utc)
        if query.kind == "pools":
            pools, databases = self._admin(["SHOW POOLS", "SHOW DATABASES"])
            return pools_from_pgbouncer(pools, databases, source=self.name, instance=self.instance, ts=ts), "SHOW POOLS; SHOW DATABASES", ()
        if query.kind != "pool_holders":
            raise ConfigError(f"pgbouncer serves pools and pool_holders, not {query.kind!r}", source=self.name)
        [servers] = self._admin(["SHOW SERVERS"])
        if self.postgres_dsn is None:
            notice = "no postgres_dsn configured: holders have pids only, no query text"
            return holders_from_servers(servers, source=self.name, ts=ts), "SHOW SERVERS", (notice,)
        pids = [_int(s.get("remote_pid")) for s in _busy(servers)]
        rows = self._postgres(HOLDERS_SQL, {"pids": pids}) if pids else []
        return holders_from_rows(rows, source=self.name, redact=self.redact), "SHOW SERVERS; " + " ".join(HOLDERS_SQL.split()), ()

    def _connect(self, dsn: str, password_key: str, **kwargs: Any) -> Any:
        import psycopg

        password = self.secrets.get(password_key)
        extra = {"password": str(password)} if password else {}
        with _mapped(self.name):
            return psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(self.timeout_s)), **extra, **kwargs)

    def _admin(self, commands: list[str]) -> list[list[dict[str, Any]]]:
        import psycopg

        conn = self._connect(self.admin_dsn, "password", cursor_factory=psycopg.ClientCursor, prepare_threshold=None)
        with conn, _mapped(self.name):
            out = []
            for command in commands:
                cur = conn.execute(command)
                names = [c.name for c in cur.description or []]
                out.append([dict(zip(names, row)) for row in cur.fetchall()])
            return out

    def _postgres(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        conn = self._connect(str(self.postgres_dsn), "postgres_password", row_factory=dict_row,
                             options=f"-c statement_timeout={self.statement_timeout_ms}")
        with conn, _mapped(self.name):
            return list(conn.execute(sql, params).fetchall())


class _mapped:
    """psycopg errors → the connector error tree (auth/permission → rejected, timeouts, else unavailable)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        import psycopg

        if exc is None or not isinstance(exc, psycopg.Error):
            return False
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if isinstance(exc, psycopg.errors.QueryCanceled) or "timeout" in text.lower():
            raise SourceTimeout(text, source=self.source, hint="statement_timeout_ms and the database load") from exc
        if sqlstate.startswith("28") or sqlstate == "42501" or "not allowed" in text or "password" in text:
            raise SourceRejected(text, source=self.source, hint="admin_users/stats_users and the credentials") from exc
        raise SourceUnavailable(text, source=self.source, hint="the DSN and that pgbouncer/PostgreSQL are up") from exc


def _dsn_host(dsn: str) -> str | None:
    parts = dict(re.findall(r"(\w+)\s*=\s*(\S+)", dsn))
    return f"{parts['host']}:{parts.get('port', '6432')}" if "host" in parts else None


def build(source: SourceConfig) -> PgBouncerConnector:
    return PgBouncerConnector(source)
