"""Calibrated class probabilities: temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks").

A classifier's probabilities become softmax(z / T) for its logits z and one temperature T > 0 fitted on the
validation split after training, minimizing the validation negative log-likelihood:

    T* = argmin_T  mean_i [ logsumexp(z_i / T) - z_i[y_i] / T ]

(convex in 1 / T, so a bracketing search finds it). T leaves every argmax, hence accuracy and F1, unchanged; it only
makes confident predictions more or less so. The exported model applies it (`TemperatureScaling`).

Expected calibration error (ECE, Naeini et al. 2015), with B equal-width bins of the top-class confidence:

    ECE = sum_b |bin b| / n * | accuracy(bin b) - mean confidence(bin b) |

NumPy only, but for the Keras layer that applies T.
"""

from __future__ import annotations

import math

import keras
import numpy as np

ECE_BINS = 15
# The search range of T: outside it a validation split is separable (T -> 0) or says nothing (T -> infinity), and
# the fitted value would only be the bound.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
_SEARCH_STEPS = 100


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes under softmax(logits / temperature)."""
    labels = np.asarray(labels, np.int64)
    return float(-log_softmax(logits, temperature)[np.arange(labels.size), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] that minimizes `nll` (golden-section search over log T: the
    loss is convex in 1 / T, so it has one minimum along log T too)."""
    if len(labels) == 0:
        raise ValueError("fit_temperature needs at least one example")
    low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(_SEARCH_STEPS):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, labels, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((low + high) / 2))


def top_class(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence: the top class's probability, correct: whether it is the true class) per example."""
    probabilities = np.asarray(probabilities, np.float64)
    return probabilities.max(axis=-1), probabilities.argmax(axis=-1) == np.asarray(labels)


def bin_sums(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Per equal-width bin of the top-class confidence: examples, summed confidence, correct predictions. Sums, so
    that the tables of disjoint sets of examples (cross-validation's folds) add up to the table of their union."""
    confidence = np.asarray(confidence, np.float64)
    # A confidence of exactly 1.0 belongs to the last bin.
    index = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    return {
        "count": np.bincount(index, minlength=bins).tolist(),
        "confidence": np.bincount(index, weights=confidence, minlength=bins).tolist(),
        "correct": np.bincount(index, weights=np.asarray(correct, np.float64), minlength=bins).tolist(),
    }


def add_sums(tables: list[dict]) -> dict:
    """The bin_sums table of the union of disjoint sets of examples."""
    return {key: np.sum([t[key] for t in tables], axis=0).tolist() for key in ("count", "confidence", "correct")}


def reliability_of(sums: dict) -> dict:
    """A bin_sums table as examples, mean confidence and accuracy per bin (NaN when empty)."""
    count = np.asarray(sums["count"], np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"count": count, "confidence": np.asarray(sums["confidence"]) / count,
                "accuracy": np.asarray(sums["correct"]) / count}  # fmt: skip


def ece_of(sums: dict) -> float:
    """ECE from a bin_sums table: |bin b| x |accuracy - mean confidence| is |correct - summed confidence|."""
    gaps = np.abs(np.asarray(sums["correct"]) - np.asarray(sums["confidence"]))
    return float(gaps.sum() / max(int(np.sum(sums["count"])), 1))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    return ece_of(bin_sums(confidence, correct, bins))


def report(logits: np.ndarray, labels: np.ndarray, temperature: float, bins: int = ECE_BINS) -> dict:
    """ECE and NLL of `logits` before (T = 1) and after temperature scaling."""
    before = top_class(np.exp(log_softmax(logits)), labels)
    after = top_class(np.exp(log_softmax(logits, temperature)), labels)
    return {
        "temperature": temperature,
        "ece_before": expected_calibration_error(*before, bins),
        "ece_after": expected_calibration_error(*after, bins),
        "nll_before": nll(logits, labels),
        "nll_after": nll(logits, labels, temperature),
        "bins": bins,
        "examples": int(len(labels)),
    }


def held_out_check(logits: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """Whether temperature scaling helps on data it was not fitted on: T fitted on one seeded half of the
    validation split, ECE and NLL scored on the other half before and after."""
    order = np.random.default_rng(seed).permutation(len(labels))
    fit, score = order[: len(order) // 2], order[len(order) // 2 :]
    temperature = fit_temperature(logits[fit], labels[fit])
    return report(logits[score], labels[score], temperature)


@keras.saving.register_keras_serializable(package="rnnpipe")
class TemperatureScaling(keras.layers.Layer):
    """Logits divided by a fixed temperature: softmax of the output is the calibrated probability.

    Args:
        temperature: T > 0 (`fit_temperature`).

    Call arguments:
        logits: float [batch, classes].

    Example:
        calibrated = keras.Model(model.inputs, TemperatureScaling(1.7)(model.outputs[0]))
    """

    def __init__(self, temperature: float = 1.0, **kwargs):
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be > 0 and finite, got temperature={temperature}")
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, logits):
        return logits / self.temperature

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def calibrated(model: keras.Model, temperature: float) -> keras.Model:
    """`model` with its logits divided by `temperature` (its layers and weights shared, not copied)."""
    # A single input stays a tensor, not a one-element list, which Keras would warn about at each call.
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, TemperatureScaling(temperature, name="temperature")(model.outputs[0]), name=model.name)
