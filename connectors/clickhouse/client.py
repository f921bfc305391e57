"""The ClickHouse HTTP interface over httpx: the query in the body, typed parameters, results into polars.

* SQL carries ``{name:Type}`` placeholders and the values travel as ``param_<name>`` URL parameters
  (text in ClickHouse's escaped format, see :func:`param_text`); no user input is ever spliced into SQL.
* Results come back as ``FORMAT Parquet`` (read straight into polars) or ``JSONCompact``.
* ``max_execution_time`` is set from the page's deadline, so the server stops the query when the
  page would stop waiting; every other setting is a URL parameter too.
* ClickHouse's ``Code: N. DB::Exception: …`` (body or ``X-ClickHouse-Exception-Code``) is mapped onto
  ``connectors.errors``: timeouts → ``SourceTimeout``, auth → ``SourceRejected`` naming the secrets,
  unknown table/database → ``ConfigError``, overload → ``SourceUnavailable``, the rest → ``SourceRejected``
  with the server's message. The server can also fail mid-stream after a 200: the tail is checked.

Credentials come from the source's secrets (``username``/``password``), sent by ``make_client`` as basic
auth. Every POST goes through ``connectors.runtime.http.guarded`` (the breaker's admit/settle, as every GET).
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import polars as pl

from config import SourceConfig
from connectors.errors import (
    ConfigError,
    ConnectorError,
    PayloadError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from connectors.runtime import http
from connectors.runtime.log import log_event
from connectors.runtime.resilience import current_deadline

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MIN_EXECUTION_S = 1.0  # ClickHouse checks the limit between blocks: less than this only fails fast queries
_CODE = re.compile(r"Code: (\d+)\. DB::Exception: (.*)", re.DOTALL)

# ClickHouse error codes (src/Common/ErrorCodes.cpp) by what they mean for the on-call engineer
_TIMEOUT_CODES = frozenset({159, 160, 209, 394})  # TIMEOUT_EXCEEDED, TOO_SLOW, SOCKET_TIMEOUT, QUERY_WAS_CANCELLED
_AUTH_CODES = frozenset({192, 193, 194, 195, 516})  # UNKNOWN_USER … IP_ADDRESS_NOT_ALLOWED, AUTHENTICATION_FAILED
_DENIED_CODES = frozenset({164, 497})  # READONLY, ACCESS_DENIED
_MISSING_CODES = frozenset({60, 81})  # UNKNOWN_TABLE, UNKNOWN_DATABASE
_BUSY_CODES = frozenset({202, 203, 210, 241, 279})  # too many queries, no free connection, network, memory


def execution_limit_s(remaining_s: float) -> float:
    """ClickHouse's ``max_execution_time`` for a call with ``remaining_s`` left: the server gives up a little
    before we stop reading, so its own TIMEOUT_EXCEEDED (and no half-read answer) comes back."""
    return round(max(MIN_EXECUTION_S, remaining_s - max(0.5, remaining_s * 0.1)), 1)


def quote_identifier(name: str) -> str:
    """A database/table name as a backquoted identifier; anything but ``[A-Za-z_][A-Za-z0-9_]*`` is a ConfigError."""
    if not IDENTIFIER.match(name):
        raise ConfigError(f"{name!r} is not a plain ClickHouse identifier (letters, digits and _ only)",
                          hint="options.database and options.table")
    return f"`{name}`"


def param_text(value: object) -> str:
    """A Python value as the text ClickHouse parses for a ``{name:Type}`` parameter."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f")  # for DateTime64(6, 'UTC')
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _escaped(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_array_item(v) for v in value) + "]"
    raise TypeError(f"no ClickHouse parameter text for {type(value).__name__}")


