"""Command line (``python -m analysis cohort --input PATH | --sources FILE [...]`` or ``python -m cli``): who is
affected, from a trace file or from a configured source's window."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from analysis.outcome import OUTCOMES
from config import DEMO_CONFIG, AppConfig, SloConfig
from connectors.errors import ConnectorError

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """Bad input: printed as one line on stderr, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description="Faultline analysis from the command line")
    sub = parser.add_subparsers(dest="command", required=True)
    cohort = sub.add_parser("cohort", help="find the cohorts of requests the incident affects")
    given = cohort.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", metavar="PATH", help="trace file: OTLP/JSON (or JSON lines), Jaeger, Zipkin v2")
    given.add_argument("--sources", metavar="FILE", help="sources.yaml: analyse its window on one of its sources")
    cohort.add_argument("--source", default=None, metavar="NAME", help="with --sources: which source (default: the first)")
    cohort.add_argument("--secrets", default=".streamlit/secrets.toml", metavar="PATH",
                        help="with --sources: credentials under [connections.<name>]")
    # formats and outcomes are checked by run_cohort so a mistake is one clear line, not a usage dump
    cohort.add_argument("--format", default="auto", help="auto|otlp|jaeger|zipkin (default: sniffed)")
    cohort.add_argument("--outcome", default="bad", help="error|slow|bad (default: bad)")
    cohort.add_argument("--slo-ms", type=_number, default=None, metavar="MS", help="latency SLO for every request")
    cohort.add_argument("--incident-start", default=None, metavar="ISO8601",
                        help="default: detected from the rate of --outcome")
    cohort.add_argument("--top", type=_number, default=10, metavar="K")
    cohort.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _number(text: str) -> float:
    return float(text)  # argparse reports a ValueError as "invalid _number value"


def _parse_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise CliError(f"--incident-start {text!r} is not an ISO 8601 time (e.g. 2026-11-27T10:40:00Z)") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _config() -> AppConfig:
    """``sources.yaml`` by the usual precedence (its SLO and attribute roles); defaults if it is unusable."""
    from connectors.registry import load_config

    try:
        return load_config()
    except ConnectorError:
        return DEMO_CONFIG


def _slo(slo_ms: float | None, config: AppConfig) -> SloConfig:
    if slo_ms is not None:
        if slo_ms <= 0:
            raise CliError("--slo-ms must be a positive number of milliseconds")
        return SloConfig(default_ms=slo_ms)
    return config.slo


def run_cohort(args: argparse.Namespace) -> dict[str, object]:
    """The cohort report as the JSON-ready dict printed by ``--json`` (:meth:`Investigation.as_dict`)."""
    from analysis.cohort import investigate
    from analysis.outcome import roots
    from connectors.traces.files import spans_from_file
    from model.semconv import resolve_roles

    if args.outcome not in OUTCOMES:
        raise CliError(f"unknown --outcome {args.outcome!r}; expected error, slow or bad")
    start = _parse_start(args.incident_start)
    config = _config()
    slo = _slo(args.slo_ms, config)
    if args.top < 1 or args.top != int(args.top):
        raise CliError("--top must be a whole number of at least 1")
    if args.sources is not None:
        return _run_on_source(args, slo, start)
    requests = roots(spans_from_file(args.input, args.format))
    if requests.height == 0:
        raise CliError(f"{args.input}: no root spans (requests) found")
    roles = resolve_roles(requests.columns, config.attributes)
    report = investigate(requests, slo, roles, args.outcome, start, top=int(args.top)).as_dict()
    return report | {"computed_over": f"all {requests.height:,} requests in {args.input}"}


