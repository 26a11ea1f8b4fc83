"""The evaluate stage: its metrics and figure stay bounded by the documented limits, whatever the number of classes."""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.training import metrics, plots
from tests.pipeline.helpers import classes_csv, write_config

# A tiny run takes about 1.6 GB of address space with TensorFlow's thread pools pinned as below; the confusion
# matrix figure that evaluate used to draw for 1,000 classes alone took 14 GB.
MEMORY_LIMIT = 4 << 30


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.slow
def test_a_thousand_classes_train_evaluate_and_export_under_a_memory_limit(tmp_path):
    data = {"train": str(classes_csv(tmp_path / "train.csv", 1000, per_class=1)),
            "validation": str(classes_csv(tmp_path / "validation.csv", 100, per_class=1, seed=1)),
            "test": str(classes_csv(tmp_path / "test.csv", 300, per_class=1, seed=2))}  # fmt: skip
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 1, "batch_size": 64},
                          tokenize={"max_tokens": 1100})  # fmt: skip
    # Thread pools sized by the machine's cores would make the address space, and so the limit, machine-dependent.
    env = {**os.environ, "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "2", "MALLOC_ARENA_MAX": "2"}
    rnnpipe = Path(sys.executable).with_name("rnnpipe")
    result = subprocess.run([str(rnnpipe), "run", str(config), "--run-dir", str(tmp_path / "run")], env=env,
                            preexec_fn=_limit_memory, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1000 classes" in result.stdout and "(300 examples)" in result.stdout and "exported:" in result.stdout
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(report["labels"]) == len(report["per_class"]) == 1000
    assert "confusion_matrix" not in report and len(report["top_confusions"]) <= metrics.TOP_CONFUSIONS
    assert (tmp_path / "run" / "metrics.json").stat().st_size < 500_000
    assert (tmp_path / "run" / "confusion_matrix.png").stat().st_size < 2_000_000
    assert plots.PLOT_CLASSES < 1000
