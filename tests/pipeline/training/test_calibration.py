"""Temperature scaling, ECE and the layer that applies the temperature."""

import keras
import numpy as np
import pytest

from pipeline.training import calibration
from pipeline.training.calibration import TemperatureScaling, calibrated


def sampled(temperature: float, n: int = 20000, classes: int = 3, seed: int = 0):
    """Logits and labels drawn from softmax(logits / temperature): calibrated at exactly that temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, classes))
    probabilities = np.exp(calibration.log_softmax(logits, temperature))
    labels = (rng.random((n, 1)) > probabilities.cumsum(axis=1)).sum(axis=1)
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_at(true_temperature):
    logits, labels = sampled(true_temperature)
    fitted = calibration.fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    assert calibration.nll(logits, labels, fitted) <= calibration.nll(logits, labels, true_temperature) + 1e-9


def test_scaling_an_overconfident_model_lowers_ece_and_nll():
    logits, labels = sampled(2.0)  # the model's logits are twice too large
    after = calibration.report(logits, labels, calibration.fit_temperature(logits, labels))
    assert after["ece_after"] < after["ece_before"] / 3 and after["nll_after"] < after["nll_before"]
    check = calibration.held_out_check(logits, labels)
    assert check["ece_after"] < check["ece_before"] and check["examples"] == len(labels) - len(labels) // 2


def test_ece_by_hand():
    # confidences 0.9 (right), 0.9 (wrong) in one bin; 0.6 (right) in another: (2 * |0.5 - 0.9| + |1 - 0.6|) / 3
    probabilities = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4]])
    confidence, correct = calibration.top_class(probabilities, np.array([0, 0, 0]))
    assert calibration.expected_calibration_error(confidence, correct, bins=10) == pytest.approx((0.8 + 0.4) / 3)
    table = calibration.reliability_of(calibration.bin_sums(confidence, correct, bins=10))
    assert table["count"].tolist() == [0] * 6 + [1, 0, 0, 2]
    assert calibration.expected_calibration_error(np.array([1.0]), np.array([True])) == 0.0  # 1.0: the last bin


def test_the_tables_of_disjoint_parts_add_up_to_the_whole():
    """Cross-validation pools its folds' reliability tables: the sum of the parts' tables is the table, and gives the
    ECE, of all their examples."""
    rng = np.random.default_rng(4)
    confidence, correct = rng.uniform(0.5, 1.0, 300), rng.uniform(size=300) < 0.7
    parts = [calibration.bin_sums(confidence[k::3], correct[k::3]) for k in range(3)]
    whole = calibration.bin_sums(confidence, correct)
    pooled = calibration.add_sums(parts)
    np.testing.assert_array_equal(pooled["count"], whole["count"])
    np.testing.assert_allclose(pooled["confidence"], whole["confidence"], rtol=1e-12)
    np.testing.assert_allclose(pooled["correct"], whole["correct"], rtol=1e-12)
    assert calibration.ece_of(pooled) == pytest.approx(calibration.expected_calibration_error(confidence, correct))
    assert calibration.ece_of(pooled) != pytest.approx(np.mean([calibration.ece_of(p) for p in parts]))
    table = calibration.reliability_of(pooled)
    assert table["count"].sum() == 300 and np.isnan(table["accuracy"][0])  # no confidence below 0.5: empty bins


def test_the_search_stops_at_its_bounds():
    logits = np.array([[5.0, -5.0], [-5.0, 5.0]])
    assert calibration.fit_temperature(logits, np.array([0, 1])) == pytest.approx(calibration.MIN_TEMPERATURE)
    assert calibration.fit_temperature(logits, np.array([1, 0])) == pytest.approx(calibration.MAX_TEMPERATURE)


def test_the_layer_divides_logits_and_round_trips(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    scaled = calibrated(model, 2.0)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(np.asarray(scaled(x)), np.asarray(model(x)) / 2.0, rtol=1e-6)
    scaled.save(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(tmp_path / "m.keras")(x)), np.asarray(scaled(x)))
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            TemperatureScaling(bad)
