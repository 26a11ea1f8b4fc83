"""Metric definitions against brute force and hand-computed values."""

import itertools

import numpy as np
import pytest

from pipeline.training.metrics import classification_metrics, matrix_metrics, roc_auc


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
    m = classification_metrics(truth, np.array([0, 0, 1, 1, 2, 2]), ("a", "b", "c"))
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                   "support": 3}  # fmt: skip
    assert m["per_class"]["b"]["precision"] == 0.5 and m["per_class"]["b"]["recall"] == 0.5
    assert m["macro_f1"] == pytest.approx(np.mean([0.8, 0.5, 2 / 3]))
    assert "roc_auc" not in m


def test_two_classes_get_roc_auc_from_the_positive_scores():
    truth = np.array([0, 1, 1, 0])
    scores = np.array([0.1, 0.9, 0.4, 0.3])
    m = classification_metrics(truth, np.array([0, 1, 0, 0]), ("neg", "pos"), positive_scores=scores)
    assert m["roc_auc"] == 1.0 and m["confusion_matrix"] == [[2, 0], [1, 1]]


def test_many_classes_list_the_top_confusions_instead_of_the_matrix():
    """Beyond MATRIX_CLASSES the report stays small: no classes x classes matrix, the most frequent mistakes."""
    labels = [f"c{k}" for k in range(1000)]
    truth = np.repeat(np.arange(1000), 3)
    predicted = truth.copy()
    predicted[:6] = [5, 5, 5, 7, 7, 0]  # c0 -> c5 three times, c1 -> c7 twice, c1 -> c0 once
    m = classification_metrics(truth, predicted, labels)
    assert "confusion_matrix" not in m and len(m["per_class"]) == 1000
    assert m["top_confusions"][:3] == [{"true": "c0", "predicted": "c5", "count": 3},
                                       {"true": "c1", "predicted": "c7", "count": 2},
                                       {"true": "c1", "predicted": "c0", "count": 1}]  # fmt: skip
    assert len(m["top_confusions"]) == 3
    assert m["accuracy"] == pytest.approx(1 - 6 / 3000)
    assert m["per_class"]["c5"]["precision"] == pytest.approx(3 / 6)


def test_the_figures_of_a_confusion_matrix_are_those_of_its_examples():
    rng = np.random.default_rng(5)
    truth, predicted = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    predicted[:300] = truth[:300]
    labels = ["a", "b", "c", "d"]
    direct = classification_metrics(truth, predicted, labels)
    assert matrix_metrics(direct["confusion_matrix"], labels) == direct
