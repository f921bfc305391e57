"""The global filter round-trips through URL query params; junk in the URL is ignored, not fatal."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from ui.state import Filter, parse_params

T0 = datetime(2026, 3, 14, 2, 25, tzinfo=UTC)
T1 = datetime(2026, 3, 14, 2, 55, tzinfo=UTC)


def _as_url(flt: Filter) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in flt.to_params().items()}


def test_round_trip() -> None:
    flt = Filter(T0, T1, (("region", "eu-west-1"), ("client_version", "5.2.0")), "payments")
    assert parse_params(_as_url(flt)) == flt


def test_values_with_equals_signs_and_unicode_survive() -> None:
    flt = Filter(cohort=(("http.route", "GET /a?b=c"), ("tenant", "Zürich <script>")))
    assert parse_params(_as_url(flt)) == flt


def test_junk_is_dropped() -> None:
    flt = parse_params({"from": ["yesterday"], "to": ["2026-03-14T03:00:00+00:00"], "cohort": ["novalue", "=x", "a=b"]})
    assert flt == Filter(None, None, (("a", "b"),), None)


def test_reversed_window_is_ignored() -> None:
    assert parse_params({"from": [T1.isoformat()], "to": [T0.isoformat()]}).start is None


@given(st.dictionaries(st.sampled_from(["from", "to", "cohort", "service", "x"]),
                       st.lists(st.text(max_size=40), max_size=12)))
def test_any_url_parses(params: dict[str, list[str]]) -> None:
    flt = parse_params(params)
    assert len(flt.cohort) <= 8
    assert (flt.start is None) == (flt.end is None)


def test_clip_keeps_the_half_open_window() -> None:
    import polars as pl

    frame = pl.DataFrame({"ts": [T0, T1]}).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    assert Filter(T0, T1).clip(frame).get_column("ts").to_list() == [T0]  # [start, end)
    assert Filter().clip(frame).height == 2  # no window: everything
