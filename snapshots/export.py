"""One self-contained HTML file for a postmortem: charts, tables, blast radius, notes. No network needed.

plotly.js comes from the installed plotly package and is inlined once; each figure is added with
``plotly.io.to_html(include_plotlyjs=False)``, which JSON-escapes ``<``, ``>`` and ``/``. Every
other piece of text goes through ``html.escape``, so hostile attribute values render as text.
"""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs

from analysis.traces import duration_text, format_duration_ms
from snapshots.bundle import Snapshot

MAX_TABLE_ROWS = 200
MAX_LIST_ITEMS = 12
HIDDEN_EVENT_KINDS = ("breaker_config",)  # configuration records, not changes (as on the pages' timelines)
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_RATE_WORDS = ("rate", "share", "ratio", "fraction", "objective")
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#1f2328;padding:0 1rem}
h1{margin-bottom:.2rem}.meta{color:#59636e}.banner{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem 1rem;border-radius:6px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.85rem}td,th{border:1px solid #d1d9e0;padding:.25rem .5rem;text-align:left}
th{background:#f6f8fa}pre.notes{white-space:pre-wrap;background:#f6f8fa;padding:1rem;border-radius:6px}
td.num{text-align:right;font-variant-numeric:tabular-nums}dl.summary dt{font-weight:600;margin-top:.6rem}
dl.summary dd{margin:.1rem 0 0 0}.figure{margin:1rem 0 2rem}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _words(name: str) -> str:
    return name.replace("_", " ")


def format_time(value: Any) -> str:
    """An ISO timestamp (or datetime) as ``YYYY-MM-DD HH:MM:SS UTC``; anything else unchanged as text."""
    if isinstance(value, str) and _ISO_TIME.match(value.strip()):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    return "" if value is None else str(value)


def format_percent(fraction: float) -> str:
    """0.0006765899864682003 → "0.068 %", 0.083 → "8.3 %", 1 → "100 %" (two significant digits)."""
    if fraction == 0:
        return "0 %"
    return f"{fraction * 100:.2g} %" if abs(fraction) < 0.1 else f"{fraction * 100:.0f} %"


def format_number(value: float) -> str:
    """Thousands separated, with as many decimals as a reader needs (1,234 · 12.3 · 0.0412)."""
    if math.isnan(value):
        return "–"
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.1f}"
    return f"{value:.3g}"


def format_value(name: str, value: Any) -> str:
    """A stored result as a person reads it: numbers formatted (rates as %), times in UTC to the second,
    lists in words (long ones cut with "and n more"), cohort pairs as ``key = value``."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        rate = any(w in name.lower() for w in _RATE_WORDS) and -1 <= value <= 1
        if name.lower().endswith("_ms"):
            return format_duration_ms(value)
        return format_percent(value) if rate else format_number(value)
    if isinstance(value, str):
        return format_time(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        if all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
            return " and ".join(f"{k} = {v}" for k, v in value)
        shown = [format_value(name, v) for v in value[:MAX_LIST_ITEMS]]
        more = len(value) - len(shown)
        return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    if isinstance(value, dict):
        return "; ".join(f"{_words(str(k))}: {format_value(str(k), v)}" for k, v in value.items())
    return str(value)


def readable_table(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text a reader can take in: times to the second (UTC), ``*_ms`` as durations,
    rates and shares as %, other floats to three significant digits, lists joined."""
    exprs: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        lowered = name.lower()
        if isinstance(dtype, pl.Datetime):
            moment = col.dt.convert_time_zone("UTC") if dtype.time_zone else col
            exprs.append(moment.dt.strftime("%Y-%m-%d %H:%M:%S").alias(name))
        elif dtype.is_float() and lowered.endswith(("_ms", "(ms)")):
            exprs.append(duration_text(col.cast(pl.Float64)).alias(name))
        elif dtype.is_float() and any(w in lowered for w in _RATE_WORDS):
            pct = (col * 100).round_sig_figs(2)
            exprs.append(pl.when(col.is_null()).then(pl.lit("–")).when(col == 0).then(pl.lit("0 %"))
                         .otherwise(pl.format("{} %", pct)).alias(name))
        elif dtype.is_float():
            exprs.append(col.round_sig_figs(3).cast(pl.String).fill_null("–").alias(name))
        elif isinstance(dtype, pl.List):
            exprs.append(col.cast(pl.List(pl.String)).list.join(", ").alias(name))
        elif isinstance(dtype, (pl.Struct, pl.Array)):
            exprs.append(col.struct.json_encode().alias(name) if isinstance(dtype, pl.Struct) else col.cast(pl.String))
        else:
            exprs.append(col)
    return frame.select(exprs)


def _table(frame: pl.DataFrame) -> str:
    shown = readable_table(frame.head(MAX_TABLE_ROWS))
    numeric = {c for c, t in frame.schema.items() if t.is_numeric()}
    head = "".join(f"<th>{_e(_words(c))}</th>" for c in shown.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td{' class=num' if c in numeric else ''}>{_e('–' if v is None else v)}</td>"
                         for c, v in zip(shown.columns, row, strict=True)) + "</tr>"
        for row in shown.iter_rows()
    )
    hidden = frame.height - shown.height
    more = f"<p class='meta'>{hidden:,} more rows not shown.</p>" if hidden else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}"


