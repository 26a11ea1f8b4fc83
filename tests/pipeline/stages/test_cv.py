"""Cross-validation, class weights and calibration through the stages, on tiny data made here."""

import csv
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from pipeline import tasks
from pipeline.cli import main
from pipeline.config import class_weights, load_config
from pipeline.data.splits import _fold
from pipeline.errors import ConfigError
from pipeline.run.rundir import RunDir
from pipeline.stages import cv, evaluate, export, tokenize, train
from tests.pipeline.helpers import sentiment_csv, write_config


def config_for(tmp_path, csv=None, **sections):
    data = {"train": str(csv or sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    return load_config(write_config(tmp_path / "s.toml", "sentiment", data, **sections), [])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def imbalanced_csv(path: Path, minority_every: int = 10) -> Path:
    lines = sentiment_csv(path).read_text().splitlines()
    kept = [lines[0]] + [line for i, line in enumerate(lines[1:]) if line.endswith("neg") or i % minority_every == 1]
    path.write_text("\n".join(kept) + "\n")
    return path


def test_folds_are_stratified_disjoint_and_cover_every_example():
    examples = [(f"t{i}", "a" if i % 4 else "b") for i in range(103)]
    held = [_fold(examples, 5, k)[0] for k in range(5)]
    assert sorted(x for fold in held for x in fold) == sorted(examples)
    for fold in held:
        share = sum(label == "b" for _, label in fold) / len(fold)
        assert abs(share - 26 / 103) < 0.06 and 19 <= len(fold) <= 22
    test, rest = _fold(examples, 5, 2)
    assert not set(test) & set(rest)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("none", "none"),
        ("balanced", "balanced"),
        ("neg=1, pos=4.5", {"neg": 1.0, "pos": 4.5}),
        ("a=b=2", {"a=b": 2.0}),
    ],  # fmt: skip
)
def test_class_weight_is_read(text, expected):
    assert class_weights(text) == expected


@pytest.mark.parametrize("text", ["", "pos", "pos=0", "pos=-1", "pos=nan", "pos=1, pos=2", "=3", "Balanced"])
def test_a_bad_class_weight_names_the_key(text):
    with pytest.raises(ConfigError, match="train.class_weight"):
        class_weights(text)


def test_class_weights_from_the_training_split_and_the_imbalance_warning(tmp_path, caplog):
    config = config_for(tmp_path, imbalanced_csv(tmp_path / "im.csv"))
    task = tasks.get("sentiment")
    splits = task.load_splits(config)
    with caplog.at_level(logging.WARNING):
        assert task.class_weight(config, splits, ("neg", "pos")) is None
    assert re.search(r"class 'neg' is 8\d% of the training examples", caplog.text)
    assert "train.class_weight = 'balanced'" in caplog.text
    balanced = task.class_weight(load_config(tmp_path / "s.toml", ["train.class_weight=balanced"]), splits,
                                 ("neg", "pos"))  # fmt: skip
    counts = np.array([sum(1 for x in splits.train if x["label"].numpy() == name) for name in (b"neg", b"pos")])
    np.testing.assert_allclose([balanced[0], balanced[1]], counts.sum() / (2 * counts))
    named = task.class_weight(load_config(tmp_path / "s.toml", ["train.class_weight=pos=3"]), splits, ("neg", "pos"))
    assert named == {0: 1.0, 1: 3.0}
    with pytest.raises(ConfigError, match="no class named 'Pos'"):
        task.class_weight(load_config(tmp_path / "s.toml", ["train.class_weight=Pos=3"]), splits, ("neg", "pos"))