def _run_on_source(args: argparse.Namespace, slo: SloConfig, start: datetime | None) -> dict[str, object]:
    """The same report over the window of a configured source: counted where the spans are when the source
    can (``aggregates``, e.g. ClickHouse), else from a window-wide spans query."""
    from analysis.aggregates import investigate_aggregates
    from analysis.cohort import investigate
    from analysis.outcome import roots
    from connectors.base import Query
    from connectors.registry import build_connector, load_config
    from model.semconv import resolve_roles

    config = load_config(args.sources, _secrets(args.secrets))
    slo = slo if args.slo_ms is not None else config.slo
    chosen = [s for s in config.sources if args.source is None or s.name == args.source]
    if not chosen:
        names = ", ".join(s.name for s in config.sources)
        raise CliError(f"{args.sources}: no source named {args.source!r} (there are: {names})")
    source = chosen[0]
    window_start, window_end = _window(config)
    connector = build_connector(source)
    aggregates = getattr(connector, "aggregates", None)
    if callable(aggregates):
        counted = investigate_aggregates(aggregates(window_start, window_end, slo, outcome=args.outcome),
                                         config.attributes, start, top=int(args.top))
        return counted.investigation.as_dict() | {"computed_over": counted.over}
    result = connector.query([Query("cli", "spans", window_start, window_end, purpose="window")])[0]
    if result.error is not None:
        raise result.error
    spans = result.frame
    requests = roots(spans) if spans is not None else None
    if requests is None or requests.height == 0:
        raise CliError(f"source {source.name!r}: no root spans (requests) in {window_start:%Y-%m-%d %H:%M} – "
                       f"{window_end:%H:%M} UTC")
    roles = resolve_roles(requests.columns, config.attributes)
    report = investigate(requests, slo, roles, args.outcome, start, top=int(args.top)).as_dict()
    coverage = result.coverage
    sampled = coverage is not None and coverage.method == "sampled_evenly"
    over = (f"{requests.height:,} requests of {coverage.traces_read:,} of ≈ {coverage.traces_total or 0:,} traces, "
            "sampled evenly" if sampled and coverage is not None else f"all {requests.height:,} requests")
    return report | {"computed_over": f"{over} from source {source.name!r}"}


def _secrets(path: str) -> dict[str, object]:
    import tomllib
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        return {}
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"{path}: not a readable TOML secrets file ({exc})") from exc


def _window(config: AppConfig) -> tuple[datetime, datetime]:
    """The configured window (fixed, or the last ``last_minutes`` before now)."""
    from datetime import timedelta

    window = config.window
    now = datetime.now(UTC)
    if window is None:
        return now - timedelta(minutes=60), now
    end = window.end or (now if window.start is None else window.start + timedelta(minutes=window.last_minutes))
    start = window.start or end - timedelta(minutes=window.last_minutes)
    return start, end


def _table(report: dict[str, object]) -> str:
    from analysis.cohort import cohort_label

    lines = [
        (f"incident start: {report['incident_start']} "
         f"({'detected' if report['start_detected'] else 'given'}; {report['how']})"),
        f"outcome: {report['outcome']}",
    ]
    cohorts = report["cohorts"]
    assert isinstance(cohorts, list)
    radius = report["blast_radius"]
    assert isinstance(radius, dict)
    lines.append(f"blast radius: {_affected(radius, 'excess_users', 'users (excess)', 'user')}; "
                 f"{_affected(radius, 'tenants_affected', 'tenants', 'tenant')}")
    if not cohorts:
        lines.append("no cohort explains the excess bad requests")
        return "\n".join(lines)
    lines.append(
        f"{'#':>2}  {'cohort':<48} {'bad':>7} {'total':>7} {'precision':>9} {'of excess':>9} {'lift':>7} {'p-value':>9}"
    )
    for i, c in enumerate(cohorts, 1):
        label = cohort_label(c["cohort"].items())
        lift = "-" if c["lift"] is None else f"{c['lift']:.1f}"
        lines.append(
            f"{i:>2}  {label:<48} {c['bad']:>7} {c['total']:>7} {c['precision']:>9.1%} {c['coverage']:>9.1%} "
            f"{lift:>7} {c['p_value']:>9.2g}"
        )
        lines.append(f"    {c['description']}")
    return "\n".join(lines)


def _affected(radius: dict[str, object], field: str, what: str, role: str) -> str:
    """How many users/tenants the incident reaches, or why the data cannot say."""
    value = radius[field]
    unknown = radius["unknown"]
    if value is None:
        why = unknown.get(role) if isinstance(unknown, dict) else None
        return f"{what} affected: unknown, {why or 'not in the data'}"
    count = len(value) if isinstance(value, list) else value
    return f"{what} affected: {count:,.0f}" if isinstance(count, (int, float)) else f"{what} affected: {count}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        report = run_cohort(args)
    except ConnectorError as exc:
        print(f"error: {exc.describe()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        report = dict(report)
        cohorts = report["cohorts"]
        assert isinstance(cohorts, list)
        report["cohorts"] = [{k: v for k, v in c.items() if k != "description"} for c in cohorts]
        print(json.dumps(report))
    else:
        print(_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
