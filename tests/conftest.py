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


# The trained tiny runs (tests/pipeline/conftest.py) cost minutes to build; a test that uses one belongs to the slow
# tier, as do the tests that carry the marker themselves (real data, subprocesses).
TRAINED_RUN_FIXTURES = frozenset({"sentiment_run", "next_char_run"})


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINED_RUN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
