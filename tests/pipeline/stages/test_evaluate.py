"""The evaluate stage: its metrics and figure stay bounded by the documented limits, whatever the number of classes;
`--data` scores another file as the stage scores its split."""

import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from pipeline import tasks
from pipeline.cli import main
from pipeline.errors import DataError, RunDirError
from pipeline.stages import evaluate
from pipeline.training import metrics, plots
from tests.pipeline.helpers import classes_csv, sentiment_csv, write_config

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


def _copy(run, tmp_path: Path) -> Path:
    """A copy of a shared trained run directory, for a test that writes into it (paths inside are relative)."""
    run_dir = tmp_path / "run"
    shutil.copytree(run, run_dir)
    return run_dir


def _without_timing(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key not in ("split", "seconds")}


def test_evaluate_data_scores_a_file_as_the_split_and_the_export_do(sentiment_run, tmp_path):
    config, trained, own, export_dir = sentiment_run
    run_dir = _copy(trained, tmp_path)
    stage_files = {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file()}
    # The test split, written to a file of its own: --data on it gives the stage's figures.
    test_split = [(x["text"].decode(), x["label"].decode())
                  for x in tasks.get("sentiment").load_splits(config).test.as_numpy_iterator()]  # fmt: skip
    data = tmp_path / "held out.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *test_split])
    reports = []
    result = evaluate.run(config, run_dir, data=str(data), progress=lambda done, total: reports.append((done, total)))
    out = run_dir / "evaluations" / "held_out"
    assert reports[-1] == (len(test_split), len(test_split)) and reports == sorted(reports)
    assert result.path == out and not result.skipped and str(out) in result.summary()
    assert result.metrics["split"] == str(data)
    assert _without_timing(result.metrics) == _without_timing(own)
    assert json.loads((out / "metrics.json").read_text()) == result.metrics
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    # Each example in the file's order, with the label and probability the export serves for it.
    with open(out / "predictions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(row["text"], row["label"]) for row in rows] == test_split
    served = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
        text=tf.constant([text for text, _ in test_split])
    )
    assert [row["predicted"] for row in rows] == [label.decode() for label in served["label"].numpy()]
    np.testing.assert_allclose([float(row["probability"]) for row in rows], served["probabilities"].numpy().max(-1),
                               atol=1e-5)  # fmt: skip
    # The run's own evaluation is untouched.
    assert {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file()} == stage_files
    assert evaluate.run(config, run_dir, data=str(data)).skipped


def test_evaluate_data_replaces_an_evaluation_only_when_told(sentiment_run, tmp_path):
    config, trained, _, _ = sentiment_run
    run_dir = _copy(trained, tmp_path)
    data = sentiment_csv(tmp_path / "fresh.csv", n=40, seed=5)
    out = evaluate.run(config, run_dir, data=str(data)).path
    assert json.loads((out / "metrics.json").read_text())["examples"] == 40
    sentiment_csv(data, n=30, seed=6)
    with pytest.raises(RunDirError, match=r"made from other inputs \(data file .*fresh.csv changed\); use --overwrite"):
        evaluate.run(config, run_dir, data=str(data))
    (tmp_path / "elsewhere").mkdir()
    other = sentiment_csv(tmp_path / "elsewhere" / "fresh.csv", n=20, seed=7)
    with pytest.raises(RunDirError, match=r"holds the evaluation of .*/fresh.csv, not of .*elsewhere/fresh.csv"):
        evaluate.run(config, run_dir, data=str(other))
    assert json.loads((out / "metrics.json").read_text())["examples"] == 40
    assert evaluate.run(config, run_dir, data=str(data), overwrite=True).metrics["examples"] == 30
    assert json.loads((out / "metrics.json").read_text())["examples"] == 30
    assert sorted(path.name for path in out.parent.iterdir()) == ["fresh"]  # nothing staged is left behind


def test_evaluate_data_refuses_what_it_cannot_score_and_writes_nothing(sentiment_run, next_char_run, tmp_path):
    config, trained, _, _ = sentiment_run
    run_dir = _copy(trained, tmp_path)
    odd = tmp_path / "odd.csv"
    odd.write_text("text,label\na wonderful film,pos\nit was fine,neutral\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"^--data: 1 label\(s\) of .*odd.csv are not classes of this model "
                                        r"\('neutral'\); its classes: 'neg', 'pos'$"):  # fmt: skip
        evaluate.run(config, run_dir, data=str(odd))
    (tmp_path / "notes.txt").write_text("a wonderful film\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"^--data: cannot tell the format of .*notes.txt"):
        evaluate.run(config, run_dir, data=str(tmp_path / "notes.txt"))
    columns = tmp_path / "columns.csv"
    columns.write_text("review,label\na wonderful film,pos\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"^--data: .*columns.csv has no column 'text'; its columns are \['review', "
                                        r"'label'\] \(give it the training data's columns\)$"):  # fmt: skip
        evaluate.run(config, run_dir, data=str(columns))
    with pytest.raises(DataError, match=r"^--data: .*missing.csv does not exist$"):
        evaluate.run(config, run_dir, data=str(tmp_path / "missing.csv"))
    assert not (run_dir / "evaluations").exists()
    text_config, text_trained, _, _ = next_char_run
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"^--data: .*empty.txt is empty$"):
        evaluate.run(text_config, _copy(text_trained, tmp_path / "text"), data=str(tmp_path / "empty.txt"))


def test_evaluate_data_scores_a_text_as_the_split(next_char_run, tmp_path):
    config, trained, own, _ = next_char_run
    run_dir = _copy(trained, tmp_path)
    text = "".join(chunk.decode() for chunk in tasks.get("next_char").load_splits(config).test.as_numpy_iterator())
    data = tmp_path / "tail.txt"
    data.write_text(text, encoding="utf-8")
    reports = []
    result = evaluate.run(config, run_dir, data=str(data), progress=lambda done, total: reports.append((done, total)))
    assert result.path == run_dir / "evaluations" / "tail"
    assert reports and reports[-1][0] == reports[-1][1] and reports == sorted(reports)
    assert _without_timing(result.metrics) == _without_timing(own)


def test_cli_evaluate_data_prints_where_it_wrote_or_one_error_line(sentiment_run, tmp_path):
    _, trained, _, _ = sentiment_run
    run_dir = _copy(trained, tmp_path)
    config_path = trained.parent / "sentiment.toml"
    data = sentiment_csv(tmp_path / "fresh.csv", n=20, seed=5)
    result = CliRunner().invoke(main, ["evaluate", str(config_path), "--run-dir", str(run_dir), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"evaluate: {re.escape(str(data))}: accuracy .* \(20 examples\).* -> .*evaluations/fresh\n",
                        result.stdout)  # fmt: skip
    result = CliRunner().invoke(main, ["evaluate", str(config_path), "--run-dir", str(run_dir), "--data",
                                       str(tmp_path / "missing.csv")])  # fmt: skip
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        f"error: --data: {tmp_path / 'missing.csv'} does not exist"
    ]