def _escaped(text: str) -> str:
    # parameter values are read in the escaped (TSV) text format: backslash sequences are interpreted
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _array_item(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return param_text(value)


class ClickHouseClient:
    """One source's HTTP client: :meth:`frame` (Parquet → polars) and :meth:`rows` (JSONCompact)."""

    def __init__(self, source: SourceConfig, client: httpx.Client | None = None) -> None:
        self.name = source.name
        self.http = client if client is not None else http.make_client(source)
        self.bytes_read = 0  # response bytes received, for "only aggregates cross the wire"

    def frame(self, sql: str, params: Mapping[str, object] | None = None,
              settings: Mapping[str, object] | None = None) -> pl.DataFrame:
        """Run a SELECT and read its ``FORMAT Parquet`` answer into polars."""
        body = self._post(sql + "\nFORMAT Parquet", params, {"output_format_parquet_string_as_string": 1,
                                                             **(settings or {})})
        try:
            return pl.read_parquet(io.BytesIO(body))
        except Exception as exc:  # polars raises ComputeError/OSError variants for a broken file
            self._raise_from_tail(body)
            raise PayloadError(f"the Parquet answer could not be read ({type(exc).__name__})", source=self.name,
                               hint="that options.url points at ClickHouse's HTTP port") from exc

    def rows(self, sql: str, params: Mapping[str, object] | None = None,
             settings: Mapping[str, object] | None = None) -> list[list[Any]]:
        """Run a SELECT and return the ``data`` rows of its ``FORMAT JSONCompact`` answer."""
        body = self._post(sql + "\nFORMAT JSONCompact", params, settings)
        try:
            doc = json.loads(body)
            data = doc["data"]
        except (ValueError, KeyError, TypeError) as exc:
            self._raise_from_tail(body)
            raise PayloadError("the JSONCompact answer is not what ClickHouse sends", source=self.name,
                               hint="that options.url points at ClickHouse's HTTP port") from exc
        if not isinstance(data, list):
            raise PayloadError("JSONCompact 'data' is not a list", source=self.name)
        return data

    def _post(self, sql: str, params: Mapping[str, object] | None, settings: Mapping[str, object] | None) -> bytes:
        """POST one query under the deadline and the source's breaker; errors mapped onto the tree."""
        # wait_end_of_query: the server buffers the (small) answer, so a failure mid-query still gets its
        # error status instead of a 200 with the exception text at the end of a cut body
        url_params = {"wait_end_of_query": "1"}
        url_params.update({f"param_{k}": param_text(v) for k, v in (params or {}).items()})
        url_params.update({k: param_text(v) for k, v in (settings or {}).items()})
        timeout: httpx.Timeout | None = None
        limits = [float(str(settings["max_execution_time"]))] if settings and "max_execution_time" in settings else []
        deadline = current_deadline()
        if deadline is not None:
            remaining = deadline.remaining_s()
            if remaining <= 0.05:
                raise SourceTimeout("the page's deadline ran out before the query", source=self.name,
                                    hint="the slowest source on this page")
            base = self.http.timeout
            timeout = httpx.Timeout(read=min(base.read or remaining, remaining), connect=min(base.connect or remaining,
                                                                                             remaining),
                                    write=min(base.write or remaining, remaining), pool=min(base.pool or remaining,
                                                                                            remaining))
            limits.append(execution_limit_s(remaining))
        elif self.http.timeout.read is not None:  # no page deadline: the server still stops when we stop reading
            limits.append(execution_limit_s(self.http.timeout.read))
        if limits:
            url_params["max_execution_time"] = repr(min(limits))
        return http.guarded(self.http, self.name, lambda: self._send(sql, params, url_params, timeout))

    def _send(self, sql: str, params: Mapping[str, object] | None, url_params: Mapping[str, str],
              timeout: httpx.Timeout | None) -> bytes:
        started, status, error = time.perf_counter(), None, None
        try:
            with http.mapped_errors(self.name):
                kwargs: dict[str, Any] = {"params": url_params, "content": sql.encode("utf-8")}
                if timeout is not None:
                    kwargs["timeout"] = timeout
                response = self.http.post("/", **kwargs)
            status = response.status_code
            body = response.content
            if len(body) > http.MAX_BODY_BYTES:
                raise PayloadError(f"answer of {len(body)} bytes exceeds the {http.MAX_BODY_BYTES} byte limit",
                                   source=self.name, hint="narrow the query")
            if status >= 400:
                self._raise_for(response)
            self.bytes_read += len(body)
            return body
        except ConnectorError as exc:
            error = exc
            raise
        finally:
            log_event("clickhouse_query", source=self.name, param_names=sorted(params or {}), status=status,
                      outcome=type(error).__name__ if error else "ok",
                      duration_ms=round((time.perf_counter() - started) * 1000.0, 1))

    def _raise_for(self, response: httpx.Response) -> None:
        header = response.headers.get("X-ClickHouse-Exception-Code", "")
        text = response.text
        match = _CODE.search(text)
        code = int(header) if header.isdigit() else int(match.group(1)) if match else None
        if code is None:
            http.check_status(response, self.name)  # not ClickHouse's text: the generic HTTP mapping
            return
        raise self.error_for(code, match.group(2) if match else text)

    def _raise_from_tail(self, body: bytes) -> None:
        """A query that fails after the 200 was sent leaves the exception text at the end of the body."""
        tail = body[-4096:].decode("utf-8", "replace")
        match = _CODE.search(tail)
        if match:
            raise self.error_for(int(match.group(1)), match.group(2))

    def error_for(self, code: int, message: str) -> ConnectorError:
        """The connector error for ClickHouse exception ``code`` with the server's ``message``."""
        text = f"ClickHouse code {code}: {_first_line(message)}"
        if code in _TIMEOUT_CODES:
            return SourceTimeout(text, source=self.name,
                                 hint="narrow the window or raise timeout_s; the server stopped at max_execution_time")
        if code in _AUTH_CODES:
            return SourceRejected(f"authentication failed ({text})", source=self.name,
                                  hint=f"username/password under [connections.{self.name}] in .streamlit/secrets.toml")
        if code in _DENIED_CODES:
            return SourceRejected(f"not allowed ({text})", source=self.name,
                                  hint="the user's grants (SELECT on the traces table)")
        if code in _MISSING_CODES:
            return ConfigError(text, source=self.name, hint="options.database and options.table")
        if code in _BUSY_CODES:
            return SourceUnavailable(text, source=self.name, hint="the ClickHouse server's load")
        return SourceRejected(text, source=self.name, hint="the query (our SQL or the table's layout)")


def _first_line(message: str, limit: int = 400) -> str:
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
