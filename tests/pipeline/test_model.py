"""The pipeline's model: padding never changes a prediction, pooling, stateful copies, serialization."""

import keras
import numpy as np
import pytest

from pipeline.config import ModelConfig
from pipeline.model import MaskedGlobalPooling1D, build_model


@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_sentiment_logits(pooling, bidirectional):
    config = ModelConfig(units=4, embedding_dim=3, bidirectional=bidirectional, pooling=pooling, layers=2)
    model = build_model(config, "sentiment", vocab_size=10, num_classes=3, seed=1)
    padded = np.asarray(model(np.array([[3, 4, 5, 0, 0, 0], [0, 0, 0, 0, 0, 0]])))
    np.testing.assert_allclose(padded[0], np.asarray(model(np.array([[3, 4, 5]])))[0], atol=1e-6)
    assert np.isfinite(padded).all(), "an empty text still gets finite logits"


def test_masked_pooling_by_hand():
    x = np.array([[[1.0, -5.0], [3.0, -1.0], [9.0, 9.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(MaskedGlobalPooling1D("max")(x, mask=mask), [[3.0, -1.0]])
    np.testing.assert_allclose(MaskedGlobalPooling1D("mean")(x, mask=mask), [[2.0, -3.0]])
    with pytest.raises(ValueError, match="mode='median'"):
        MaskedGlobalPooling1D("median")


def test_stateful_copy_carries_state_across_calls():
    config = ModelConfig(units=6, embedding_dim=4)
    model = build_model(config, "next_char", vocab_size=12, seed=0)
    stateful = build_model(config, "next_char", vocab_size=12, seed=0, stateful_batch=2)
    stateful.set_weights(model.get_weights())
    tokens = np.random.default_rng(0).integers(0, 12, size=(2, 10))
    whole = np.asarray(model(tokens))
    halves = np.concatenate([np.asarray(stateful(tokens[:, :5])), np.asarray(stateful(tokens[:, 5:]))], axis=1)
    np.testing.assert_allclose(halves, whole, atol=1e-5)


def test_pooled_model_round_trips_through_keras_file(tmp_path):
    model = build_model(ModelConfig(units=4, embedding_dim=3, pooling="max"), "sentiment", 10, 2)
    model.save(tmp_path / "m.keras")
    tokens = np.array([[1, 2, 3, 0]])
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "m.keras")(tokens), model(tokens))
