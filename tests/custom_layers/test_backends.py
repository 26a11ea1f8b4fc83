"""The backend-agnostic tests of custom_layers again on JAX and on torch, each in a fresh process.

Keras picks its backend once per process (KERAS_BACKEND), so each backend's pass runs pytest in a subprocess over
the files below, which run the cell path there (the fused kernels are TensorFlow's). JAX is in the `test` extra,
so CI runs its pass; torch is not (a large download), so its pass runs where torch is installed and is skipped,
saying so, elsewhere.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

BACKEND_AGNOSTIC = [
    "tests/custom_layers/test_equivalence.py",
    "tests/custom_layers/test_gru_cell.py",
    "tests/custom_layers/test_step_api.py",
    "tests/custom_layers/test_keras_private.py",
    "tests/custom_layers/test_weight_dropout.py",
]
INSTALL_HINT = {
    "jax": "jax is in the test extra: pip install -e '.[cpu,test]'",
    "torch": "torch is not in the test extra; install it (e.g. pip install torch) to run this pass",
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_agnostic_tests_pass_on(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed, so the {backend} pass does not run: {INSTALL_HINT[backend]}")
    env = {**os.environ, "KERAS_BACKEND": backend}
    command = [sys.executable, "-m", "pytest", *BACKEND_AGNOSTIC, "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, (
        f"KERAS_BACKEND={backend}: {summary}\n{result.stdout[-8000:]}\n{result.stderr[-3000:]}"
    )
    assert " passed" in summary and "failed" not in summary, summary
