"""Metric definitions against brute force and hand-computed values."""

import itertools

import numpy as np
import pytest

from pipeline.metrics import classification_metrics, roc_auc


def brute_force_auc(positive, scores):
    pairs = list(itertools.product(scores[positive], scores[~positive]))
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_pairwise_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=40) / 5  # many ties
    positive = rng.random(40) < 0.4
    assert roc_auc(positive, scores) == pytest.approx(brute_force_auc(positive, scores))


def test_roc_auc_extremes():
    positive = np.array([False, False, True, True])
    assert roc_auc(positive, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(positive, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(positive, np.full(4, 0.5)) == 0.5


def test_classification_metrics_by_hand():
    truth = np.array([0, 0, 0, 1, 1, 2])
    probabilities = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    m = classification_metrics(truth, probabilities, ("a", "b", "c"))
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                   "support": 3}  # fmt: skip
    assert m["per_class"]["b"]["precision"] == 0.5 and m["per_class"]["b"]["recall"] == 0.5
    assert m["macro_f1"] == pytest.approx(np.mean([0.8, 0.5, 2 / 3]))
    assert "roc_auc" not in m
