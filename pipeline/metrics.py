"""Classification metrics, computed from predicted probabilities (NumPy only)."""

from __future__ import annotations

import numpy as np


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
