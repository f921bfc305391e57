"""Figure builders of the Breakers/Pools pages: what is drawn, and what starts hidden."""

from __future__ import annotations

import polars as pl

from analysis.breakers import breaker_windows, open_periods
from analysis.pools import saturation
from config import SloConfig
from tests.test_breakers import _calls, at, breakers
from tests.test_pools import INCIDENT, pools
from ui.charts_resilience import caller_latency_chart, open_periods_chart, saturation_chart


def test_open_periods_chart_one_bar_per_period_by_evidence() -> None:
    frame = pl.concat([breakers(["closed", "open", "closed", "closed"], [0, 0, 0, 4])])
    periods = open_periods(frame)
    fig = open_periods_chart(periods, at(30))
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"state", "not permitted calls"}
    assert list(by_name["state"].x) == [10_000] and list(by_name["not permitted calls"].y) == ["pay @ i1"]


def test_caller_latency_chart_marks_flagged_windows() -> None:
    spans = pl.concat([_calls(0, 100, 3000.0, 0.5), _calls(60, 100, 3000.0, 0.0)])
    windows = breaker_windows(breakers(["closed"] * 12, step_s=10), spans, SloConfig(default_ms=1000))
    fig = caller_latency_chart(windows, "pay")
    flagged = next(t for t in fig.data if t.name == "should have tripped")
    assert list(flagged.y) == [3.0]


def test_saturation_chart_is_a_heatmap_of_busy_share_per_pool_and_time() -> None:
    calm = pools([2, 2, 2, 2], [0, 0, 0, 0], [0, 0, 0, 0]).with_columns(pl.lit("calm").alias("pool"))
    sat = saturation(pl.concat([pools(**INCIDENT), calm]))
    fig = saturation_chart(sat)
    heat = fig.data[0]
    assert heat.type == "heatmap"
    assert list(heat.y) == ["app/postgres", "calm"]  # the saturated pool first
    peak = sat.filter(pl.col("pool") == "app/postgres")["saturation"].max()
    assert max(v for v in heat.z[0] if v is not None) == round(peak * 100, 1)
    calm_max = sat.filter(pl.col("pool") == "calm")["saturation"].max()
    assert max(v for v in heat.z[1] if v is not None) == round(calm_max * 100, 1)
    assert len(heat.x) == len(heat.z[0]) == len(heat.z[1])
