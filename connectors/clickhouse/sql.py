"""The window-wide aggregates as parameterised SQL over an exporter traces table.

Every statement reads the window's spans through one subquery (:func:`normalised_spans`) that normalises the
exporter's spellings the way the span converters do: kind and status lower-cased without their
``SPAN_KIND_``/``STATUS_CODE_`` prefix, resource then span attributes (span wins) under the names the
data uses (roles such as *region* are resolved later by ``model/semconv.py``), ``http_status`` from
``http.response.status_code`` then ``http.status_code``, and the outcome columns of
``analysis.outcome.with_outcome``: *error* is status error or HTTP ≥ 500, *slow* is a duration over the first
matching SLO rule (else the default).

Values travel as ``{name:Type}`` parameters; the only text put into SQL is the table identifier
(validated and quoted by :mod:`connectors.clickhouse.schema`) and fixed fragments chosen here.
A selection/baseline split labels each request with a class: 0 baseline good, 1 baseline bad,
2 selection good, 3 selection bad, NULL neither (as ``analysis.cohort.rank_values`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from config import SloConfig
from connectors.clickhouse.schema import TraceTable
from connectors.errors import ConfigError
from connectors.traces.frame import CONSUMED_KEYS, HTTP_STATUS_KEYS, KINDS
from model.periods import Window
from model.schemas import ATTR_PREFIX, MISSING

Outcome = Literal["error", "slow", "bad"]
PLAIN_COLUMNS = ("service", "operation", "kind")  # span columns that may describe a cohort
FAR_FUTURE = datetime(2200, 1, 1)
DEFAULT_SLO = SloConfig()


@dataclass(frozen=True)
class Statement:
    """SQL with ``{name:Type}`` placeholders and the values that fill them."""

    sql: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    """What the aggregates read: the window, the SLO, roots only or every span, and an ``attr=value`` filter."""

    start: datetime
    end: datetime
    slo: SloConfig = DEFAULT_SLO
    outcome: Outcome = "bad"
    roots_only: bool = True
    where: tuple[tuple[str, str], ...] = ()


def normalised_spans(table: TraceTable, scope: Scope, params: dict[str, object], extra: Sequence[str] = ()) -> str:
    """The normalised spans of the scope as a subquery; fills ``params``. ``extra``: fixed raw-column filters."""
    params.update(start=scope.start, end=scope.end, consumed=list(CONSUMED_KEYS), kinds=list(KINDS),
                  slo_default_ms=float(scope.slo.default_ms))
    slo_cases = []
    for i, rule in enumerate(scope.slo.rules):
        conds = []
        if rule.service is not None:
            conds.append(f"ServiceName = {{slo_service_{i}:String}}")
            params[f"slo_service_{i}"] = rule.service
        if rule.operation is not None:
            conds.append(f"SpanName = {{slo_operation_{i}:String}}")
            params[f"slo_operation_{i}"] = rule.operation
        params[f"slo_ms_{i}"] = float(rule.ms)
        slo_cases.append(f"{' AND '.join(conds) or '1'}, {{slo_ms_{i}:Float64}}")
    slo_ms = f"multiIf({', '.join(slo_cases)}, {{slo_default_ms:Float64}})" if slo_cases else "{slo_default_ms:Float64}"
    if table.variant == "json":
        lookups = [f"merged['{k}']" for k in HTTP_STATUS_KEYS]
    else:  # straight from the maps: building the merged map for every span costs more than two lookups
        lookups = [f"if(mapContains(SpanAttributes, '{k}'), SpanAttributes['{k}'], ResourceAttributes['{k}'])"
                   for k in HTTP_STATUS_KEYS]
    http_status = "coalesce(" + ", ".join(f"toInt32OrNull(trimBoth({v}))" for v in lookups) + ")"
    filters = ["Timestamp >= {start:DateTime64(6, 'UTC')}", "Timestamp < {end:DateTime64(6, 'UTC')}"]
    if scope.roots_only:
        filters.append("ParentSpanId = ''")
    filters.extend(extra)
    outer = []
    for i, (column, value) in enumerate(scope.where):
        params[f"where_value_{i}"] = value
        params["missing_value"] = MISSING
        outer.append(f"ifNull({column_expr(column, params, f'where_{i}')}, {{missing_value:String}}) "
                     f"= {{where_value_{i}:String}}")
    return f"""(
    SELECT * FROM (
        SELECT
            Timestamp AS ts, lower(TraceId) AS trace_id, lower(SpanId) AS span_id,
            lower(ParentSpanId) AS parent_span_id,
            cityHash64(TraceId, ParentSpanId) AS parent_key,
            toString(ServiceName) AS service, toString(SpanName) AS operation,
            lower(replaceRegexpOne(upper(toString(SpanKind)), '^SPAN_KIND_', '')) AS kind_raw,
            if(has({{kinds:Array(String)}}, kind_raw), kind_raw, 'unspecified') AS kind,
            multiIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 'error',
                    StatusCode IN ('Ok', 'STATUS_CODE_OK'), 'ok', 'unset') AS status,
            Duration / 1e6 AS duration_ms,
            {table.attribute_map('ResourceAttributes')} AS res_attrs, {table.attribute_map('SpanAttributes')} AS span_attrs,
            mapUpdate(res_attrs, span_attrs) AS merged,
            mapFilter((k, v) -> NOT has({{consumed:Array(String)}}, k), merged) AS attrs,
            {http_status} AS http_status,
            {slo_ms} AS slo_ms,
            status = 'error' OR ifNull(http_status, 0) >= 500 AS is_error,
            duration_ms > slo_ms AS is_slow,
            is_error OR is_slow AS is_bad
        FROM {table.ident}
        WHERE {' AND '.join(filters)}
    ){' WHERE ' + ' AND '.join(outer) if outer else ''}
)"""


def column_expr(column: str, params: dict[str, object], name: str) -> str:
    """SQL for one frame column (``service``, ``attr.region``…) as a Nullable(String): NULL when the key is missing."""
    if column in PLAIN_COLUMNS:
        return column
    if not column.startswith(ATTR_PREFIX) or len(column) == len(ATTR_PREFIX):
        raise ConfigError(f"{column!r} is not a span column that can describe a cohort "
                          "(service, operation, kind or attr.<key>)")
    key = column[len(ATTR_PREFIX):]
    if key in CONSUMED_KEYS:  # read into span columns, so never an attribute column (as in ``attrs``)
        return "CAST(NULL, 'Nullable(String)')"
    params[name] = key
    # two lookups, span first, instead of the merged ``attrs`` map: building that map for every span is most
    # of a statement's cost, and only the statements over every key (cardinality, value counts) need it
    return (f"if(mapContains(span_attrs, {{{name}:String}}), span_attrs[{{{name}:String}}], "
            f"if(mapContains(res_attrs, {{{name}:String}}), res_attrs[{{{name}:String}}], NULL))")


def _outcome(scope: Scope) -> str:
    return {"error": "is_error", "slow": "is_slow", "bad": "is_bad"}[scope.outcome]


def _cls(split: Window, scope: Scope, params: dict[str, object]) -> str:
    params.update(sel_start=split.start, sel_end=split.end or FAR_FUTURE, base_rest=int(split.baseline == "rest"))
    in_sel = "(ts >= {sel_start:DateTime64(6, 'UTC')} AND ts < {sel_end:DateTime64(6, 'UTC')})"
    in_base = f"if({{base_rest:UInt8}} = 1, NOT {in_sel}, ts < {{sel_start:DateTime64(6, 'UTC')}})"
    bad = f"toUInt8({_outcome(scope)})"
    return f"multiIf({in_sel}, 2 + {bad}, {in_base}, {bad}, NULL)"


def _column_pairs() -> str:
    """Every cohort-describing column of a request as ``(column, value)`` tuples, plain columns first."""
    return ("arrayConcat([('service', service), ('operation', operation), ('kind', kind)], "
            "arrayMap(kv -> (concat('attr.', kv.1), kv.2), CAST(attrs, 'Array(Tuple(String, String))')))")


def rate_series(table: TraceTable, scope: Scope, bucket_s: int) -> Statement:
    """Requests, bad, errors and slow per ``bucket_s`` bucket (epoch-aligned): the rate series and change-point
    input."""
    params: dict[str, object] = {"bucket_s": int(bucket_s)}
    sql = f"""SELECT toDateTime64(toStartOfInterval(ts, toIntervalSecond({{bucket_s:UInt32}})), 6, 'UTC') AS bucket,
    count() AS requests, countIf({_outcome(scope)}) AS bad, countIf(is_error) AS errors, countIf(is_slow) AS slow
