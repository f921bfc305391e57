"""Locate ../shared (or $FAULTLINE_SHARED); tests that need it skip with a clear reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    env = os.environ.get("FAULTLINE_SHARED")
    candidate = Path(env) if env else REPO.parent / "shared"
    return candidate if candidate.is_dir() else None


def shared_path(*parts: str) -> Path:
    """Path inside the shared reference folder, or skip the test saying what is missing."""
    base = shared_dir()
    if base is None:
        pytest.skip("reference data not found: set FAULTLINE_SHARED or place shared/ beside the repo")
    path = base.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference file {path} is absent from this copy of shared/")
    return path
