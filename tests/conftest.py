"""Fixtures shared by all tests."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's shared data folder (RNNPIPE_SHARED_DATA, else ../shared/data beside the repository)."""
    path = Path(os.environ.get("RNNPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (path / "README.md").exists() and not (path / "mr").exists():
        pytest.skip(f"shared data not found at {path} (set RNNPIPE_SHARED_DATA); CI provides it")
    return path