FROM {normalised_spans(table, scope, params)}
GROUP BY bucket ORDER BY bucket"""
    return Statement(sql, params)


def latency_histogram(table: TraceTable, scope: Scope, bucket_s: int, edges_ms: Sequence[float]) -> Statement:
    """Requests and bad per time bucket and latency bin (the heatmap): bin i holds
    ``edges_ms[i-1] <= d < edges_ms[i]``."""
    params: dict[str, object] = {"bucket_s": int(bucket_s), "edges_ms": [float(e) for e in sorted(edges_ms)]}
    sql = f"""SELECT toDateTime64(toStartOfInterval(ts, toIntervalSecond({{bucket_s:UInt32}})), 6, 'UTC') AS bucket,
    toUInt16(arraySum(arrayMap(e -> duration_ms >= e, {{edges_ms:Array(Float64)}}))) AS bin,
    count() AS requests, countIf({_outcome(scope)}) AS bad
FROM {normalised_spans(table, scope, params)}
GROUP BY bucket, bin ORDER BY bucket, bin"""
    return Statement(sql, params)


def attribute_cardinality(table: TraceTable, scope: Scope, id_key_pattern: str) -> Statement:
    """Per column: requests carrying it and its distinct values (``uniqExact``); keys matching ``id_key_pattern``
    (an RE2 regex over the key without ``attr.``) are left out. A row with column ``''`` holds the request count."""
    params: dict[str, object] = {"id_pattern": id_key_pattern}
    sql = f"""SELECT kv.1 AS column, count() AS n_present, uniqExact(kv.2) AS n_values