def _kv(values: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(_words(k))}</th><td>{_e(format_value(k, v))}</td></tr>" for k, v in values.items())
    return f"<table><tbody>{rows}</tbody></table>"


def _figure_html(fig: dict[str, Any] | go.Figure) -> str:
    figure = fig if isinstance(fig, go.Figure) else go.Figure(fig)
    return str(pio.to_html(figure, include_plotlyjs=False, full_html=False, config={"displaylogo": False}))


def default_figures(snapshot: Snapshot) -> dict[str, go.Figure]:
    """Charts rebuilt from the frames when the page stored none: requests and errors per minute."""
    spans = snapshot.frame("spans")
    if spans.height == 0:
        return {}
    per_min = (
        spans.filter(pl.col("is_root"))
        .sort("start")
        .group_by_dynamic("start", every="1m")
        .agg(
            requests=pl.len(),
            errors=((pl.col("status") == "error") | (pl.col("http_status").fill_null(0) >= 500)).sum(),
            p99_ms=pl.col("duration_ms").quantile(0.99),
        )
    )
    fig = go.Figure()
    fig.add_scatter(x=per_min["start"].to_list(), y=per_min["requests"].to_list(), name="requests / min")
    fig.add_scatter(x=per_min["start"].to_list(), y=per_min["errors"].to_list(), name="errors / min")
    fig.update_layout(title="Requests and errors per minute (root spans)", height=360)
    return {"requests_per_minute": fig}


# results the summary and timeline already tell; the rest go under "Other results"
_SUMMARISED = ("top_suspect", "top_suspect_says", "blast_radius", "incident_start", "incident_how", "incident_window",
               "what_changed")


def cohort_in_words(filter_: dict[str, Any]) -> str:
    """The filter's cohort and service as a sentence part: "requests with region = eu-west-1 and …"."""
    pairs = [p for p in filter_.get("cohort") or [] if isinstance(p, (list, tuple)) and len(p) == 2]
    words = "requests with " + " and ".join(f"{k} = {v}" for k, v in pairs) if pairs else "all requests"
    if filter_.get("service"):
        words += f" that went through {filter_['service']}"
    return words


def blast_radius_in_words(radius: dict[str, Any]) -> list[str]:
    """The stored BlastRadius (as JSON) as sentences, numbers formatted, long lists cut."""
    def num(key: str) -> str:
        return format_value(key, radius.get(key))

    lines = []
    if "excess_bad" in radius:
        lines.append(f"{num('excess_bad')} bad requests above the pre-incident baseline ({num('bad')} bad of "
                     f"{num('requests')}; bad rate {num('incident_rate')} since the start against "
                     f"{num('baseline_rate')} before).")
    if "users_affected" in radius:
        expected = radius.get("users_expected") or 0.0
        excess = max(0.0, float(radius.get("users_affected") or 0) - float(expected))
        lines.append(f"{format_number(excess)} users affected beyond the baseline ({num('users_affected')} saw a bad "
                     f"request; {format_number(float(expected))} would have at the baseline rate).")
    tenants = radius.get("tenants_affected")
    if tenants is not None:
        lines.append(f"{len(tenants):,} tenant(s) got significantly worse" + (f": {num('tenants_affected')}." if tenants else "."))
    if radius.get("regions_affected") is not None:
        lines.append(f"Regions affected: {num('regions_affected')}; unaffected: {num('regions_unaffected')}.")
    return lines


