"""One self-contained HTML file for a postmortem: charts, tables, blast radius, notes. No network needed.

plotly.js comes from the installed plotly package and is inlined once; each figure is added with
``plotly.io.to_html(include_plotlyjs=False)``, which JSON-escapes ``<``, ``>`` and ``/``. Every
other piece of text goes through ``html.escape``, so hostile attribute values render as text.
"""

from __future__ import annotations

import html
import json
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs

from snapshots.bundle import Snapshot

MAX_TABLE_ROWS = 200
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#1f2328;padding:0 1rem}
h1{margin-bottom:.2rem}.meta{color:#59636e}.banner{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem 1rem;border-radius:6px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.85rem}td,th{border:1px solid #d1d9e0;padding:.25rem .5rem;text-align:left}
th{background:#f6f8fa}pre.notes{white-space:pre-wrap;background:#f6f8fa;padding:1rem;border-radius:6px}
.figure{margin:1rem 0 2rem}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(frame: pl.DataFrame) -> str:
    shown = frame.head(MAX_TABLE_ROWS)
    head = "".join(f"<th>{_e(c)}</th>" for c in shown.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in shown.iter_rows())
    hidden = frame.height - shown.height
    more = f"<p class='meta'>{hidden} more rows not shown.</p>" if hidden else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}"


def _kv(values: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v if isinstance(v, (str, int, float)) or v is None else json.dumps(v))}</td></tr>"
        for k, v in values.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _figure_html(fig: dict[str, Any] | go.Figure) -> str:
    figure = fig if isinstance(fig, go.Figure) else go.Figure(fig)
    return pio.to_html(figure, include_plotlyjs=False, full_html=False, config={"displaylogo": False})


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


def export_html(snapshot: Snapshot) -> str:
    """The whole snapshot as one HTML document (about 5 MB: plotly.js is inlined)."""
    m = snapshot.manifest
    figures: dict[str, Any] = dict(snapshot.figures) or dict(default_figures(snapshot))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; script-src 'unsafe-inline' "
        "'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:\">",
        f"<title>{_e(m.title)} — Faultline snapshot</title><style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{_e(m.title)}</h1>",
        f"<p class='meta'>Faultline snapshot {_e(m.snapshot_id or '')} · taken {_e(m.created_at)}"
        f"{' by ' + _e(m.author) if m.author else ''} · page {_e(m.page or '-')}</p>",
        f"<p class='banner'>Read-only copy of what the sharer saw. Time range {_e(m.time_range[0])} → "
        f"{_e(m.time_range[1])}. {_e(_redaction_line(m.redaction))} {_e(_sampling_line(m.sampling))}</p>",
    ]
    if m.notes:
        parts.append(f"<h2>Notes</h2><pre class='notes'>{_e(m.notes)}</pre>")
    if m.filter:
        parts.append(f"<h2>Filter</h2>{_kv(m.filter)}")
    if m.values:
        parts.append(f"<h2>Results</h2>{_kv(m.values)}")
    for name, table in snapshot.tables.items():
        parts.append(f"<h2>{_e(name)}</h2>{_table(table)}")
    for name, fig in figures.items():
        parts.append(f"<h2>{_e(name)}</h2><div class='figure'>{_figure_html(fig)}</div>")
    if m.notices:
        parts.append("<h2>Notices</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in m.notices) + "</ul>")
    if m.queries:
        items = "".join(f"<li><code>{_e(json.dumps(q))}</code></li>" for q in m.queries)
        parts.append(f"<h2>Executed queries</h2><ul>{items}</ul>")
    rows = {kind: f"{frame.height} rows" for kind, frame in snapshot.frames.items()}
    parts.append(f"<h2>Data in this snapshot</h2>{_kv(rows)}</body></html>")
    return "\n".join(parts)


def _redaction_line(redaction: dict[str, Any]) -> str:
    if not redaction.get("enabled"):
        return "Redaction was off."
    hashed = ", ".join(redaction.get("hashed_columns") or []) or "none present"
    return f"User ids hashed ({hashed}); client IPs dropped; query text {redaction.get('query_text')}."


def _sampling_line(sampling: dict[str, Any]) -> str:
    spans = sampling.get("spans") or {}
    if not spans.get("applied"):
        return ""
    return f"Spans sampled: {spans['rows_kept']} of {spans['rows_before']} kept (whole traces, bound {spans['bound']})."
