"""Stage 3: evaluate the best checkpoint on `evaluate.split` and write metrics.json.

sentiment: accuracy, macro_f1, per-class precision / recall / F1 / support, the confusion matrix (rows = true class,
columns = predicted; also confusion_matrix.png) and, for two classes, ROC AUC (rank-based, ties averaged).

next_char: the split's text is cut into `STREAMS` contiguous streams that are read window by window with the
recurrent state carried across windows (a stateful copy of the model), so every character but the first of each
stream is predicted once, from everything before it in its stream. `loss` is the mean cross-entropy in nats per
character, `bits_per_char` = loss / ln 2, `perplexity` = exp(loss), `accuracy` the top-1 next-character accuracy.
"""

from __future__ import annotations

import logging
import math
import time

import keras
import numpy as np
import tensorflow as tf

import custom_layers  # noqa: F401  (registers our layers for loading checkpoints)
from pipeline import artifacts, inputs, plots
from pipeline.config import Config
from pipeline.data import load_splits
from pipeline.errors import DataError
from pipeline.model import build_model
from pipeline.rundir import as_run_dir
from pipeline.text import Vocabulary

logger = logging.getLogger(__name__)

STREAMS = 16


def run(config: Config, run_dir, overwrite: bool = False) -> dict:
    rd = as_run_dir(run_dir, config)
    if rd.metrics.exists() and not overwrite and rd.metrics.stat().st_mtime >= _mtime(rd.best_model):
        logger.info("evaluate: %s is up to date, kept (use --overwrite to recompute)", rd.metrics)
        return artifacts.read_json(rd.metrics)
    vocab = Vocabulary.load(rd.require(rd.vocabulary, "tokenize"))
    model = keras.saving.load_model(rd.require(rd.best_model, "train"))
    splits = load_splits(config)
    split = config.evaluate.split
    data = {"train": splits.train, "validation": splits.validation, "test": splits.test}[split]
    if data is None:
        raise DataError(f"evaluate.split: the data has no {split!r} split (set data.test / data.test_fraction)")
    start = time.monotonic()
    if config.task == "sentiment":
        labels = tuple(artifacts.read_json(rd.require(rd.labels, "tokenize")))
        metrics = sentiment_metrics(model, data, vocab, labels, config.evaluate.batch_size)
        plots.confusion_matrix(metrics["confusion_matrix"], labels, rd.confusion_matrix)
    else:
        metrics = next_char_metrics(model, config, data, vocab)
    metrics = {"split": split, **metrics, "seconds": round(time.monotonic() - start, 2)}
    artifacts.write_json(rd.metrics, metrics)
    return metrics


def summary(metrics: dict) -> str:
    if "bits_per_char" in metrics:
        return (f"{metrics['split']}: loss {metrics['loss']:.4f} nats/char, {metrics['bits_per_char']:.3f} "
                f"bits/char, perplexity {metrics['perplexity']:.2f}, accuracy {metrics['accuracy']:.3f} "
                f"({metrics['examples']:,} characters)")  # fmt: skip
    auc = f", ROC AUC {metrics['roc_auc']:.4f}" if "roc_auc" in metrics else ""
    return (f"{metrics['split']}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}{auc} "
            f"({metrics['examples']:,} examples)")  # fmt: skip


def _mtime(path) -> float:
    return path.stat().st_mtime if path.exists() else math.inf


# --- sentiment ---------------------------------------------------------------------------------------------------


def sentiment_metrics(model, examples, vocab, labels, batch_size) -> dict:
    ds = inputs.sentiment_dataset(examples, vocab, labels, batch_size)
    probabilities, truth = [], []
    for ids, y in ds:
        probabilities.append(tf.nn.softmax(model(ids, training=False)).numpy())
        truth.append(y.numpy())
    if not truth:
        raise DataError("the evaluation split is empty")
    probabilities, truth = np.concatenate(probabilities), np.concatenate(truth)
    return classification_metrics(truth, probabilities, labels)


def classification_metrics(truth: np.ndarray, probabilities: np.ndarray, labels) -> dict:
    n = len(labels)
    predicted = probabilities.argmax(axis=1)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    per_class = {}
    for k, name in enumerate(labels):
        tp = matrix[k, k]
        precision = tp / matrix[:, k].sum() if matrix[:, k].sum() else 0.0
        recall = tp / matrix[k].sum() if matrix[k].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "support": int(matrix[k].sum())}  # fmt: skip
    metrics = {
        "examples": int(truth.size),
        "accuracy": float((predicted == truth).mean()),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
    }
    if n == 2:
        metrics["roc_auc"] = roc_auc(truth == 1, probabilities[:, 1])
    return metrics


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney U statistic / (n_pos * n_neg), ties given half credit via average ranks."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size)
    sorted_scores = scores[order]
    i = 0
    while i < scores.size:  # average rank over each run of tied scores
        j = i
        while j + 1 < scores.size and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --- next_char ---------------------------------------------------------------------------------------------------


def next_char_metrics(model, config: Config, chunks, vocab) -> dict:
    ids = np.fromiter(inputs.char_ids(chunks, vocab).as_numpy_iterator(), dtype=np.int32)
    streams = max(1, min(STREAMS, (ids.size - 1) // 2))
    length = ids.size // streams
    if length < 2:
        raise DataError(f"the evaluation text has {ids.size} characters; too short to score")
    ids = ids[: streams * length].reshape(streams, length)
    scorer = build_model(config.model, "next_char", vocab.size, seed=config.seed, stateful_batch=streams)
    scorer.set_weights(model.get_weights())
    window = config.train.sequence_length
    total_loss, correct, count = 0.0, 0, 0
    for start in range(0, length - 1, window):
        x = ids[:, start : min(start + window, length - 1)]
        y = ids[:, start + 1 : start + 1 + x.shape[1]]
        logits = scorer(x, training=False)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        total_loss += float(tf.reduce_sum(tf.cast(losses, tf.float64)))
        correct += int(tf.reduce_sum(tf.cast(tf.argmax(logits, -1, output_type=tf.int32) == y, tf.int32)))
        count += y.size
    loss = total_loss / count
    return {
        "examples": count,
        "loss": loss,
        "bits_per_char": loss / math.log(2),
        "perplexity": math.exp(loss),
        "accuracy": correct / count,
        "scoring": f"{streams} contiguous streams, windows of {window} characters, state carried across windows",
    }

