"""The demo generator's scaling machinery: chunked simulation, trimmed traces, the tenant draw."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from connectors.demo import demo_frames
from connectors.demo import spans as demo_spans
from connectors.demo.traffic import N_TENANTS, TENANT_ZIPF_A, _zipf_capped_p

generate = demo_frames.__wrapped__  # bypass the lru_cache: these tests change the chunk size


@pytest.fixture()
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_spans, "CHUNK", 4096)


def test_traces_stay_whole_across_chunks(small_chunks: None) -> None:
    spans = generate(3, 20_000, 5_000)["spans"]
    roots = spans.filter(pl.col("is_root"))
    children = spans.filter(~pl.col("is_root"))
    assert roots.height == 21_200  # 20k plus the 6 % client retry storm
    assert roots.get_column("trace_id").n_unique() == roots.height
    assert children.get_column("trace_id").n_unique() == 5_000  # only the kept traces have children
    assert spans.get_column("span_id").n_unique() == spans.height
    parents = spans.select("trace_id", pl.col("span_id").alias("parent_span_id"),
                           pl.col("start").alias("parent_start"), pl.col("duration_ms").alias("parent_ms"))
    linked = children.join(parents, on=["trace_id", "parent_span_id"], how="left")
    assert linked.get_column("parent_start").null_count() == 0
    assert (linked.get_column("start") >= linked.get_column("parent_start")).all()
    assert (linked.get_column("duration_ms") <= linked.get_column("parent_ms")).all()
    # a failed last inventory attempt propagates to the root, which fails too
    failed = children.filter(pl.col("service") == "inventory", pl.col("attr.retry_attempt") == "2",
                             pl.col("http_status") == 503).select("trace_id").unique()
    assert failed.height > 0
    assert roots.join(failed, on="trace_id", how="semi").get_column("status").eq("error").all()


def test_chunk_size_changes_draws_not_shape(small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    small = generate(5, 20_000, 20_000)["spans"]
    monkeypatch.setattr(demo_spans, "CHUNK", 1 << 19)
    large = generate(5, 20_000, 20_000)["spans"]
    assert small.height > 20_000 and abs(small.height - large.height) < 0.01 * large.height
    assert small.columns == large.columns


def test_no_full_traces_means_roots_only() -> None:
    spans = generate(4, 5_000, 0)["spans"]
    assert spans.get_column("is_root").all()
    assert spans.get_column("attr.region").null_count() == 0


def test_tenant_ranks_follow_a_capped_zipf() -> None:
    p = _zipf_capped_p(TENANT_ZIPF_A, N_TENANTS)
    assert len(p) == N_TENANTS and abs(sum(p) - 1) < 1e-12
    ranks = np.minimum(np.random.default_rng(0).zipf(TENANT_ZIPF_A, 400_000), N_TENANTS)
    for rank in (1, 4, N_TENANTS):
        assert abs((ranks == rank).mean() - p[rank - 1]) < 0.004
