"""GRUCell / GRU against the docstring's equations stepped by hand in NumPy, and argument checks."""

import keras
import numpy as np
import pytest

import custom_layers
from tests.custom_layers.helpers import TOLERANCE, on_tensorflow, randomize, right_padding_mask, sequences


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_gru_step(x_t, h, weights, reset_after):
    """One step of the docstring's equations (gate order z, r, h)."""
    kernel, recurrent_kernel, bias = weights
    units = h.shape[1]
    b_x, b_h = (bias[0], bias[1]) if reset_after else (bias, np.zeros_like(bias))
    x_z, x_r, x_h = np.split(x_t @ kernel + b_x, 3, axis=1)
    u_z, u_r, u_h = np.split(h @ recurrent_kernel + b_h, 3, axis=1)
    z, r = sigmoid(x_z + u_z), sigmoid(x_r + u_r)
    if reset_after:
        g = np.tanh(x_h + r * u_h)
    else:
        g = np.tanh(x_h + (r * h) @ recurrent_kernel[:, 2 * units :])
    return z * h + (1 - z) * g


def numpy_gru(x, weights, units, reset_after, mask=None, h0=None):
    h = np.zeros((x.shape[0], units)) if h0 is None else h0
    outputs = []
    for t in range(x.shape[1]):
        h_new = numpy_gru_step(x[:, t], h, weights, reset_after)
        h = h_new if mask is None else np.where(mask[:, t : t + 1], h_new, h)
        outputs.append(h)
    return np.stack(outputs, axis=1), h


PATHS = {"fused_xla": {}, "fused_tf": {"jit_compile": False}, "cell": {"fused": False}}
if not on_tensorflow():
    PATHS = {"cell": PATHS["cell"]}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_layer_matches_numpy_equations(reset_after, path):
    x = sequences(batch=3, steps=6, features=4).astype("float64")
    mask = right_padding_mask([6, 2, 4], steps=6)
    h0 = np.random.default_rng(5).normal(scale=0.5, size=(3, 5))
    layer = custom_layers.GRU(5, reset_after=reset_after, return_sequences=True, return_state=True, **PATHS[path])
    layer(x.astype("float32"))
    randomize(layer)
    outputs, h = (keras.ops.convert_to_numpy(t) for t in layer(x.astype("float32"), mask=mask,
                                                               initial_state=[h0.astype("float32")]))  # fmt: skip
    weights = [w.astype("float64") for w in layer.get_weights()]
    want_outputs, want_h = numpy_gru(x, weights, 5, reset_after, mask=mask, h0=h0)
    np.testing.assert_allclose(outputs, want_outputs, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(h, want_h, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_cell_single_step_matches_numpy(reset_after):
    cell = custom_layers.GRUCell(3, reset_after=reset_after)
    x = sequences(batch=2, steps=1, features=4)[:, 0]
    h0 = np.full((2, 3), 0.3, "float32")
    cell(x, [h0])
    randomize(cell)
    h, (state,) = cell(x, [h0])
    want = numpy_gru_step(x.astype("float64"), h0.astype("float64"), cell.get_weights(), reset_after)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h), want, atol=TOLERANCE)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(h), keras.ops.convert_to_numpy(state))
    # A bare tensor as the state, as keras.layers.GRUCell takes it, comes back bare.
    h_bare, state_bare = cell(x, h0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(h_bare), keras.ops.convert_to_numpy(state_bare))


@pytest.mark.parametrize("reset_after, bias_shape", [(True, (2, 9)), (False, (9,))])
def test_weights_shapes_names_and_config(reset_after, bias_shape):
    layer = custom_layers.GRU(3, reset_after=reset_after, dropout=0.1, recurrent_dropout=0.2, seed=4)
    layer(sequences(features=2))
    assert [(w.path.split("/")[-1], tuple(w.shape)) for w in layer.weights] == [
        ("kernel", (2, 9)), ("recurrent_kernel", (3, 9)), ("bias", bias_shape)]  # fmt: skip
    config = layer.get_config()
    assert (config["reset_after"], config["dropout"], config["recurrent_dropout"], config["seed"]) == (
        reset_after, 0.1, 0.2, 4)  # fmt: skip
    clone = custom_layers.GRU.from_config(config)
    assert clone.get_config() == config
    no_bias = custom_layers.GRU(3, use_bias=False, reset_after=reset_after)
    no_bias(sequences(features=2))
    assert [w.path.split("/")[-1] for w in no_bias.weights] == ["kernel", "recurrent_kernel"]


@pytest.mark.parametrize("cls", [custom_layers.GRUCell, custom_layers.GRU])
@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"units": 0}, "units=0"),
        ({"units": 2.5}, "units=2.5"),
        ({"units": 4, "activation": "no_such_activation"}, "no_such_activation"),
        ({"units": 4, "recurrent_activation": "bogus"}, "recurrent_activation='bogus'"),
        ({"units": 4, "dropout": 1.0}, "dropout=1.0"),
        ({"units": 4, "recurrent_dropout": -0.5}, "recurrent_dropout=-0.5"),
        ({"units": 4, "implementation": 3}, "implementation=3"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(cls, kwargs, named):
    with pytest.raises(ValueError, match=named):
        cls(**kwargs)


def test_use_cudnn_is_accepted_and_true_is_refused_at_call():
    for value in ("auto", False, True):
        assert custom_layers.GRU(2, use_cudnn=value).use_cudnn == value
    with pytest.raises(ValueError, match="use_cudnn='maybe'"):
        custom_layers.GRU(2, use_cudnn="maybe")
    with pytest.raises(ValueError, match="no cuDNN kernel"):
        custom_layers.GRU(2, use_cudnn=True)(sequences())
    assert "use_cudnn" not in custom_layers.GRU(2).get_config()
    assert not hasattr(custom_layers.SimpleRNN(2), "use_cudnn")  # as keras.layers.SimpleRNN
