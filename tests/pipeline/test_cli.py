"""The `rnnpipe` CLI: stages through click's CliRunner on tiny data, and every bad input as one line on stderr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.pipeline.helpers import plain_text, sentiment_csv, write_config


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def sentiment_config(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    return write_config(tmp_path / "sentiment.toml", "sentiment", data, train={"epochs": 1})


def test_help_and_version():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("tokenize", "train", "evaluate", "export", "run", "predict", "generate"):
        assert command in result.output
    assert invoke("train", "--help").output.count("--set") >= 1
    assert invoke("--version").output.startswith("rnnpipe")


def test_stages_one_by_one_then_skip_and_overwrite(sentiment_config, tmp_path):
    run_dir = tmp_path / "run"
    assert "tokenize: built" in invoke("tokenize", sentiment_config, "--run-dir", run_dir).output
    trained = invoke("train", sentiment_config, "--run-dir", run_dir)
    assert trained.exit_code == 0 and "train: completed after 1 epoch(s)" in trained.output
    assert "accuracy" in invoke("evaluate", sentiment_config, "--run-dir", run_dir).output
    assert "exported:" in invoke("export", sentiment_config, "--run-dir", run_dir).output
    for name in ("config.toml", "vocabulary.json", "labels.json", "history.csv", "training_curves.png",
                 "metrics.json", "confusion_matrix.png", "checkpoints/best.keras", "train_state.json"):  # fmt: skip
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "roc_auc", "split", "examples", "seconds"} <= set(metrics)
    again = invoke("train", sentiment_config, "--run-dir", run_dir)
    assert "train: up to date" in again.output, "a finished stage is kept"
    changed = CliRunner().invoke(main, ["train", str(sentiment_config), "--run-dir", str(run_dir), "--set",
                                        "train.epochs=3"])  # fmt: skip
    assert changed.exit_code == 1 and "train.epochs: 1 -> 3" in changed.stderr and "--overwrite" in changed.stderr
    redo = invoke("train", sentiment_config, "--run-dir", run_dir, "--overwrite", "--set", "train.epochs=3")
    assert "completed after 3 epoch(s)" in redo.output
    assert "exported: " in invoke("export", sentiment_config, "--run-dir", run_dir, "--set", "train.epochs=3").output
    assert (run_dir / "export" / "model" / "2").is_dir(), "the retrained model is a new version"

    predictions = invoke("predict", run_dir / "export" / "model", "superb brilliant film", "awful dull plot")
    lines = [json.loads(line) for line in predictions.output.splitlines()]
    assert [line["label"] for line in lines] == ["pos", "neg"]
    assert set(lines[0]["probabilities"]) == {"neg", "pos"}


def test_next_char_run_and_generate(tmp_path):
    data = {"train": str(plain_text(tmp_path / "corpus.txt")), "test_fraction": 0.1}
    config = write_config(tmp_path / "chars.toml", "next_char", data, train={"epochs": 1})
    run_dir = tmp_path / "run"
    result = invoke("run", config, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    assert "bits/char" in result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["bits_per_char"] == pytest.approx(metrics["loss"] / 0.6931471805599453)
    text = invoke("generate", run_dir / "export" / "model", "--prompt", "to be", "--length", "40", "--seed", "3")
    assert text.exit_code == 0 and text.output.startswith("to be") and len(text.output.rstrip("\n")) == 45
    same = invoke("generate", run_dir / "export" / "model", "--prompt", "to be", "--length", "40", "--seed", "3")
    assert same.output == text.output


def bad_inputs(tmp_path):
    """(name, argv, expected fragment of the one stderr line) for every kind of bad input."""
    good_csv = sentiment_csv(tmp_path / "good.csv")
    cases = []

    def config(name, data=None, task="sentiment", text=None, **sections):
        path = tmp_path / f"{name}.toml"
        if text is not None:
            path.write_text(text, encoding="utf-8")
            return path
        return write_config(path, task, {"test_fraction": 0.2, **(data or {"train": str(good_csv)})}, **sections)

    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    columns = tmp_path / "columns.csv"
    columns.write_text("review,stars\nnice,5\nbad,1\n", encoding="utf-8")
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\na,x\nb,x\nc,x\n", encoding="utf-8")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9,x\nok,y\nfine,x\nyes,y\n".encode("latin-1"))
    cases += [
        ("missing_config", ["train", tmp_path / "nope.toml"], "nope.toml"),
        ("toml_syntax", ["train", config("syntax", text="task = 'sentiment\n")], "TOML"),
        ("unknown_key", ["train", config("unknown", text='task = "sentiment"\n[model]\nunits_ = 3\n')], "model.units_"),
        ("wrong_type", ["train", config("type", text='task = "sentiment"\n[model]\nunits = "many"\n')], "model.units"),
        ("bad_set", ["train", config("set"), "--set", "train.epochs=lots"], "train.epochs"),
        ("missing_data", ["tokenize", config("missing", {"train": str(tmp_path / "none.csv")})], "does not exist"),
        ("empty_file", ["tokenize", config("empty", {"train": str(empty)})], "is empty"),
        ("csv_columns", ["tokenize", config("columns", {"train": str(columns)})], "its columns are ['review', 'stars']"),
        ("one_class", ["tokenize", config("one", {"train": str(one_class)})], "at least two"),
        ("strict_encoding", ["tokenize", config("latin", {"train": str(latin)})], "line 2, byte offset"),
        ("tfds_name", ["tokenize", config("tfds", {"source": "tfds", "name": "imdb_reviewz",
                                                  "data_dir": str(tmp_path / "tfds")})], "did you mean imdb_reviews"),
        ("no_checkpoint", ["export", config("nockpt"), "--run-dir", tmp_path / "fresh"], "run `rnnpipe tokenize` first"),
        ("not_saved_model", ["predict", tmp_path, "hello"], "is not a SavedModel export"),
        ("generate_length", ["generate", tmp_path, "--prompt", "a", "--length", "-1"], "--length must be >= 0"),
        ("generate_temperature", ["generate", tmp_path, "--prompt", "a", "--temperature", "0"],
         "--temperature must be > 0"),
    ]  # fmt: skip
    return cases


def test_bad_inputs_give_one_line_and_nonzero_exit(tmp_path, monkeypatch):
    # Most cases use the default run directory, runs/<config name>, relative to the working directory: keep it in
    # tmp_path, not in the checkout the tests run from.
    monkeypatch.chdir(tmp_path)
    for name, argv, fragment in bad_inputs(tmp_path):
        result = CliRunner().invoke(main, [str(a) for a in argv])
        assert result.exit_code != 0, name
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (name, result.stderr)
        assert fragment in lines[0], (name, lines[0])
        assert "Traceback" not in result.output + result.stderr


def test_run_dir_of_another_task_is_refused(sentiment_config, tmp_path):
    run_dir = tmp_path / "run"
    assert invoke("tokenize", sentiment_config, "--run-dir", run_dir).exit_code == 0
    chars = write_config(tmp_path / "c.toml", "next_char", {"train": str(plain_text(tmp_path / "t.txt")),
                                                            "test_fraction": 0.1})  # fmt: skip
    result = CliRunner().invoke(main, ["tokenize", str(chars), "--run-dir", str(run_dir)])
    assert result.exit_code != 0 and "holds a 'sentiment' run" in result.stderr


@pytest.mark.slow
def test_real_subprocess_end_to_end(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "e2e.toml", "sentiment", data, train={"epochs": 2})
    rnnpipe = Path(sys.executable).with_name("rnnpipe")
    command = [str(rnnpipe)] if rnnpipe.exists() else [sys.executable, "-m", "pipeline.cli"]
    result = subprocess.run(command + ["run", str(config), "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exported:" in result.stdout
    assert (tmp_path / "run" / "export" / "model" / "1" / "saved_model.pb").exists()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["accuracy"] > 0.8
