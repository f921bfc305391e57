"""The traces table as it is found: ``system.columns`` read once, the exporter layout detected.

Three layouts of the OpenTelemetry Collector ClickHouse exporter are in use (CLICKHOUSE_NOTES.md §1):

* ``current`` — ``Duration UInt64`` (ns), scope columns, ``SpanAttributes``/``ResourceAttributes``
  ``Map(LowCardinality(String), String)``, ``StatusCode`` ``'Error'|'Ok'|'Unset'``;
* ``older`` — ``Duration Int64``, no scope columns, ``STATUS_CODE_ERROR``/``SPAN_KIND_SERVER`` spellings
  (the SQL accepts both spellings whatever the layout);
* ``json`` — both attribute columns typed ``JSON`` (paths flattened back into a map when read).

A table that fits none of them is a :class:`ConfigError` naming the missing or mistyped columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from connectors.clickhouse.client import ClickHouseClient, quote_identifier
from connectors.errors import ConfigError

Variant = Literal["current", "older", "json"]

# column -> what its type must look like (a regex over system.columns.type)
REQUIRED: dict[str, tuple[str, str]] = {
    "Timestamp": (r"^DateTime64\(", "DateTime64(9)"),
    "TraceId": (r"^(LowCardinality\()?String\)?$", "String"),
    "SpanId": (r"^(LowCardinality\()?String\)?$", "String"),
    "ParentSpanId": (r"^(LowCardinality\()?String\)?$", "String"),
    "SpanName": (r"^(LowCardinality\()?String\)?$", "LowCardinality(String)"),
    "SpanKind": (r"^(LowCardinality\()?String\)?$", "LowCardinality(String)"),
    "ServiceName": (r"^(LowCardinality\()?String\)?$", "LowCardinality(String)"),
    "Duration": (r"^U?Int64$", "UInt64 (ns)"),
    "StatusCode": (r"^(LowCardinality\()?String\)?$", "LowCardinality(String)"),
    "ResourceAttributes": (r"^(Map\((LowCardinality\()?String\)?, String\)|JSON(\(.*\))?)$",
                           "Map(LowCardinality(String), String) or JSON"),
    "SpanAttributes": (r"^(Map\((LowCardinality\()?String\)?, String\)|JSON(\(.*\))?)$",
                       "Map(LowCardinality(String), String) or JSON"),
}
LOOKUP_SUFFIX = "_trace_id_ts"


@dataclass(frozen=True)
class TraceTable:
    """A traces table that fits one exporter layout; SQL fragments to read it the same way whatever the layout."""

    database: str
    table: str
    variant: Variant
    columns: Mapping[str, str]
    has_lookup: bool = False

    @property
    def ident(self) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(self.table)}"

    @property
    def lookup_ident(self) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(self.table + LOOKUP_SUFFIX)}"

    def attribute_map(self, column: str) -> str:
        """SQL for one attribute column as ``Map(String, String)``."""
        if self.variant == "json":  # JSON paths come back dotted, as the keys were written
            return f"CAST(mapFromArrays(JSONAllPaths({column}), JSONAllValues({column})), 'Map(String, String)')"
        return f"CAST({column}, 'Map(String, String)')"

    @property
    def status_message(self) -> str:
        return "StatusMessage" if "StatusMessage" in self.columns else "''"


def detect(columns: Mapping[str, str], database: str, table: str, *, has_lookup: bool = False) -> TraceTable:
    """The layout of a table from its ``name -> type`` columns, or a ConfigError saying what does not fit."""
    where = f"{database}.{table}"
    if not columns:
        raise ConfigError(f"table {where} does not exist (or this user cannot see it)",
                          hint="options.database / options.table and the user's grants")
    missing = [name for name in REQUIRED if name not in columns]
    mistyped = [f"{name} is {columns[name]} (expected {expected})" for name, (pattern, expected) in REQUIRED.items()
                if name in columns and not re.match(pattern, columns[name])]
    if missing or mistyped:
        named = [f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"] if missing else []
        parts = named + mistyped
        raise ConfigError(f"table {where} is not an OpenTelemetry exporter traces table: {'; '.join(parts)}",
                          hint="options.table (the exporter's default is otel_traces)")
    kinds = {columns["SpanAttributes"].startswith("JSON"), columns["ResourceAttributes"].startswith("JSON")}
    if len(kinds) > 1:
        raise ConfigError(f"table {where} mixes Map and JSON attribute columns (SpanAttributes is "
                          f"{columns['SpanAttributes']}, ResourceAttributes is {columns['ResourceAttributes']})",
                          hint="options.table")
    if kinds == {True}:
        variant: Variant = "json"
    elif columns["Duration"] == "Int64" or "ScopeName" not in columns:
        variant = "older"
    else:
        variant = "current"
    return TraceTable(database, table, variant, dict(columns), has_lookup)


def read_table(client: ClickHouseClient, database: str, table: str) -> TraceTable:
    """Read ``system.columns`` (and whether the trace-id lookup table exists) once and detect the layout."""
    quote_identifier(database), quote_identifier(table)  # validated before anything is sent
    rows = client.rows(
        "SELECT table, name, type FROM system.columns WHERE database = {database:String} "
        "AND table IN ({table:String}, {lookup:String}) ORDER BY table, position",
        {"database": database, "table": table, "lookup": table + LOOKUP_SUFFIX},
    )
    columns = {str(name): str(typ) for tbl, name, typ in rows if tbl == table}
    has_lookup = {"TraceId", "Start", "End"} <= {str(name) for tbl, name, _ in rows if tbl == table + LOOKUP_SUFFIX}
    return detect(columns, database, table, has_lookup=has_lookup)