def test_next_char_and_tfds_refuse_what_needs_labelled_files(tmp_path):
    with pytest.raises(ConfigError, match="data.cv_folds: folds split local training files"):
        load_config(None, ["task=sentiment", "data.source=tfds", "data.name=imdb_reviews", "data.cv_folds=5"])
    with pytest.raises(ConfigError, match="data.cv_folds / data.cv_fold"):
        load_config(None, ["task=sentiment", "data.train=x.csv", "data.cv_folds=5", "data.cv_fold=5"])
    for key in ("train.calibration=temperature", "train.class_weight=balanced"):
        with pytest.raises(ConfigError, match="only sentiment models have classes"):
            load_config(None, ["task=next_char", "data.train=x.txt", key])


@pytest.mark.slow
def test_exports_serve_the_probabilities_evaluate_calibrated(tmp_path):
    from pipeline.clients.litert_client import LiteRTModel
    from pipeline.data.text import Vocabulary, encode_words, lookup_table, ngram_table
    from pipeline.training.model import load_checkpoint

    config = config_for(tmp_path, train={"epochs": 3, "calibration": "temperature"},
                        export={"formats": ["saved_model", "litert"]})  # fmt: skip
    run_dir = tmp_path / "run"
    tokenize.run(config, run_dir)
    train.run(config, run_dir)
    rd = RunDir(run_dir)
    fitted = json.loads(rd.calibration.read_text())
    assert fitted["temperature"] > 0 and fitted["held_out_check"]["examples"] > 0
    result = evaluate.run(config, run_dir).metrics
    assert result["calibration"]["temperature"] == fitted["temperature"] and rd.reliability_diagram.exists()
    exported = export.run(config, run_dir).path
    texts = ["a wonderful film", "dull and boring plot", "the acting was fine"]
    served = tf.saved_model.load(str(exported)).signatures["serving_default"](text=tf.constant(texts))
    vocab = Vocabulary.load(rd.vocabulary)
    ids = encode_words(tf.constant(texts), vocab, lookup_table(vocab), ngram_table(vocab))
    logits = load_checkpoint(rd.best_model)(ids, training=False).numpy()
    expected = tf.nn.softmax(logits / fitted["temperature"]).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(LiteRTModel(exported / "litert").probabilities(texts), expected, atol=1e-5)
    # predictions.csv: the test split in its order, each text with the probability the export serves for it.
    rows = read_csv(rd.predictions)
    test_split = [
        (x["text"].decode(), x["label"].decode())
        for x in tasks.get("sentiment").load_splits(config).test.as_numpy_iterator()
    ]
    assert [(row["text"], row["label"]) for row in rows] == test_split
    served = tf.saved_model.load(str(exported)).signatures["serving_default"](
        text=tf.constant([t for t, _ in test_split])
    )
    assert [row["predicted"] for row in rows] == [label.decode() for label in served["label"].numpy()]
    np.testing.assert_allclose([float(row["probability"]) for row in rows], served["probabilities"].numpy().max(-1),
                               atol=1e-5)  # fmt: skip
    assert sum(row["predicted"] == row["label"] for row in rows) == round(result["accuracy"] * len(rows))
    # A run directory evaluated before predictions.csv existed is evaluated again, without --overwrite.
    assert evaluate.run(config, run_dir).skipped
    rd.predictions.unlink()
    assert not evaluate.run(config, run_dir).skipped and rd.predictions.exists()


