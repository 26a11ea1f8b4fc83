"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and lint-imports catches a broken one."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_contracts_hold_and_a_config_that_imports_tensorflow_breaks_them(tmp_path):
    if not LINT_IMPORTS.exists():
        pytest.skip("lint-imports is not installed (pip install -e '.[test]')")
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    for package in ("pipeline", "custom_layers"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    config = tmp_path / "pipeline" / "config.py"
    config.write_text(config.read_text() + "\nimport tensorflow  # noqa\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    assert "pipeline.config is not allowed to import tensorflow" in broken.stdout
