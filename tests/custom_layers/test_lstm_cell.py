"""LSTMCell against the equations stepped by hand in NumPy, its options, and argument checks."""

import keras
import numpy as np
import pytest

import custom_layers
from tests.custom_layers.helpers import TOLERANCE, randomize, sequences


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def layer_norm(a, gamma):
    return (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-5) * gamma


def numpy_lstm(x, weights, units, peephole=False, layer_norm_=False):
    """The docstring's equations, one timestep at a time."""
    kernel, recurrent_kernel, bias, *extra = weights
    if peephole:
        p_i, p_f, p_o, *extra = extra
    if layer_norm_:
        gamma_x, gamma_h = extra
    h = np.zeros((x.shape[0], units))
    c = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        z_x, z_h = x[:, t] @ kernel, h @ recurrent_kernel
        if layer_norm_:
            z_x, z_h = layer_norm(z_x, gamma_x), layer_norm(z_h, gamma_h)
        z_i, z_f, z_c, z_o = np.split(z_x + z_h + bias, 4, axis=1)
        if peephole:
            z_i, z_f = z_i + p_i * c, z_f + p_f * c
        i, f, g = sigmoid(z_i), sigmoid(z_f), np.tanh(z_c)
        c = f * c + i * g
        if peephole:
            z_o = z_o + p_o * c
        h = sigmoid(z_o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


@pytest.mark.parametrize(
    "options", [{}, {"peephole": True}, {"layer_norm": True}, {"peephole": True, "layer_norm": True}],
    ids=["plain", "peephole", "layer_norm", "both"],
)  # fmt: skip
def test_layer_matches_numpy_equations(options):
    x = sequences(batch=2, steps=5, features=3).astype("float64")
    layer = custom_layers.LSTM(4, return_sequences=True, return_state=True, **options)
    layer(x.astype("float32"))
    randomize(layer)
    outputs, h, c = (np.asarray(t) for t in layer(x.astype("float32")))
    weights = [w.astype("float64") for w in layer.get_weights()]
    peephole, layer_norm_ = options.get("peephole", False), options.get("layer_norm", False)
    expected = numpy_lstm(x, weights, 4, peephole=peephole, layer_norm_=layer_norm_)
    for got, want in zip((outputs, h, c), expected):
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


def test_cell_single_step_matches_numpy():
    cell = custom_layers.LSTMCell(3)
    x = sequences(batch=2, steps=1, features=4)[:, 0]
    h0 = np.full((2, 3), 0.3, "float32")
    c0 = np.full((2, 3), -0.2, "float32")
    cell(x, [h0, c0])
    randomize(cell)
    h, (h_state, c) = cell(x, [h0, c0])
    kernel, recurrent_kernel, bias = cell.get_weights()
    z_i, z_f, z_c, z_o = np.split(x @ kernel + h0 @ recurrent_kernel + bias, 4, axis=1)
    c_want = sigmoid(z_f) * c0 + sigmoid(z_i) * np.tanh(z_c)
    np.testing.assert_allclose(c, c_want, atol=TOLERANCE)
    np.testing.assert_allclose(h, sigmoid(z_o) * np.tanh(c_want), atol=TOLERANCE)
    np.testing.assert_array_equal(h, h_state)


def test_peephole_and_layer_norm_weights_and_training():
    layer = custom_layers.LSTM(4, peephole=True, layer_norm=True)
    model = keras.Sequential([keras.Input((5, 3)), layer, keras.layers.Dense(1)])
    names = [w.path.split("/")[-1] for w in layer.weights]
    assert names == ["kernel", "recurrent_kernel", "bias", "input_gate_peephole_weights",
                     "forget_gate_peephole_weights", "output_gate_peephole_weights", "input_gamma",
                     "recurrent_gamma"]  # fmt: skip
    model.compile("adam", "mse")
    before = [w.copy() for w in layer.get_weights()]
    model.fit(sequences(batch=8, steps=5, features=3), np.ones((8, 1)), epochs=2, verbose=0)
    assert all(np.abs(a - b).max() > 0 for a, b in zip(before, layer.get_weights()))


def test_unit_forget_bias_initialises_forget_gate_to_one():
    layer = custom_layers.LSTM(3)
    layer(sequences(features=2))
    np.testing.assert_array_equal(layer.get_weights()[2], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("cls", [custom_layers.LSTMCell, custom_layers.LSTM, custom_layers.SimpleRNNCell,
                                 custom_layers.SimpleRNN])  # fmt: skip
@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"units": 0}, "units=0"),
        ({"units": -3}, "units=-3"),
        ({"units": 2.5}, "units=2.5"),
        ({"units": 4, "activation": "no_such_activation"}, "no_such_activation"),
        ({"units": 4, "dropout": 1.0}, "dropout=1.0"),
        ({"units": 4, "dropout": -0.1}, "dropout=-0.1"),
        ({"units": 4, "recurrent_dropout": 1.5}, "recurrent_dropout=1.5"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(cls, kwargs, named):
    with pytest.raises(ValueError, match=named):
        cls(**kwargs)


def test_unknown_recurrent_activation_is_named():
    with pytest.raises(ValueError, match="recurrent_activation='bogus'"):
        custom_layers.LSTM(4, recurrent_activation="bogus")


def test_use_cudnn_and_implementation_are_accepted_as_by_the_built_in():
    for value in ("auto", False, True):
        assert custom_layers.LSTM(2, use_cudnn=value).use_cudnn == value
    with pytest.raises(ValueError, match="use_cudnn='maybe'"):
        custom_layers.LSTM(2, use_cudnn="maybe")
    with pytest.raises(ValueError, match="no cuDNN kernel"):
        custom_layers.LSTM(2, use_cudnn=True)(sequences())
    assert "use_cudnn" not in custom_layers.LSTM(2).get_config()
    x = sequences()
    reference = custom_layers.LSTM(3)
    reference(x)
    for implementation in (0, 1, 2):
        layer = custom_layers.LSTM(3, implementation=implementation)
        layer(x)
        layer.set_weights(reference.get_weights())
        np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(reference(x)))
    with pytest.raises(ValueError, match="implementation=5"):
        custom_layers.LSTMCell(2, implementation=5)