@pytest.mark.slow
def test_cv_scores_every_example_once_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_for(tmp_path, train={"epochs": 1})
    calls = []

    def stop_after_first_fold(k, metrics):
        calls.append(k)
        if k == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cv.run(load_config(tmp_path / "s.toml"), tmp_path / "run", 3, on_fold=stop_after_first_fold)
    original, skipped = train.run, []

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        skipped.append(result.skipped)
        return result

    monkeypatch.setattr(train, "run", recording)
    result = CliRunner().invoke(main, ["cv", "s.toml", "--folds", "3", "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    assert skipped == [True, False, False]  # the finished fold is kept
    summary = json.loads((tmp_path / "run" / "cv3" / "summary.json").read_text())
    assert sum(fold["examples"] for fold in summary["per_fold"]) == 160  # every example scored once
    accuracies = [fold["accuracy"] for fold in summary["per_fold"]]
    assert summary["summary"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    aucs = [fold["roc_auc"] for fold in summary["per_fold"]]  # two classes: ROC AUC too
    assert summary["summary"]["roc_auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert f"ROC AUC: {np.mean(aucs):.4f} ± {np.std(aucs, ddof=1):.4f}" in result.output
    assert "mean" in result.output and "± " in result.output and "fold 3/3" in result.output
    # Pooled: every example's out-of-fold prediction, from the folds' confusion matrices and reliability tables.
    pooled = summary["summary"]["pooled"]
    assert pooled["examples"] == 160 and np.sum(pooled["confusion_matrix"]) == 160
    correct = sum(fold["accuracy"] * fold["examples"] for fold in summary["per_fold"])
    assert pooled["accuracy"] == pytest.approx(correct / 160)
    assert np.sum(pooled["reliability_after"]["count"]) == 160 and 0 <= pooled["ece_after"] <= 1
    assert f"out of fold (160 examples, each scored once): accuracy {pooled['accuracy']:.4f}" in result.output
    for figure in ("folds.png", "confusion_matrix.png", "reliability_diagram.png"):
        assert (tmp_path / "run" / "cv3" / figure).read_bytes()[:4] == b"\x89PNG", figure
        assert figure in result.output
    # Every example's out-of-fold prediction, each text once, as the pooled matrix counts them.
    rows, data = read_csv(tmp_path / "run" / "cv3" / "predictions.csv"), read_csv(tmp_path / "train.csv")
    assert sorted((row["text"], row["label"]) for row in rows) == sorted((row["text"], row["label"]) for row in data)
    assert [sum(row["fold"] == str(k) for row in rows) for k in range(3)] == [
        f["examples"] for f in summary["per_fold"]
    ]
    labels = pooled["labels"]
    counts = np.zeros((2, 2), int)
    for row in rows:
        counts[labels.index(row["label"]), labels.index(row["predicted"])] += 1
    assert counts.tolist() == pooled["confusion_matrix"] and "predictions.csv" in result.output
    state = json.loads((tmp_path / "run" / "cv3" / "fold0" / "train_state.json").read_text())
    assert state["status"] in ("completed", "early_stopped")


def test_folds_are_pooled_only_when_their_matrices_add_up():
    def fold(labels, matrix=None):
        result = {"accuracy": 0.5, "macro_f1": 0.5, "balanced_accuracy": 0.5, "train_seconds": 1.0, "labels": labels,
                  "per_class": {label: {"f1": 0.5} for label in "ab"}}  # fmt: skip
        return {**result, "confusion_matrix": matrix} if matrix is not None else result

    same = cv.summarize([fold(["a", "b"], [[3, 1], [0, 2]]), fold(["a", "b"], [[1, 1], [1, 1]])])
    assert same["pooled"]["confusion_matrix"] == [[4, 2], [1, 3]] and same["pooled"]["accuracy"] == 0.7
    assert "reliability_before" not in same["pooled"]  # no calibration in the folds
    assert "pooled" not in cv.summarize([fold(["a", "b"], [[1, 0], [0, 1]]), fold(["a", "c"], [[1, 0], [0, 1]])])
    assert "pooled" not in cv.summarize([fold(["a", "b"]), fold(["a", "b"])])  # beyond MATRIX_CLASSES: no matrix
    assert "roc_auc" not in same  # summarized only where every fold has it
    scored = cv.summarize([{**fold(["a", "b"]), "roc_auc": 0.8}, {**fold(["a", "b"]), "roc_auc": 0.9}])
    assert scored["roc_auc"]["mean"] == pytest.approx(0.85) and scored["roc_auc"]["min"] == 0.8
    assert "roc_auc" not in cv.summarize([{**fold(["a", "b"]), "roc_auc": 0.8}, fold(["a", "b"])])
