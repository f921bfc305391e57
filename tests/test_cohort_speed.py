"""bench.cohort_speed on a small N, so the benchmark cannot rot (speed itself is not asserted)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("duckdb", reason="duckdb is a bench-only dependency (requirements-dev.txt)")

from bench.cohort_speed import main  # noqa: E402


def test_small_run_agrees_with_duckdb_and_finds_the_injected_cohort(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "300000", "--repeat", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["requests"] == 300000 and result["attributes"] == 20
    assert result["ranking_counts_equal_duckdb"] is True  # every attribute=value count, per class
    assert set(result["top_cohort"].split(" AND ")) == {"a03=1", "a07=2"}  # the cohort generate() injects
    for key in ("ranking_s", "duckdb_ranking_grouping_sets_s", "combinations_s", "peak_rss_mb_total"):
        assert result[key] > 0, key