FROM {normalised_spans(table, scope, params)}
ARRAY JOIN arrayPushFront(arrayFilter(kv -> NOT match(if(startsWith(kv.1, 'attr.'), substring(kv.1, 6), kv.1),
                                                        {{id_pattern:String}}),
                                      {_column_pairs()}), ('', '')) AS kv
GROUP BY column ORDER BY column"""
    return Statement(sql, params)


def value_counts(table: TraceTable, scope: Scope, split: Window, columns: Sequence[str]) -> Statement:
    """Requests per ``column, value, cls`` for the chosen columns (present values only; a row with column
    ``''`` holds the per-class totals, from which missing-value counts follow)."""
    params: dict[str, object] = {}
    # only the chosen keys, each read straight from the two maps (not every attribute of every request)
    pairs = ["('', CAST('', 'Nullable(String)'))"]
    for i, column in enumerate(dict.fromkeys(columns)):
        params[f"column_{i}"] = column
        pairs.append(f"({{column_{i}:String}}, toNullable({column_expr(column, params, f'value_{i}')}))")
    sql = f"""SELECT kv.1 AS column, assumeNotNull(kv.2) AS value, cls, count() AS n
FROM (SELECT *, {_cls(split, scope, params)} AS cls FROM {normalised_spans(table, scope, params)})
ARRAY JOIN arrayFilter(kv -> kv.2 IS NOT NULL, [{', '.join(pairs)}]) AS kv
WHERE cls IS NOT NULL
GROUP BY column, value, cls"""
    return Statement(sql, params)


def combination_counts(table: TraceTable, scope: Scope, split: Window, columns: Sequence[str]) -> Statement:
    """Requests per class for every non-empty subset of 2–3 columns and each value combination
    (``GROUPING SETS``; ``in_set`` is a bitmask, bit i set when ``columns[i]`` is in the subset)."""
    if not 2 <= len(columns) <= 3:
        raise ConfigError(f"combination counts take 2 or 3 columns, not {len(columns)}")
    params: dict[str, object] = {}
    values = [f"{column_expr(c, params, f'combo_{i}')} AS v{i}" for i, c in enumerate(columns)]
    names = [f"v{i}" for i in range(len(columns))]
    subsets = [[names[i] for i in range(len(names)) if mask >> i & 1] for mask in range(1, 1 << len(names))]
    sets = ", ".join("(" + ", ".join(s + ["cls"]) + ")" for s in subsets)
    # grouping() sets bit (n-1-i) when argument i is *not* in the grouping set (SQL standard)
    full = (1 << len(names)) - 1
    sql = f"""SELECT bitXor(toUInt8(grouping({', '.join(reversed(names))})), {full}) AS in_set,
    {', '.join(names)}, cls, count() AS n
FROM (SELECT {', '.join(values)}, {_cls(split, scope, params)} AS cls FROM {normalised_spans(table, scope, params)})
WHERE cls IS NOT NULL
GROUP BY GROUPING SETS ({sets})
SETTINGS group_by_use_nulls = 1"""
    return Statement(sql, params)


def distinct_per_period(table: TraceTable, scope: Scope, split: Window, columns: Sequence[str]) -> Statement:
    """Per period (``selection``/``baseline``) and column: distinct values (``uniqExact``, exact) over all
    requests and over the bad ones — users and tenants reached."""
    params: dict[str, object] = {}
    aggs = []
    for i, column in enumerate(columns):
        expr = column_expr(column, params, f"distinct_{i}")
        aggs.append(f"uniqExact({expr}) AS all_{i}, uniqExactIf({expr}, cls % 2 = 1) AS bad_{i}")
    sql = f"""SELECT if(cls >= 2, 'selection', 'baseline') AS period, count() AS requests, {', '.join(aggs)}
