"""Classification metrics, computed from predicted classes (NumPy only).

Memory and report size grow with the examples and the classes, never with their product: per-class counts come
from bincounts, and the confusion matrix is written out in full only up to MATRIX_CLASSES classes (10,000 cells);
beyond that the report lists the TOP_CONFUSIONS most frequent mistakes instead (`top_confusions`).
"""

from __future__ import annotations

import numpy as np

MATRIX_CLASSES = 100
TOP_CONFUSIONS = 100


def classification_metrics(truth: np.ndarray, predicted: np.ndarray, labels, positive_scores=None) -> dict:
    """truth, predicted: class ids, one per example; positive_scores: for two classes, the probability of class 1
    per example (for ROC AUC)."""
    truth, predicted = np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    n = len(labels)
    metrics = _from_counts(np.bincount(truth, minlength=n), np.bincount(predicted, minlength=n),
                           np.bincount(truth[truth == predicted], minlength=n), labels)  # fmt: skip
    if n <= MATRIX_CLASSES:
        matrix = np.zeros((n, n), dtype=np.int64)
        np.add.at(matrix, (truth, predicted), 1)
        metrics["confusion_matrix"] = matrix.tolist()
    else:
        metrics["top_confusions"] = top_confusions(truth, predicted, labels)
    if n == 2 and positive_scores is not None:
        metrics["roc_auc"] = roc_auc(truth == 1, np.asarray(positive_scores))
    return metrics


def matrix_metrics(matrix, labels) -> dict:
    """`classification_metrics` (but ROC AUC) from a confusion matrix [true class, predicted class]: for examples
    scored in parts (cross-validation's folds), the figures of them all from the sum of the parts' matrices."""
    matrix = np.asarray(matrix, dtype=np.int64)
    metrics = _from_counts(matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix), labels)
    return {**metrics, "confusion_matrix": matrix.tolist()}


def _from_counts(support: np.ndarray, predicted_count: np.ndarray, true_positive: np.ndarray, labels) -> dict:
    """Per class and overall figures from each class's examples, predictions and correct predictions."""
    per_class = {}
    for k, name in enumerate(labels):
        tp = true_positive[k]
        precision = tp / predicted_count[k] if predicted_count[k] else 0.0
        recall = tp / support[k] if support[k] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "support": int(support[k])}  # fmt: skip
    examples = int(support.sum())
    return {
        "examples": examples,
        "accuracy": float(true_positive.sum() / examples) if examples else float("nan"),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        # The mean recall over the classes present: what accuracy would be with the classes equally frequent.
        "balanced_accuracy": float(np.mean([c["recall"] for c in per_class.values() if c["support"]])),
        "majority_share": float(support.max() / max(examples, 1)),
        "per_class": per_class,
        "labels": list(labels),
    }


def top_confusions(truth: np.ndarray, predicted: np.ndarray, labels, limit: int = TOP_CONFUSIONS) -> list[dict]:
    """The `limit` most frequent (true class, predicted class) mistakes, most frequent first (ties: by class ids)."""
    wrong = truth != predicted
    pairs, counts = np.unique(truth[wrong] * len(labels) + predicted[wrong], return_counts=True)
    order = np.lexsort((pairs, -counts))[:limit]
    return [{"true": labels[pairs[i] // len(labels)], "predicted": labels[pairs[i] % len(labels)],
             "count": int(counts[i])} for i in order]  # fmt: skip


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
