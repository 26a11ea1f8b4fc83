"""Each private Keras / TensorFlow name in custom_layers._keras_private exists and behaves as it is relied on.

A Keras or TensorFlow release that moves or changes one of them fails here, by name, rather than somewhere deep in a
layer or in training.
"""

import keras
import numpy as np
import pytest

from custom_layers import _keras_private
from tests.custom_layers.helpers import sequences


class MaskCountingCell(keras.layers.Layer, _keras_private.DropoutRNNCell):
    """A minimal cell that records how many distinct dropout masks it saw per call of keras.layers.RNN."""

    def __init__(self, units=3, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.units = self.state_size = self.output_size = units
        self.dropout, self.recurrent_dropout = dropout, 0.0
        self.seed_generator = keras.random.SeedGenerator(1)
        self.masks = []

    def call(self, inputs, states, training=False):
        if training:
            mask = self.get_dropout_mask(inputs)
            self.masks.append(mask)
            inputs = inputs * mask
        return inputs[:, : self.units], states


def test_keras_rnn_draws_one_dropout_mask_per_call_and_resets_it_between_calls():
    cell = MaskCountingCell()
    layer = keras.layers.RNN(cell, unroll=True)  # unrolled: the cell's Python code runs once per step
    x = np.ones((4, 3, 3), "float32")
    layer(x, training=True)
    first = [np.asarray(m) for m in cell.masks]
    assert len(first) == 3 and all(np.array_equal(first[0], m) for m in first), "one mask shared by all steps"
    assert cell._dropout_mask is None, "keras.layers.RNN clears the mask after the loop"
    cell.masks.clear()
    layer(x, training=True)
    assert not np.array_equal(first[0], np.asarray(cell.masks[0])), "a new mask for the next call"
    for name in ("get_dropout_mask", "get_recurrent_dropout_mask", "reset_dropout_mask",
                 "reset_recurrent_dropout_mask"):  # fmt: skip
        assert callable(getattr(cell, name))


def test_backend_rnn_returns_every_output_on_request():
    x = sequences(batch=2, steps=4, features=3)

    def step(inputs, states):
        h = states[0] + inputs
        return h, [h]

    mask = np.array([[True] * 4, [True, True, False, False]])
    last, outputs, states = _keras_private.backend_rnn(
        step, keras.ops.convert_to_tensor(x), [keras.ops.zeros((2, 3))], mask=keras.ops.convert_to_tensor(mask),
        return_all_outputs=True, zero_output_for_mask=False, go_backwards=False, unroll=False, input_length=4,
    )  # fmt: skip
    expected = np.cumsum(x, axis=1)
    expected[1, 2:] = expected[1, 1]  # masked steps repeat the previous output and carry the state
    np.testing.assert_allclose(np.asarray(outputs), expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(last), expected[:, -1], atol=1e-6)
    np.testing.assert_allclose(np.asarray(states[0]), expected[:, -1], atol=1e-6)


def test_optimization_barrier_is_importable_on_tensorflow():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the barrier is TensorFlow's; other backends never reach the fused kernels")
    import tensorflow as tf

    assert _keras_private.optimization_barrier is not None, "tensorflow.compiler.tf2xla.python.xla moved it"
    a, b = tf.constant([1.0, 2.0]), tf.constant([3.0])

    @tf.function(jit_compile=True)
    def through_barrier(a, b):
        return _keras_private.optimization_barrier(a * 2, b)

    out = through_barrier(a, b)
    np.testing.assert_array_equal(out[0], [2.0, 4.0])
    np.testing.assert_array_equal(out[1], [3.0])
