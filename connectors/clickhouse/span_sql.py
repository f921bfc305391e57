"""The statements that read spans themselves (not aggregates): trace count, whole-trace samples, one trace, search.

They share :func:`connectors.clickhouse.sql.normalised_spans` with the aggregates, so spans read here and the
counts see the same kind/status/attribute normalisation.
"""

from __future__ import annotations

from datetime import datetime

from connectors.clickhouse.schema import TraceTable
from connectors.clickhouse.sql import FAR_FUTURE, Scope, Statement, normalised_spans


def trace_count(table: TraceTable, scope: Scope) -> Statement:
    """Distinct traces with a span in the window (exact)."""
    params: dict[str, object] = {"start": scope.start, "end": scope.end}
    sql = f"""SELECT uniqExact(TraceId) AS traces FROM {table.ident}
WHERE Timestamp >= {{start:DateTime64(6, 'UTC')}} AND Timestamp < {{end:DateTime64(6, 'UTC')}}"""
    return Statement(sql, params)


SPAN_COLUMNS = ("trace_id, span_id, nullIf(parent_span_id, '') AS parent_span_id, service, operation, kind, "
                "toDateTime64(ts, 6, 'UTC') AS start, duration_ms, status, http_status, "
                "CAST(attrs, 'Array(Tuple(key String, value String))') AS attributes")


def sampled_spans(table: TraceTable, scope: Scope, every_nth: int) -> Statement:
    """Every span of the window's traces whose ``cityHash64(TraceId) % every_nth = 0`` (whole traces, evenly)."""
    every = Scope(scope.start, scope.end, scope.slo, scope.outcome, roots_only=False, where=scope.where)
    params: dict[str, object] = {"every_nth": max(1, int(every_nth))}
    sampled = normalised_spans(table, every, params, extra=("cityHash64(TraceId) % {every_nth:UInt64} = 0",))
    sql = f"""SELECT {SPAN_COLUMNS}
FROM {sampled}
ORDER BY trace_id, start, span_id"""
    return Statement(sql, params)


def trace_spans(table: TraceTable, trace_id: str) -> Statement:
    """The spans of one trace, bounded by the lookup table's ``min(Start)``/``max(End)`` when it exists."""
    params: dict[str, object] = {"trace_id": trace_id}
    if table.has_lookup:
        bounds = (f"(SELECT min(Start) AS lo, max(End) + 1 AS hi FROM {table.lookup_ident} "
                  "WHERE TraceId = {trace_id:String})")
        where = (f"TraceId = {{trace_id:String}} AND Timestamp >= (SELECT lo FROM {bounds}) "
                 f"AND Timestamp <= (SELECT hi FROM {bounds})")
    else:
        where = "TraceId = {trace_id:String}"
    scope = Scope(datetime(1970, 1, 1), FAR_FUTURE, roots_only=False)
    inner = normalised_spans(table, scope, params, extra=(where,))
    return Statement(f"SELECT {SPAN_COLUMNS}\nFROM {inner}\nORDER BY start, span_id", params)


def search_spans(table: TraceTable, scope: Scope, *, operation: str | None, min_duration_ms: float | None,
                 max_duration_ms: float | None, limit: int) -> Statement:
    """The spans of the newest ``limit`` traces with a matching span in the window (the Traces page's search;
    ``scope.where`` holds the service and ``attr=value`` conditions)."""
    every = Scope(scope.start, scope.end, scope.slo, scope.outcome, roots_only=False, where=scope.where)
    params: dict[str, object] = {"limit": int(limit)}
    conds = ["1"]
    if operation is not None:
        params["operation"] = operation
        conds.append("operation = {operation:String}")
    if min_duration_ms is not None:
        params["min_duration_ms"] = float(min_duration_ms)
        conds.append("duration_ms >= {min_duration_ms:Float64}")
    if max_duration_ms is not None:
        params["max_duration_ms"] = float(max_duration_ms)
        conds.append("duration_ms <= {max_duration_ms:Float64}")
    matching = f"""(SELECT trace_id FROM {normalised_spans(table, every, params)} WHERE {' AND '.join(conds)}
    GROUP BY trace_id ORDER BY max(ts) DESC, trace_id LIMIT {{limit:UInt32}})"""
    whole = Scope(scope.start, scope.end, scope.slo, scope.outcome, roots_only=False)
    sql = f"""SELECT {SPAN_COLUMNS}
FROM {normalised_spans(table, whole, params)}
WHERE trace_id IN {matching}
ORDER BY trace_id, start, span_id"""
    return Statement(sql, params)
