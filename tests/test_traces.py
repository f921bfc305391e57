"""Trace analysis: self time, critical path, waterfall, trace diff, retry amplification, lookup."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis.trace_tree import with_tree
from analysis.traces import critical_path, lookup_ids, retry_amplification, self_time, trace_diff, waterfall_rows
from tests.span_builders import frame, span


def _fan_out() -> pl.DataFrame:
    # R 0-100 fans out to A, B, C in parallel, then calls D after B returns; B has a child B1.
    return frame(
        [
            span("1", "r", None, "front", "GET /", 0, 100),
            span("1", "a", "r", "front", "call a", 5, 25),
            span("1", "b", "r", "front", "call b", 5, 75),
            span("1", "c", "r", "front", "call c", 5, 45),
            span("1", "b1", "b", "bsvc", "work", 10, 60),
            span("1", "d", "r", "front", "call d", 82, 16),
        ]
    )


def _ids(frame_: pl.DataFrame) -> set[str]:
    return {s.lstrip("0") for s in frame_["span_id"].to_list()}


def test_self_time_subtracts_the_union_of_overlapping_children() -> None:
    spans = frame(
        [
            span("1", "p", None, "s", "parent", 0, 100),
            span("1", "c1", "p", "s", "c", 10, 30),  # 10-40
            span("1", "c2", "p", "s", "c", 30, 30),  # 30-60 overlaps c1 → union 10-60
            span("1", "c3", "p", "s", "c", 80, 40),  # 80-120, clipped to the parent's end → 80-100
            span("1", "g", "c1", "s", "g", 15, 50),  # outlives its parent: counts only up to c1's end (40)
            span("1", "h", "c2", "s", "h", 30, 30),  # covers all of c2
            span("1", "i", "c2", "s", "i", 29, 35),  # and more: c2's self time is 0, never negative
        ]
    )
    by_id = dict(zip(_ids_list(self_time(spans)), self_time(spans)["self_ms"].to_list(), strict=True))
    assert by_id["p"] == pytest.approx(100 - 50 - 20)
    assert by_id["c1"] == pytest.approx(30 - 25)
    assert by_id["c2"] == pytest.approx(0.0)
    assert by_id["g"] == pytest.approx(50.0)


def _ids_list(frame_: pl.DataFrame) -> list[str]:
    return [s.lstrip("0") for s in frame_["span_id"].to_list()]


def test_critical_path_on_a_fan_out_follows_the_slowest_branch_then_the_sequential_call() -> None:
    path = critical_path(_fan_out())
    assert _ids(path) == {"r", "b", "b1", "d"}
    own = dict(zip(_ids_list(path), path["self_on_path_ms"].to_list(), strict=True))
    assert own["r"] == pytest.approx(100 - 75 - 16)
    assert own["b"] == pytest.approx(75 - 60)
    assert path["self_on_path_ms"].sum() == pytest.approx(100.0)


def test_critical_path_treats_an_orphan_as_a_root() -> None:
    spans = frame([span("2", "x", "missing", "s", "op", 0, 10), span("2", "y", "x", "t", "op", 1, 5)])
    assert _ids(critical_path(spans)) == {"x", "y"}


def test_tree_paths_and_depth_first_order() -> None:
    tree = with_tree(_fan_out()).sort("order_key")
    assert _ids_list(tree) == ["r", "a", "b", "b1", "c", "d"]
    b1 = tree.filter(pl.col("span_id").str.ends_with("b1"))
    assert b1["depth"][0] == 2
    assert b1["path"][0] == "front:GET / > front:call b > bsvc:work"


def test_waterfall_folds_repeated_siblings_and_marks_the_critical_path() -> None:
    rows = [span("3", "r", None, "api", "GET /cart", 0, 200)]
    rows += [span("3", f"q{i}", "r", "db", "SELECT item", 1 + i * 3, 2.5) for i in range(40)]
    rows += [span("3", "s", "r", "api", "render", 125, 70, status="error")]
    wf = waterfall_rows(frame(rows), max_rows=50, sibling_bound=5)
    assert wf.height == 3
    folded = wf.filter(pl.col("count") > 1)
    assert folded["count"].to_list() == [40]
    assert folded["offset_ms"][0] == pytest.approx(1.0)
    assert folded["duration_ms"][0] == pytest.approx(3 * 39 + 2.5)
    assert "×40" in folded["label"][0]
    render = wf.filter(pl.col("operation") == "render")
    assert render["is_error"][0] and render["on_critical_path"][0]
    assert wf["row"].to_list() == [0, 1, 2]
    assert wf["depth"].to_list() == [0, 1, 1]


def _big_trace(n_children: int = 50, per_child: int = 99) -> pl.DataFrame:
    rows = [span("9", "root", None, "edge", "GET /search", 0, 10_000)]
    for i in range(n_children):
        rows.append(span("9", f"c{i:03d}", "root", "search", "shard query", i * 150, 140))
        for j in range(per_child):
            op = "cache get" if j % 11 == 0 else "index read"
            rows.append(span("9", f"c{i:03d}g{j:03d}", f"c{i:03d}", "index", op, i * 150 + j * 1.3, 1.2))
    return frame(rows)


def test_a_5000_span_trace_waterfall_stays_within_the_row_bound() -> None:
    # How fast it is lives in bench/waterfall_speed.py.
    big = _big_trace()
    assert big.height == 5_001
    wf = waterfall_rows(big, max_rows=120)
    assert 0 < wf.height <= 120
    assert wf["count"].sum() > 120  # rows stand for more spans than they are
    assert wf.filter(pl.col("depth") == 0).height == 1
    path = critical_path(big)
    assert path["self_on_path_ms"].sum() == pytest.approx(10_000.0)


def _trace(trace: str, db_ms: float, cache_calls: int) -> list[dict]:
    rows = [
        span(trace, "r", None, "web", "GET /", 0, 20 + db_ms + 2 * cache_calls),
        span(trace, "a", "r", "api", "get", 1, 15 + db_ms + 2 * cache_calls),
        span(trace, "d", "a", "db", "query", 2, db_ms),
    ]
    rows += [span(trace, f"k{i}", "a", "cache", "get", 3 + db_ms + 2 * i, 1) for i in range(cache_calls)]
    return rows


def test_trace_diff_pinpoints_the_injected_slow_node() -> None:
    baseline = frame([r for t in ("a1", "a2", "a3") for r in _trace(t, 5, 1)])
    selection = frame([r for t in ("f1", "f2") for r in _trace(t, 55, 2)])
    diff = trace_diff(selection, baseline)
    top = diff.row(0, named=True)
    assert top["path"] == "web:GET / > api:get > db:query"
    assert top["extra_self_ms_per_trace"] == pytest.approx(50.0)
    assert top["share_of_extra"] > 0.8
    cache = diff.filter(pl.col("service") == "cache").row(0, named=True)
    assert cache["sel_calls_per_trace"] == pytest.approx(2.0)
    assert cache["calls_delta_per_trace"] == pytest.approx(1.0)


def _retry_rows() -> list[dict]:
    rows = []
    for t in range(3):
        tr = f"7{t}"
        rows.append(span(tr, "r", None, "orders", "POST /order", 0, 100))
        # payments: three attempts, no idempotency key → flagged
        for k in range(3):
            rows.append(span(tr, f"p{k}", "r", "orders", "POST /charge", 1 + 10 * k, 8, kind="client",
                             status="error" if k < 2 else "ok", retry_attempt=str(k)))
            rows.append(span(tr, f"ps{k}", f"p{k}", "payments", "charge", 2 + 10 * k, 6))
        # inventory: two attempts with one idempotency key → counted, not flagged
        for k in range(2):
            rows.append(span(tr, f"i{k}", "r", "orders", "POST /reserve", 40 + 10 * k, 8, kind="client",
                             idempotency_key=f"key-{t}"))
            rows.append(span(tr, f"is{k}", f"i{k}", "inventory", "reserve", 41 + 10 * k, 6))
        # catalog: fan-out of five lookups, no errors → no retries
        for k in range(5):
            rows.append(span(tr, f"c{k}", "r", "orders", "GET /item", 70 + 4 * k, 3, kind="client"))
            rows.append(span(tr, f"cs{k}", f"c{k}", "catalog", "item", 70.5 + 4 * k, 2))
        # shipping: repeated after an error with no retry attributes → one retry, flagged
        rows.append(span(tr, "h0", "r", "orders", "POST /ship", 92, 2, kind="client", http_status=503))
        rows.append(span(tr, "h1", "r", "orders", "POST /ship", 95, 2, kind="client"))
    return rows


def test_retry_amplification_per_edge_with_and_without_idempotency_keys() -> None:
    amp = retry_amplification(frame(_retry_rows()), by="1m")
    by_edge = {(r["caller"], r["callee"]): r for r in amp.iter_rows(named=True)}
    pay = by_edge[("orders", "payments")]
    assert (pay["calls"], pay["retries"], pay["logical_requests"]) == (9, 6, 3)
    assert pay["attempts_per_request"] == pytest.approx(3.0)
    assert pay["retries_without_idempotency"]
    inv = by_edge[("orders", "inventory")]
    assert inv["attempts_per_request"] == pytest.approx(2.0)
    assert not inv["retries_without_idempotency"]
    cat = by_edge[("orders", "catalog")]
    assert cat["retries"] == 0 and cat["attempts_per_request"] == pytest.approx(1.0)
    ship = by_edge[("orders", "POST /ship")]  # no child span: the callee falls back to the operation
    assert ship["retries"] == 3 and ship["retries_without_idempotency"]
    assert amp["caller"][0] == "orders" and amp["callee"][0] == "payments"  # worst first


def test_retry_amplification_buckets_by_time() -> None:
    from datetime import timedelta

    rows = [dict(r, start=r["start"] + timedelta(minutes=5)) if r["trace_id"].endswith("72") else r
            for r in _retry_rows()]
    amp = retry_amplification(frame(rows), by="1m").filter(pl.col("callee") == "payments").sort("bucket")
    assert amp["calls"].to_list() == [6, 3]
    assert amp["attempts_per_request"].to_list() == pytest.approx([3.0, 3.0])


def test_retry_amplification_on_server_only_traces_counts_client_resends_of_the_root() -> None:
    rows = []
    for t, attempt, t0 in (("e1", None, 0), ("e2", "1", 200), ("e3", "2", 300), ("e4", None, 100)):
        # e1 failed and e4 came next: a new request (another trace), not a retry, unless it says so
        rows.append(span(t, "g", None, "gateway", "GET /cart", t0, 50, retry_attempt=attempt,
                         status="error" if t == "e1" else "ok"))
        rows.append(span(t, "a", "g", "auth", "verify", t0 + 1, 5))
        rows.append(span(t, "c", "g", "cart", "get", t0 + 7, 30))
    amp = retry_amplification(frame(rows))
    by_edge = {(r["caller"], r["callee"]): r for r in amp.iter_rows(named=True)}
    entry = by_edge[("(clients)", "gateway")]
    assert (entry["calls"], entry["retries"], entry["logical_requests"]) == (4, 2, 2)
    assert entry["retries_without_idempotency"]
    # a server span with remote children is not mistaken for a client call
    assert by_edge[("gateway", "auth")]["calls"] == 4 and by_edge[("gateway", "cart")]["retries"] == 0
    assert ("gateway", "GET /cart") not in by_edge


def _lookup_frame() -> pl.DataFrame:
    return frame(
        [
            span("00000000000000004bf92f3577b34da6", "a1", None, "web", "GET /", 0, 10),
            span("0af7651916cd43dd8448eb211c80319c", "b1", None, "web", "GET /cart", 5, 30,
                 **{"x-request-id": "REQ-77f1"}),
            span("0af7651916cd43dd8448eb211c80319c", "b2", "b1", "cart", "load", 6, 20),
            span("1234", "c1", None, "web", "POST /pay", 7, 12, correlation_id="corr-42"),
        ]
    )


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("4bf92f3577b34da6", "00000000000000004bf92f3577b34da6"),  # 64-bit id, padded
        ("00000000000000004BF92F3577B34DA6", "00000000000000004bf92f3577b34da6"),
        ("0AF76519", "0af7651916cd43dd8448eb211c80319c"),  # short prefix, upper case
        ("8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c"),  # low half of a 128-bit id
        ("0x1234", "00000000000000000000000000001234"),
        (" req-77F1 ", "0af7651916cd43dd8448eb211c80319c"),  # x-request-id, case-insensitive
        ("corr-42", "00000000000000000000000000001234"),
    ],
)
def test_lookup_by_padded_short_and_correlation_ids(needle: str, expected: str) -> None:
    found = lookup_ids(_lookup_frame(), needle)
    assert found["trace_id"].to_list() == [expected]


def test_lookup_summarises_the_trace_and_misses_cleanly() -> None:
    found = lookup_ids(_lookup_frame(), "req-77f1").row(0, named=True)
    assert found["matched_by"] == "attr.x-request-id"
    assert (found["root_operation"], found["spans"], found["duration_ms"]) == ("GET /cart", 2, 30.0)
    assert lookup_ids(_lookup_frame(), "deadbeef").is_empty()
    assert lookup_ids(_lookup_frame(), "").is_empty()


def test_search_traces_by_service_operation_attr_duration_and_outcome() -> None:
    from analysis.outcome import with_outcome
    from analysis.traces import search_traces
    from config import SloConfig

    rows = []
    for i, (region, pay_ms) in enumerate((("eu", 900.0), ("eu", 50.0), ("us", 1200.0), ("us", 40.0))):
        t = f"5{i}"
        rows.append(span(t, "r", None, "web", "POST /checkout", 0, pay_ms + 20, region=region))
        rows.append(span(t, "p", "r", "payments", "Charge card", 5, pay_ms, status="error" if i == 3 else "ok"))
    spans = with_outcome(frame(rows), SloConfig(default_ms=1000))
    slow_pay = search_traces(spans, service="payments", min_duration_ms=500)
    assert slow_pay["trace_id"].str.slice(-2).to_list() == ["52", "50"]  # slowest first
    assert slow_pay["root_operation"].to_list() == ["POST /checkout"] * 2
    eu = search_traces(spans, operation="charge", attrs=(("region", "eu"),))
    assert sorted(eu["trace_id"].str.slice(-2).to_list()) == ["50", "51"]
    assert search_traces(spans, outcome="error")["trace_id"].str.slice(-2).to_list() == ["53"]
    assert search_traces(spans, outcome="slow")["is_bad"].to_list() == [True]
    assert search_traces(spans, attrs=(("no_such_key", "x"),)).is_empty()
    assert search_traces(spans, limit=2).height == 2


def test_sample_traces_keeps_whole_traces_deterministically() -> None:
    from analysis.traces import sample_traces

    big = _big_trace(n_children=2, per_child=3)
    many = frame([span(f"{i + 1:x}", "r", None, "s", "op", i, 1) for i in range(50)]
                 + [span(f"{i + 1:x}", "c", "r", "s", "op", i, 1) for i in range(50)])
    sampled = sample_traces(many, 10)
    assert sampled["trace_id"].n_unique() == 10 and sampled.height == 20
    assert sampled.equals(sample_traces(many, 10))
    assert sample_traces(big, 10).height == big.height


def test_search_heads_each_trace_by_its_first_root_else_its_first_span_and_cuts_ties_by_id() -> None:
    from analysis.traces import search_traces

    rows = [span(f"{i + 1:x}", "r", None, "web", "GET /", i, 100.0 + (i % 3)) for i in range(9)]  # ties: 3 per duration
    rows += [span(f"{i + 1:x}", "c", "r", "db", "SELECT", i, 5.0) for i in range(9)]
    rows += [span("aa", "x", "gone", "db", "SELECT", 1, 900.0), span("aa", "y", "gone", "cache", "GET", 3, 50.0)]
    rows += [span("bb", "r1", None, "web", "GET /early", 0, 10.0), span("bb", "r2", None, "web", "GET /late", 5, 950.0)]
    spans = frame(rows)
    got = search_traces(spans, limit=6)
    # a rootless trace is headed by its earliest span; of two roots the earlier one heads the trace
    assert got.filter(pl.col("trace_id").str.ends_with("aa")).row(0, named=True)["duration_ms"] == 900.0
    assert got.filter(pl.col("trace_id").str.ends_with("bb")).is_empty()  # headed by its 10 ms root: not in the top 6
    assert got["duration_ms"].to_list() == [900.0, 102.0, 102.0, 102.0, 101.0, 101.0]
    ties = got.filter(pl.col("duration_ms") == 101.0)["trace_id"].to_list()
    assert ties == sorted(spans.filter(pl.col("is_root"), pl.col("duration_ms") == 101.0)["trace_id"].to_list())[:2]
    assert got["spans"].to_list()[:2] == [2, 2]
    two_roots = search_traces(spans, limit=100).filter(pl.col("trace_id").str.ends_with("bb"))
    assert two_roots["root_operation"].to_list() == ["GET /early"]
    # without the two-root trace, the roots alone plus the rootless trace's first span head the same list
    assert_frame_equal(search_traces(spans.filter(~pl.col("trace_id").str.ends_with("bb")), limit=6), got)
