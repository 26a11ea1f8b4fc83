"""SimpleRNNCell / SimpleRNN against the equation stepped in NumPy."""

import numpy as np

import custom_layers
from tests.custom_layers.helpers import TOLERANCE, randomize, sequences


def test_layer_matches_numpy_equation():
    x = sequences(batch=2, steps=6, features=3)
    layer = custom_layers.SimpleRNN(4, return_sequences=True)
    layer(x)
    randomize(layer)
    kernel, recurrent_kernel, bias = layer.get_weights()
    h = np.zeros((2, 4))
    expected = []
    for t in range(6):
        h = np.tanh(x[:, t] @ kernel + h @ recurrent_kernel + bias)
        expected.append(h)
    np.testing.assert_allclose(layer(x), np.stack(expected, 1), atol=TOLERANCE, rtol=0)


def test_relu_activation_uses_the_cell_path():
    x = sequences(batch=2, steps=4, features=3)
    layer = custom_layers.SimpleRNN(4, activation="relu")
    assert not layer.can_fuse(training=False)
    assert np.asarray(layer(x)).min() >= 0