def timeline(snapshot: Snapshot) -> pl.DataFrame:
    """The incident start and every change event in the snapshot's window, oldest first, to the second (UTC)."""
    m = snapshot.manifest
    events = snapshot.frame("events").filter(~pl.col("kind").is_in(list(HIDDEN_EVENT_KINDS)))
    lo, hi = (_parse_time(t) for t in m.time_range)
    if lo is not None:
        events = events.filter(pl.col("ts") >= lo)
    if hi is not None:
        events = events.filter(pl.col("ts") <= hi)
    # per-instance copies of one change (six gateways flipping one breaker) read as one line
    rows = (
        events.sort("ts").with_columns(pl.col("ts").dt.truncate("1m").alias("minute"), pl.col("service").fill_null(""))
        .group_by("kind", "service", "minute", maintain_order=True)
        .agg(pl.col("ts").first(), pl.col("description").fill_null("").first(), pl.len().alias("n"))
        .select(
            "ts", pl.col("kind").str.replace_all("_", " ").alias("what"), "service",
            pl.when(pl.col("n") > 1).then(pl.format("{} (and {} more like it)", pl.col("description"), pl.col("n") - 1))
            .otherwise(pl.col("description")).alias("detail"),
        )
    )
    start = _parse_time(m.values.get("incident_start"))
    if start is not None:
        rows = pl.concat([rows, pl.DataFrame(
            {"ts": [start], "what": ["incident start"], "service": [""], "detail": [str(m.values.get("incident_how") or "")]},
            schema=rows.schema)])
    return rows.sort("ts").select(pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S").alias("time (UTC)"), "what", "service",
                                  "detail")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _ISO_TIME.match(value.strip()):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _summary(snapshot: Snapshot) -> str:
    m, values = snapshot.manifest, snapshot.manifest.values
    items = [("Who is affected", [f"Shown: {cohort_in_words(m.filter)}."])]
    if "top_suspect" in values:
        suspect = values.get("top_suspect")
        items[0][1].append(f"Top suspect cohort: {suspect}. {values.get('top_suspect_says') or ''}".strip()
                           if suspect else "No single cohort stood out: the bad requests were spread over every attribute.")
    if isinstance(values.get("blast_radius"), dict):
        items.append(("Blast radius", blast_radius_in_words(values["blast_radius"])))
    if values.get("incident_start"):
        how = f" ({values['incident_how']})" if values.get("incident_how") else ""
        items.append(("Incident start", [f"{format_time(values['incident_start'])}{how}."]))
    lo, hi = m.time_range
    items.append(("Window", [f"{format_time(lo) or 'start'} to {format_time(hi) or 'end'}."]))
    body = "".join(f"<dt>{_e(title)}</dt>" + "".join(f"<dd>{_e(line)}</dd>" for line in lines) for title, lines in items)
    return f"<h2>Summary</h2><dl class='summary'>{body}</dl>"


def export_html(snapshot: Snapshot) -> str:
    """The whole snapshot as one postmortem attachment (about 5 MB: plotly.js is inlined): the cohort in
    words, blast radius, timeline, figures and tables, numbers formatted and times in UTC to the second.
    Everything comes from what the snapshot stored; nothing is queried again."""
    m = snapshot.manifest
    figures: dict[str, Any] = dict(snapshot.figures) or dict(default_figures(snapshot))
    by = f" by {m.author}" if m.author else ""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        ("<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; script-src 'unsafe-inline' "
         "'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:\">"),
        f"<title>{_e(m.title)} — Faultline snapshot</title><style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{_e(m.title)}</h1>",
        (f"<p class='meta'>Faultline snapshot {_e(m.snapshot_id or '')} · taken {_e(format_time(m.created_at))}{_e(by)}"
         f" · from the {_e(_words(m.page or 'unknown').title())} page</p>"),
        (f"<p class='banner'>Read-only copy of what the sharer saw. {_e(_redaction_line(m.redaction))} "
         f"{_e(_sampling_line(m.sampling))}</p>"),
        _summary(snapshot),
    ]
    if m.notes:
        parts.append(f"<h2>Notes</h2><pre class='notes'>{_e(m.notes)}</pre>")
    events = timeline(snapshot)
    if events.height:
        parts.append(f"<h2>Timeline</h2>{_table(events)}")
    for name, fig in figures.items():
        parts.append(f"<h2>{_e(_words(name).capitalize())}</h2><div class='figure'>{_figure_html(fig)}</div>")
    for name, table in snapshot.tables.items():
        if name == "what_changed" and events.height:
            continue  # the timeline above says it, with the incident start
        parts.append(f"<h2>{_e(_words(name).capitalize())}</h2>{_table(table)}")
    others = {k: v for k, v in m.values.items() if k not in _SUMMARISED}
    if others:
        parts.append(f"<h2>Other results</h2>{_kv(others)}")
    if m.notices:
        parts.append("<h2>Notices</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in m.notices) + "</ul>")
    if m.queries:
        items = "".join(f"<li><code>{_e(_query_line(q))}</code></li>" for q in m.queries)
        parts.append(f"<h2>Executed queries</h2><ul>{items}</ul>")
    rows = {kind: frame.height for kind, frame in snapshot.frames.items()}
    parts.append(f"<h2>Data in this snapshot (rows)</h2>{_kv(rows)}</body></html>")
    return "\n".join(parts)


def _query_line(query: Any) -> str:
    if isinstance(query, dict):
        return " · ".join(f"{_words(str(k))}: {v}" for k, v in query.items())
    return str(query)


def _redaction_line(redaction: dict[str, Any]) -> str:
    if not redaction.get("enabled"):
        return "Redaction was off."
    hashed = ", ".join(redaction.get("hashed_columns") or []) or "none present"
    return f"User ids hashed ({hashed}); client IPs dropped; query text {redaction.get('query_text')}."


def _sampling_line(sampling: dict[str, Any]) -> str:
    spans = sampling.get("spans") or {}
    if not spans.get("applied"):
        return ""
    return (f"Spans sampled: {spans['rows_kept']:,} of {spans['rows_before']:,} kept (whole traces, "
            f"bound {spans['bound']:,}).")
