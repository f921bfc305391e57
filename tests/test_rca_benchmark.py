"""A small slice of the RCA benchmarks (bench.rca_benchmark) as a regression guard.

Needs ../shared/bench-data (skips with a reason when absent). The floors sit well below what the
finder scores on these slices (B0 1.0, S ≈ 0.76, RS ≈ 0.67) and far above what an empty, random or
over-specific answer scores (0 – 0.1).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from bench.rca_benchmark import GRIDS, cross_validate, evaluate, grid_points, load_cases, main
from tests.shared import shared_path

SLICES = {"B0": (9, 0.85), "S": (5, 0.5), "RS": (25, 0.35)}  # cases (first N), F1 floor


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return shared_path("bench-data")


@pytest.mark.parametrize("dataset", sorted(SLICES))
def test_f1_floor_on_a_slice(dataset: str, data) -> None:  # type: ignore[no-untyped-def]
    limit, floor = SLICES[dataset]
    result = evaluate(data, dataset, "dev", limit)
    assert result["cases"] == limit
    assert result["f1"] >= floor, result
    assert result["s_per_case"] < 3.0  # ~0.05–0.3 s on an idle box; loose for shared CI runners


def test_b0_slice_covers_every_setting(data) -> None:  # type: ignore[no-untyped-def]
    cases = list(itertools.islice(load_cases(data, "B0", "dev"), 9))
    assert len({c.case_id.split("/")[0] for c in cases}) == 9
    assert all(c.truth for c in cases)


def test_json_output(data, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["--data", str(data), "--datasets", "RS", "--limit", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"RS"}
    assert set(report["RS"]) == {"f1", "precision", "recall", "cases", "s_per_case"}
    assert report["RS"]["cases"] == 3


def test_empty_split_says_so(data, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    # this copy of the data has no B0 files for the holdout split: "no cases", not an F1 of 0
    if any(load_cases(data, "B0", "holdout")):
        pytest.skip("this copy of the data has B0 holdout cases")
    assert main(["--data", str(data), "--datasets", "B0", "--split", "holdout"]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.startswith("B0") and "no holdout cases in this copy of the data" in row and "0.000" not in row


def test_missing_data_dir_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cross_validation_chooses_on_other_folds(data) -> None:  # type: ignore[no-untyped-def]
    result = cross_validate(data, "RS", "dev", 10, 5)
    assert result.cases == 10 and len(result.chosen) == 5
    assert result.grid_points == len(grid_points("RS")) > 1
    assert all(set(p) == set(GRIDS["RS"]) for p in result.chosen)
    assert 0.0 <= result.cv_f1 <= 1.0 and result.dev_f1 >= SLICES["RS"][1]


def test_cv_table(data, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["--data", str(data), "--datasets", "RS", "--limit", "5", "--cv", "5"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert "dev F1" in header and "cv5 F1" in header
    assert row.split()[:2] == ["RS", "5"]
    assert main(["--data", str(data), "--datasets", "RS", "--cv", "1"]) == 2