FROM (SELECT *, {_cls(split, scope, params)} AS cls FROM {normalised_spans(table, scope, params)})
WHERE cls IS NOT NULL
GROUP BY period ORDER BY period"""
    return Statement(sql, params)


def service_edges(table: TraceTable, scope: Scope, quantiles: tuple[float, ...] = (0.5, 0.99)) -> Statement:
    """Parent → child service edges (different services) with calls, bad and errors of the child spans, and
    exact latency quantiles of the child spans (linear interpolation)."""
    every = Scope(scope.start, scope.end, scope.slo, scope.outcome, roots_only=False, where=scope.where)
    params: dict[str, object] = {}
    children = normalised_spans(table, every, params, extra=("ParentSpanId != ''",))
    # callers of any cohort, read straight from the table; the join is on one 64-bit hash of (TraceId, SpanId),
    # several times faster than on the two strings (a collision among a window's spans is ~n²/2⁶⁵)
    parents = f"""(SELECT cityHash64(TraceId, SpanId) AS span_key, toString(ServiceName) AS service
    FROM {table.ident}
    WHERE Timestamp >= {{start:DateTime64(6, 'UTC')}} AND Timestamp < {{end:DateTime64(6, 'UTC')}})"""
    levels = ", ".join(repr(float(q)) for q in quantiles)
    sql = f"""SELECT p.service AS caller, c.service AS callee, count() AS calls, countIf(c.{_outcome(every)}) AS bad,
    countIf(c.is_error) AS errors, quantilesExactInclusive({levels})(c.duration_ms) AS duration_quantiles_ms
FROM {children} AS c
INNER JOIN {parents} AS p ON c.parent_key = p.span_key
WHERE p.service != c.service
GROUP BY caller, callee ORDER BY calls DESC, caller, callee"""
    return Statement(sql, params)


def window_summary(table: TraceTable, scope: Scope) -> Statement:
    """Requests of the scope with their first and last start (what a result was computed over) and the
    attribute keys they carry (roles are resolved from them)."""
    params: dict[str, object] = {}
    sql = f"""SELECT count() AS requests,
    toDateTime64(min(ts), 6, 'UTC') AS first, toDateTime64(max(ts), 6, 'UTC') AS last,
    arraySort(arrayFilter(k -> NOT has({{consumed:Array(String)}}, k),
        arrayDistinct(arrayConcat(groupUniqArrayArray(mapKeys(res_attrs)), groupUniqArrayArray(mapKeys(span_attrs))))))
        AS keys
FROM {normalised_spans(table, scope, params)}"""
    return Statement(sql, params)


def _class_sums() -> str:
    return ("countIf(cls = 3) AS bad, countIf(cls >= 2) AS total, countIf(cls = 1) AS base_bad, "
            "countIf(cls < 2) AS base_total")


def leaf_counts(table: TraceTable, scope: Scope, split: Window, columns: Sequence[str]) -> Statement:
    """Per value combination of ``columns`` (NULL = missing): bad/total in the selection and the baseline —
    the leaves of the cohort search (``analysis.cohort.find.request_leaves``)."""
    params: dict[str, object] = {}
    values = [f"{column_expr(c, params, f'leaf_{i}')} AS v{i}" for i, c in enumerate(columns)]
    names = ", ".join(f"v{i}" for i in range(len(columns)))
    sql = f"""SELECT {names}, {_class_sums()}
FROM (SELECT {', '.join(values)}, {_cls(split, scope, params)} AS cls FROM {normalised_spans(table, scope, params)})
WHERE cls IS NOT NULL
GROUP BY {names}"""
    return Statement(sql, params)


def group_counts(table: TraceTable, scope: Scope, split: Window, column: str) -> Statement:
    """Per value of ``column`` (NULL = missing): bad/total in the selection and the baseline (tenants, regions)."""
    params: dict[str, object] = {}
    sql = f"""SELECT value, {_class_sums()}
FROM (SELECT {column_expr(column, params, 'group')} AS value, {_cls(split, scope, params)} AS cls
      FROM {normalised_spans(table, scope, params)})
WHERE cls IS NOT NULL
GROUP BY value"""
    return Statement(sql, params)


def per_user_counts(table: TraceTable, scope: Scope, split: Window, column: str) -> Statement:
    """Selection users by how many requests they sent: ``n, users, users_bad`` (a user with no value is one
    more user, as a group-by over the requests counts it)."""
    params: dict[str, object] = {}
    sql = f"""SELECT n, count() AS users, countIf(b > 0) AS users_bad FROM (
    SELECT {column_expr(column, params, 'user')} AS user, count() AS n, countIf(cls = 3) AS b
    FROM (SELECT *, {_cls(split, scope, params)} AS cls FROM {normalised_spans(table, scope, params)})
    WHERE cls >= 2
    GROUP BY user)
GROUP BY n ORDER BY n"""
    return Statement(sql, params)
