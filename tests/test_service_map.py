"""Service graph, degraded services, propagation path and root-cause ranking on synthetic faults."""

from __future__ import annotations

import random

import polars as pl
import pytest

from analysis.outcome import with_outcome
from analysis.service_map import blast_radius_services, propagation_path, rank_root_cause_services, service_graph
from config import SloConfig
from tests.span_builders import frame, span


def _shop(
    seed: int,
    *,
    checkouts: int = 60,
    carts: int = 40,
    payment_own_ms: float = 5.0,
    cart_gap_ms: float = 0.0,
    checkout_starved_ms: float = 0.0,
    payment_errors: int = 0,
    trace_base: int = 0,
) -> pl.DataFrame:
    """frontend → checkout → {payment, cart} and frontend → cart, with client spans on each call.
    ``cart_gap_ms`` delays the network in front of cart (seen by every caller of cart);
    ``checkout_starved_ms`` slows everything checkout does itself, including around its calls."""
    rng = random.Random(seed)
    rows: list[dict] = []

    def j(ms: float) -> float:
        return ms * rng.uniform(0.85, 1.15)

    def call(tr: str, sid: str, parent: str, caller: str, callee: str, op: str, t: float, own: float,
             gap: float, status: str = "ok") -> float:
        """client span in ``caller`` around a server span in ``callee``; returns the end time."""
        server = j(own)
        total = server + gap + j(0.6)
        rows.append(span(tr, sid, parent, caller, f"{callee}/{op}", t, total, kind="client"))
        rows.append(span(tr, sid + "s", sid, callee, op, t + (total - server) / 2, server, status=status))
        return t + total

    for n in range(checkouts):
        tr = f"{trace_base + n + 1:x}a"
        starve = checkout_starved_ms
        t = 0.0
        t1 = call(tr, "c1", "f0", "frontend", "checkout", "Place", 1.0, 0.0, starve, "ok")
        # checkout's own work and its two calls live under the checkout server span c1s
        t = 1.0 + j(1.0) + starve
        t = call(tr, "p1", "c1s", "checkout", "payment", "Charge", t, payment_own_ms, j(0.5) + starve,
                 "error" if n < payment_errors else "ok")
        t = call(tr, "k1", "c1s", "checkout", "cart", "Get", t, 2.0, j(0.5) + cart_gap_ms + starve)
        end = t + 1.0
        rows.append(span(tr, "f0", None, "frontend", "POST /checkout", 0.0, end + 1.0))
        # stretch the checkout spans so they cover their calls
        for r in rows[-7:]:
            if r["span_id"].endswith("c1s") or r["span_id"].endswith("00c1"):
                r["duration_ms"] = end - (r["start"] - rows[-1]["start"]).total_seconds() * 1000
        del t1
    for n in range(carts):
        tr = f"{trace_base + n + 1:x}b"
        t = call(tr, "k2", "f1", "frontend", "cart", "Get", 1.0, 2.0, j(0.5) + cart_gap_ms)
        rows.append(span(tr, "f1", None, "frontend", "GET /cart", 0.0, t + 1.0))
    return frame(rows)


def test_service_graph_counts_calls_and_bad_rates() -> None:
    spans = with_outcome(_shop(1, payment_errors=6), SloConfig(default_ms=1_000))
    nodes, edges = service_graph(spans)
    calls = {(r["caller"], r["callee"]): r["calls"] for r in edges.iter_rows(named=True)}
    assert calls == {("frontend", "checkout"): 60, ("checkout", "payment"): 60, ("checkout", "cart"): 60,
                     ("frontend", "cart"): 40}
    pay = edges.filter(pl.col("callee") == "payment").row(0, named=True)
    assert pay["bad_rate"] == pytest.approx(0.1)
    traffic = dict(zip(nodes["service"], nodes["spans"], strict=True))
    assert traffic["frontend"] == 60 * 2 + 40 * 2  # roots + client spans
    assert nodes.filter(pl.col("service") == "frontend")["is_entry"][0]
    assert nodes.filter(pl.col("service") == "cart")["bad_rate"][0] == 0.0


def test_blast_radius_services_and_propagation_path_follow_the_slow_payment() -> None:
    baseline = _shop(2)
    selection = _shop(3, payment_own_ms=80.0, trace_base=1000)
    radius = blast_radius_services(selection, baseline)
    degraded = set(radius.filter(pl.col("degraded"))["service"].to_list())
    assert degraded == {"payment", "checkout", "frontend"}
    cart = radius.filter(pl.col("service") == "cart").row(0, named=True)
    assert cart["p99_ratio"] < 1.5
    path = propagation_path(selection, baseline)
    assert path["service"].to_list() == ["payment", "checkout", "frontend"]
    assert path["calls_to_previous"].to_list() == [0, 60, 60]


def test_min_count_guard_keeps_rare_services_out_of_the_blast_radius() -> None:
    baseline = _shop(4, checkouts=10, carts=40)
    selection = _shop(5, checkouts=10, carts=40, payment_own_ms=80.0, trace_base=1000)
    radius = blast_radius_services(selection, baseline, min_count=20)
    assert "payment" not in radius.filter(pl.col("degraded"))["service"].to_list()
    assert propagation_path(_shop(6), _shop(7)).is_empty()


@pytest.mark.parametrize(
    ("fault", "culprit"),
    [
        ({"payment_own_ms": 60.0}, "payment"),  # slow leaf: its callers get slower too, but not by themselves
        ({"cart_gap_ms": 40.0}, "cart"),  # network delay in front of cart, seen by both callers
        ({"checkout_starved_ms": 25.0}, "checkout"),  # starved caller: slow around every call it makes
    ],
)
def test_root_cause_ranking_finds_the_injected_service(fault: dict, culprit: str) -> None:
    normal = _shop(10)
    faulty = _shop(11, trace_base=1000, **fault)
    ranked = rank_root_cause_services(faulty, normal)
    assert ranked["service"][0] == culprit
    assert ranked["rank"].to_list() == list(range(1, ranked.height + 1))
    assert ranked["score"][0] > 2 * ranked["score"][1]


def test_root_cause_ranking_is_quiet_without_a_fault() -> None:
    ranked = rank_root_cause_services(_shop(12), _shop(13))
    assert ranked["score"].max() < 3.0
