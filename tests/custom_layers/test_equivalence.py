"""Our LSTM / SimpleRNN against keras.layers.LSTM / SimpleRNN with copied weights: outputs, states, gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from tests.custom_layers.helpers import (
    TOLERANCE,
    assert_same,
    keras_counterpart,
    outputs_and_gradients,
    randomize,
    right_padding_mask,
    sequences,
)

LAYERS = [custom_layers.LSTM, custom_layers.SimpleRNN]
# fused: the sequence kernel (XLA-compiled or plain TF ops); cell: the per-step cell inside keras.layers.RNN.
PATHS = {
    "fused_xla": {"fused": True, "jit_compile": True},
    "fused_tf": {"fused": True, "jit_compile": False},
    "cell": {"fused": False},
}


@pytest.fixture(params=list(PATHS), ids=list(PATHS))
def path(request):
    return PATHS[request.param]


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_sequences": True},
        {"return_state": True},
        {"return_sequences": True, "return_state": True},
        {"go_backwards": True, "return_sequences": True, "return_state": True},
        {"use_bias": False},
    ],
    ids=["last", "sequences", "state", "sequences_state", "backwards", "no_bias"],
)
def test_matches_keras(layer_class, options, path):
    x = sequences()
    assert_same(layer_class(6, **options, **path), keras_counterpart(layer_class)(6, **options), x)


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_right_padding_mask_matches_keras(layer_class, zero_output_for_mask, go_backwards, path):
    x = sequences(batch=4, steps=6)
    mask = right_padding_mask([6, 4, 1, 3], steps=6)
    options = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards,
               "zero_output_for_mask": zero_output_for_mask}  # fmt: skip
    ours, theirs = layer_class(5, **options, **path), keras_counterpart(layer_class)(5, **options)
    outputs = assert_same(ours, theirs, x, mask=tf.constant(mask))
    if zero_output_for_mask and not go_backwards:
        assert np.all(outputs[0][~mask] == 0)


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
def test_embedding_mask_zero_matches_keras(layer_class, path):
    tokens = np.array([[4, 7, 2, 0, 0], [3, 0, 0, 0, 0], [1, 2, 3, 4, 5]], dtype="int32")

    def model(recurrent):
        return keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(10, 4, mask_zero=True),
                                 recurrent, keras.layers.Dense(2)])  # fmt: skip

    ours, theirs = model(layer_class(5, **path)), model(keras_counterpart(layer_class)(5))
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(tokens), theirs(tokens), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
def test_masking_layer_matches_keras(layer_class, path):
    x = sequences(batch=3, steps=5)
    x[1, 3:] = 0.0
    x[2, 1:] = 0.0

    def model(recurrent):
        return keras.Sequential([keras.Input((5, 5)), keras.layers.Masking(0.0), recurrent])

    ours, theirs = model(layer_class(4, return_sequences=True, **path)), model(
        keras_counterpart(layer_class)(4, return_sequences=True)
    )
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x), theirs(x), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
def test_stateful_two_calls_then_reset(layer_class, path):
    x = sequences(batch=2, steps=4)
    ours = layer_class(3, stateful=True, return_sequences=True, **path)
    theirs = keras_counterpart(layer_class)(3, stateful=True, return_sequences=True)
    ours(x), theirs(x)
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    ours.reset_state(), theirs.reset_state()
    first = [np.asarray(ours(x)), np.asarray(theirs(x))]
    second = [np.asarray(ours(x)), np.asarray(theirs(x))]
    np.testing.assert_allclose(first[0], first[1], atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(second[0], second[1], atol=TOLERANCE, rtol=0)
    assert np.abs(first[0] - second[0]).max() > 1e-3, "the second call must start from the carried state"
    ours.reset_state(), theirs.reset_state()
    np.testing.assert_allclose(np.asarray(ours(x)), first[0], atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(np.asarray(theirs(x)), first[1], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bidirectional_matches_keras(layer_class, merge_mode, path):
    x = sequences()
    mask = tf.constant(right_padding_mask([7, 5, 2], steps=7))
    ours = keras.layers.Bidirectional(layer_class(4, return_sequences=True, **path), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(keras_counterpart(layer_class)(4, return_sequences=True), merge_mode=merge_mode)
    assert_same(ours, theirs, x, mask=mask)


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
def test_two_stacked_layers_match_keras(layer_class, path):
    x = sequences()

    def stack(cls, **kwargs):
        return keras.Sequential([keras.Input((7, 5)), cls(6, return_sequences=True, **kwargs), cls(4, **kwargs)])

    assert_same(stack(layer_class, **path), stack(keras_counterpart(layer_class)), x)


@pytest.mark.parametrize("cell_class, keras_cell", [(custom_layers.LSTMCell, keras.layers.LSTMCell),
                                                    (custom_layers.SimpleRNNCell, keras.layers.SimpleRNNCell)])  # fmt: skip
def test_cells_inside_keras_rnn_and_stacked_cells(cell_class, keras_cell):
    x = sequences()
    ours = keras.layers.RNN([cell_class(6), cell_class(3)], return_sequences=True, return_state=True)
    theirs = keras.layers.RNN([keras_cell(6), keras_cell(3)], return_sequences=True, return_state=True)
    assert_same(ours, theirs, x)


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
def test_weights_copy_from_keras_into_ours(layer_class):
    x = sequences()
    theirs, ours = keras_counterpart(layer_class)(6, return_sequences=True), layer_class(6, return_sequences=True)
    theirs(x), ours(x)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    randomize(theirs)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x), theirs(x), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
def test_dropout_fused_and_cell_paths_agree(layer_class):
    """With the same seed both paths draw the same per-sequence masks, so they compute the same function."""
    x = sequences()
    results = []
    for fused in (True, False):
        layer = layer_class(5, dropout=0.3, seed=7, return_sequences=True, fused=fused)
        layer(x)
        randomize(layer)
        results.append(outputs_and_gradients(layer, x, training=True))
    (out_a, grad_a), (out_b, grad_b) = results
    np.testing.assert_allclose(out_a[0], out_b[0], atol=TOLERANCE, rtol=0)
    for a, b in zip(grad_a, grad_b):
        np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=0)
    inference = layer_class(5, dropout=0.3, seed=7, return_sequences=True)
    inference(x)
    randomize(inference)
    assert np.abs(np.asarray(inference(x, training=True)) - np.asarray(inference(x))).max() > 1e-3


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
def test_recurrent_dropout_trains(layer_class):
    model = keras.Sequential([keras.Input((7, 5)), layer_class(4, dropout=0.2, recurrent_dropout=0.2, seed=1),
                              keras.layers.Dense(1)])  # fmt: skip
    model.compile("adam", "mse")
    history = model.fit(sequences(batch=8), np.ones((8, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("layer_class", LAYERS, ids=["lstm", "simple_rnn"])
def test_fit_in_graph_mode_matches_keras(layer_class):
    """A few Adam steps inside model.fit (tf.function): the weights stay equal to the built-in's."""
    x, y = sequences(batch=8), np.random.default_rng(3).normal(size=(8, 2)).astype("float32")

    def model(recurrent):
        m = keras.Sequential([keras.Input((7, 5)), recurrent, keras.layers.Dense(2)])
        m.compile(keras.optimizers.Adam(0.01), "mse")
        return m

    ours, theirs = model(layer_class(4)), model(keras_counterpart(layer_class)(4))
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    ours.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    theirs.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
