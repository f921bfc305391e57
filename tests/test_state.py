"""The global filter round-trips through URL query params; junk in the URL is ignored, not fatal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ui.routes import ROUTES, params_of, route_for_path
from ui.state import Filter, parse_params
from ui.view_state import (
    BRUSH,
    OUTCOME,
    TRACE,
    ViewState,
    clamp_window,
    decode_brush,
    encode_brush,
    from_params,
    to_params,
)

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


# --- the view state: filter + each page's own state, one serialisation for URL and snapshot ---------------

COHORTS = params_of("cohorts")
W0 = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
W1 = datetime(2026, 3, 14, 3, 0, tzinfo=UTC)


def _url(params: dict[str, str | list[str]]) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


def test_every_route_declares_its_state_and_paths_resolve() -> None:
    assert params_of("cohorts") == (OUTCOME, BRUSH)
    assert params_of("traces") == (TRACE,)
    assert params_of("nosuch") == ()
    for r in ROUTES:
        assert route_for_path(r.url_path).name == r.name
    assert route_for_path("/no/such/page").name == ROUTES[0].name


def test_cohorts_view_round_trips() -> None:
    brush = (T0, T1, 9123.456789, 13000.0)
    view = ViewState(Filter(T0, T1, (("region", "eu-west-1"),), "payments"), (("outcome", "slow"), ("brush", brush)))
    back, notices = from_params(_url(to_params(view, COHORTS)), COHORTS)
    assert notices == ()
    assert back == view


timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                          timezones=st.just(UTC))
latencies = st.floats(min_value=0, max_value=1e9, allow_nan=False)


@given(timestamps, st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=2)),
       latencies, latencies)
def test_any_brush_round_trips_exactly(t0: datetime, span: timedelta, a: float, b: float) -> None:
    brush = (t0, t0 + span, min(a, b), max(a, b))
    assert decode_brush(encode_brush(brush)) == brush


@given(st.text(max_size=300))
def test_hostile_values_round_trip_or_are_rejected_with_a_notice(value: str) -> None:
    view = ViewState(Filter(cohort=(("tenant", value),), service=value or None))
    back, notices = from_params(_url(to_params(view, COHORTS)), COHORTS)
    if back.filter == view.filter:
        assert notices == ()
    else:
        assert notices, "a value that did not survive must be named"
        assert all(n.message for n in notices)


@given(st.dictionaries(st.sampled_from(["from", "to", "cohort", "service", "outcome", "brush", "trace", "x"]),
                       st.lists(st.text(max_size=60), max_size=12)))
def test_any_url_decodes_for_any_page(params: dict[str, list[str]]) -> None:
    for r in ROUTES:
        view, notices = from_params(params, r.params)
        assert (view.filter.start is None) == (view.filter.end is None)
        assert len(view.filter.cohort) <= 8
        assert {name for name, _ in view.page} <= {p.name for p in r.params}
        assert all(isinstance(n.message, str) and n.message for n in notices)


def test_bad_page_values_are_named() -> None:
    view, notices = from_params({"outcome": ["fast"], "brush": ["yesterday~today~a~b"], "trace": ["<x>"]},
                                (OUTCOME, BRUSH, TRACE))
    assert view.page == ()
    assert {n.param for n in notices} == {"outcome", "brush", "trace"}


def test_unreadable_or_reversed_window_and_extra_chips_say_so() -> None:
    _, notices = from_params({"from": ["yesterday"], "to": [T1.isoformat()]}, ())
    assert [n.param for n in notices] == ["from"]
    _, notices = from_params({"from": [T1.isoformat()], "to": [T0.isoformat()]}, ())
    assert "ends before it starts" in notices[0].message
    view, notices = from_params({"cohort": [f"a{i}=b" for i in range(10)]}, ())
    assert len(view.filter.cohort) == 8 and len(notices) == 2


def test_a_window_outside_the_data_is_dropped_with_a_notice() -> None:
    outside = Filter(W0 - timedelta(minutes=10), W0 - timedelta(minutes=1), (("a", "b"),), "s")
    fitted, notice = clamp_window(outside, W0, W1)
    assert fitted == Filter(None, None, (("a", "b"),), "s")
    assert notice is not None and "outside the data" in notice.message


def test_a_window_sticking_out_is_cut_with_a_notice() -> None:
    fitted, notice = clamp_window(Filter(W0 - timedelta(minutes=10), W0 + timedelta(minutes=30)), W0, W1)
    assert (fitted.start, fitted.end) == (W0, W0 + timedelta(minutes=30))
    assert notice is not None and "cut to 02:00–02:30" in notice.message
    inside = Filter(W0 + timedelta(minutes=5), W0 + timedelta(minutes=6))
    assert clamp_window(inside, W0, W1) == (inside, None)


def test_describe_never_leaves_bare_emphasis() -> None:
    assert Filter(cohort=(("region", ""),)).describe() == "region = “”"
    assert not Filter(cohort=(("region", " x "),)).describe().endswith(" ")


def test_a_hand_typed_plus_that_arrived_as_a_space_is_read_as_meant() -> None:
    view, notices = from_params({"from": ["2026-03-14T02:25:00 00:00"], "to": ["2026-03-14T02:55:00+00:00"],
                                 "brush": ["2026-03-14T02:30:00 00:00~2026-03-14T02:50:00Z~9000~13000"]}, COHORTS)
    assert notices == ()
    assert (view.filter.start, view.filter.end) == (T0, T1)
    assert view.value("brush")[:2] == (
        datetime(2026, 3, 14, 2, 30, tzinfo=UTC), datetime(2026, 3, 14, 2, 50, tzinfo=UTC)
    )
