"""DropConnect on the recurrent kernel (`recurrent_weight_dropout`): with its mask fixed, each layer is exactly the
layer without it whose recurrent kernel is the masked one, on every path; the mask is unbiased, drawn once per call,
and off at inference. Runs on every backend (the fused paths on TensorFlow)."""

import keras
import numpy as np
import pytest

import custom_layers
from tests.custom_layers.helpers import TOLERANCE, on_tensorflow, outputs_and_gradients, randomize, sequences

RATE = 0.4
LAYERS = {
    "lstm": (custom_layers.LSTM, {}),
    "gru": (custom_layers.GRU, {}),
    "gru_reset_before": (custom_layers.GRU, {"reset_after": False}),
    "simple_rnn": (custom_layers.SimpleRNN, {}),
}
PATHS = {"fused_xla": {"jit_compile": True}, "fused_plain_tf": {"jit_compile": False}, "cell": {"fused": False}}


def fixed_mask(layer, mask):
    """Makes the layer's cell use `mask` as its DropConnect mask; returns the list its draws are counted in."""
    draws = []

    def draw():
        draws.append(1)
        layer.cell._recurrent_kernel_mask = keras.ops.convert_to_tensor(mask, dtype="float32")

    layer.cell._draw_recurrent_kernel_mask = draw
    return draws


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", LAYERS)
def test_with_the_mask_fixed_the_layer_is_the_one_with_the_masked_kernel(name, path):
    if path != "cell" and not on_tensorflow():
        pytest.skip("the fused kernels are TensorFlow's")
    layer_class, options = LAYERS[name]
    x = sequences(batch=4, steps=6, features=5)
    ours = layer_class(7, recurrent_weight_dropout=RATE, return_sequences=True, **options, **PATHS[path])
    plain = layer_class(7, return_sequences=True, **options, **PATHS[path])
    for layer in (ours, plain):
        layer.build(x.shape)
    randomize(ours)
    kernel, recurrent_kernel, *rest = ours.get_weights()
    mask = (np.random.default_rng(3).random(recurrent_kernel.shape) >= RATE) / (1 - RATE)
    draws = fixed_mask(ours, mask)
    plain.set_weights([kernel, recurrent_kernel * mask, *rest])
    if path != "cell":
        assert ours.can_fuse(training=True), "DropConnect keeps the fused kernel"

    our_out, our_grad = outputs_and_gradients(ours, x, training=True)
    plain_out, plain_grad = outputs_and_gradients(plain, x, training=True)
    np.testing.assert_allclose(our_out[0], plain_out[0], atol=TOLERANCE, rtol=0)
    # d/dU of f(U * mask) is mask * f'(U * mask); the other gradients are the plain layer's.
    expected = [plain_grad[0], plain_grad[1], plain_grad[2] * mask, *plain_grad[3:]]
    for ours_grad, theirs in zip(our_grad, expected):
        np.testing.assert_allclose(ours_grad, theirs, atol=TOLERANCE, rtol=0)
    if on_tensorflow():
        assert len(draws) == 1, "one mask per call, shared by every timestep"

    unmasked = layer_class(7, return_sequences=True, **options, **PATHS[path])
    unmasked.build(x.shape)
    unmasked.set_weights(ours.get_weights())
    inferred = [keras.ops.convert_to_numpy(layer(x, training=False)) for layer in (ours, unmasked)]
    np.testing.assert_allclose(*inferred, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", LAYERS)
def test_rate_zero_is_the_layer_without_it(name):
    layer_class, options = LAYERS[name]
    x = sequences()
    with_zero = layer_class(6, recurrent_weight_dropout=0.0, **options)
    without = layer_class(6, **options)
    for layer in (with_zero, without):
        layer.build(x.shape)
    randomize(with_zero)
    without.set_weights(with_zero.get_weights())
    a, b = outputs_and_gradients(with_zero, x, training=True), outputs_and_gradients(without, x, training=True)
    for left, right in zip(a[0] + a[1], b[0] + b[1]):
        np.testing.assert_array_equal(left, right)


def test_the_mask_keeps_the_expected_kernel_and_is_drawn_anew_each_call():
    cell = custom_layers.LSTMCell(16, recurrent_weight_dropout=RATE, seed=5)
    cell.build((None, 4))
    draws = []
    for _ in range(400):
        cell._draw_recurrent_kernel_mask()
        draws.append(keras.ops.convert_to_numpy(cell._recurrent_kernel_mask))
        cell.reset_recurrent_dropout_mask()
    masks = np.stack(draws)  # 400 x 16 x 64 entries
    np.testing.assert_allclose(np.unique(masks), [0.0, 1 / (1 - RATE)], rtol=1e-6)
    # E[M] = 1 (so E[U~] = U): the mean of 409,600 draws, whose standard error is about 0.0013.
    assert abs(masks.mean() - 1.0) < 0.01
    assert abs((masks == 0).mean() - RATE) < 0.005
    assert not np.array_equal(masks[0], masks[1]), "a new mask for each batch"


def test_training_calls_differ_and_inference_is_deterministic():
    x = sequences(batch=2, steps=5, features=3)
    layer = custom_layers.LSTM(8, recurrent_weight_dropout=0.5, seed=1)
    first, second = (keras.ops.convert_to_numpy(layer(x, training=True)) for _ in range(2))
    assert not np.allclose(first, second), "each call draws its own mask"
    assert layer.cell._recurrent_kernel_mask is None, "the mask is not kept after the call"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), keras.ops.convert_to_numpy(layer(x)))


@pytest.mark.parametrize("name", LAYERS)
def test_the_rate_round_trips_and_is_checked(name):
    layer_class, options = LAYERS[name]
    layer = layer_class(4, recurrent_weight_dropout=0.3, **options)
    assert layer.recurrent_weight_dropout == 0.3
    assert layer_class.from_config(layer.get_config()).cell.recurrent_weight_dropout == 0.3
    cell = type(layer.cell)(4, recurrent_weight_dropout=0.3)
    assert type(cell).from_config(cell.get_config()).recurrent_weight_dropout == 0.3
    with pytest.raises(ValueError, match="recurrent_weight_dropout=1.0"):
        layer_class(4, recurrent_weight_dropout=1.0)
