"""Our LSTM / SimpleRNN / GRU against the Keras built-ins with copied weights: outputs, states, gradients.

Backend-agnostic: on TensorFlow every test runs on the fused XLA path, the fused plain-TF path and the cell path;
on the other backends (tests/custom_layers/test_backends.py runs this file under JAX and torch) on the cell path,
the only one there.
"""

import keras
import numpy as np
import pytest

import custom_layers
from tests.custom_layers.helpers import (
    TOLERANCE,
    assert_same,
    build,
    on_tensorflow,
    outputs_and_gradients,
    randomize,
    right_padding_mask,
    sequences,
)

# name: (ours, the built-in, constructor options of both)
VARIANTS = {
    "lstm": (custom_layers.LSTM, keras.layers.LSTM, {}),
    "simple_rnn": (custom_layers.SimpleRNN, keras.layers.SimpleRNN, {}),
    "gru": (custom_layers.GRU, keras.layers.GRU, {"reset_after": True}),
    "gru_reset_before": (custom_layers.GRU, keras.layers.GRU, {"reset_after": False}),
}
# fused: the sequence kernel (XLA-compiled or plain TF ops); cell: the per-step cell inside keras.layers.RNN.
PATHS = {
    "fused_xla": {"fused": True, "jit_compile": True},
    "fused_tf": {"fused": True, "jit_compile": False},
    "cell": {"fused": False},
}
if not on_tensorflow():
    PATHS = {"cell": PATHS["cell"]}


def core_on_other_backends(values, core):
    """All `values` on TensorFlow; on the other backends only `core`, the cases whose cell-path code differs
    (each backend compiles its own loop per test, which makes every case there several times dearer)."""
    return values if on_tensorflow() else [v for v in values if v in core]


@pytest.fixture(params=list(PATHS), ids=list(PATHS))
def path(request):
    return PATHS[request.param]


@pytest.fixture(params=list(VARIANTS), ids=list(VARIANTS))
def variant(request):
    return request.param


def pair(variant, units, path, **options):
    """(ours on `path`, the built-in), with the same options."""
    ours, theirs, variant_options = VARIANTS[variant]
    layer = ours(units, **variant_options, **options, **path)
    if path.get("fused", True) and on_tensorflow():
        assert layer.can_fuse(), "this configuration is meant to take the fused kernel"
    return layer, theirs(units, **variant_options, **options)


OPTIONS = {
    "last": {},
    "sequences": {"return_sequences": True},
    "state": {"return_state": True},
    "sequences_state": {"return_sequences": True, "return_state": True},
    "backwards": {"go_backwards": True, "return_sequences": True, "return_state": True},
    "no_bias": {"use_bias": False, "return_state": True},
}


@pytest.mark.parametrize("options", core_on_other_backends(list(OPTIONS), ["last", "backwards", "no_bias"]))
def test_matches_keras(variant, options, path):
    assert_same(*pair(variant, 6, path, **OPTIONS[options]), sequences())


def test_weights_copied_from_keras_into_ours(variant, path):
    options = {"return_sequences": True, "return_state": True}
    assert_same(*pair(variant, 6, path, **options), sequences(), copy="theirs_to_ours")


def test_initial_state_matches_keras(variant, path):
    ours, theirs = pair(variant, 4, path, return_sequences=True, return_state=True)
    rng = np.random.default_rng(9)
    count = 2 if variant == "lstm" else 1
    initial = [rng.normal(scale=0.5, size=(3, 4)).astype("float32") for _ in range(count)]
    x = sequences()
    ours(x), theirs(x)
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    for a, b in zip(ours(x, initial_state=initial), theirs(x, initial_state=initial)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=TOLERANCE)


@pytest.mark.parametrize(
    "zero_output_for_mask, go_backwards",
    core_on_other_backends(
        [(False, False), (False, True), (True, False), (True, True)], [(False, False), (True, True)]
    ),
)
def test_right_padding_mask_matches_keras(variant, zero_output_for_mask, go_backwards, path):
    x = sequences(batch=4, steps=6)
    mask = right_padding_mask([6, 4, 1, 3], steps=6)
    options = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards,
               "zero_output_for_mask": zero_output_for_mask}  # fmt: skip
    outputs = assert_same(*pair(variant, 5, path, **options), x, mask=mask)
    if zero_output_for_mask and not go_backwards:
        assert np.all(outputs[0][~mask] == 0)


def embedding_model(recurrent):
    return keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(10, 4, mask_zero=True),
                             recurrent, keras.layers.Dense(2)])  # fmt: skip


def test_embedding_mask_zero_matches_keras(variant, path):
    tokens = np.array([[4, 7, 2, 0, 0], [3, 0, 0, 0, 0], [1, 2, 3, 4, 5]], dtype="int32")
    ours, theirs = pair(variant, 5, path)
    # Gradients w.r.t. every weight, the embedding's included (the integer tokens have none).
    assert_same(embedding_model(ours), embedding_model(theirs), tokens)


def test_masking_layer_matches_keras(variant, path):
    x = sequences(batch=3, steps=5)
    x[1, 3:] = 0.0
    x[2, 1:] = 0.0

    def model(recurrent):
        return keras.Sequential([keras.Input((5, 5)), keras.layers.Masking(0.0), recurrent])

    ours, theirs = pair(variant, 4, path, return_sequences=True)
    assert_same(model(ours), model(theirs), x)


def test_stateful_two_calls_then_reset(variant, path):
    x = sequences(batch=2, steps=4)
    ours, theirs = pair(variant, 3, path, stateful=True, return_sequences=True)

    def run(layer):
        return keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(x)))

    run(ours), run(theirs)
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    ours.reset_state(), theirs.reset_state()
    first = [run(ours), run(theirs)]
    second = [run(ours), run(theirs)]
    np.testing.assert_allclose(first[0], first[1], atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(second[0], second[1], atol=TOLERANCE, rtol=0)
    assert np.abs(first[0] - second[0]).max() > 1e-3, "the second call must start from the carried state"
    ours.reset_state(), theirs.reset_state()
    np.testing.assert_allclose(run(ours), first[0], atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(run(theirs), first[1], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("merge_mode", core_on_other_backends(["concat", "sum"], ["concat"]))
def test_bidirectional_matches_keras(variant, merge_mode, path):
    x = sequences()
    mask = right_padding_mask([7, 5, 2], steps=7)
    ours, theirs = pair(variant, 4, path, return_sequences=True)
    assert_same(keras.layers.Bidirectional(ours, merge_mode=merge_mode),
                keras.layers.Bidirectional(theirs, merge_mode=merge_mode), x, mask=mask)  # fmt: skip


def test_two_stacked_layers_match_keras(variant, path):
    x = sequences()
    first, first_keras = pair(variant, 6, path, return_sequences=True)
    second, second_keras = pair(variant, 4, path)

    def stack(*layers):
        return keras.Sequential([keras.Input((7, 5)), *layers])

    assert_same(stack(first, second), stack(first_keras, second_keras), x)


def test_integer_inputs_as_the_built_in_takes_them(variant, path):
    # keras.layers.LSTM(2)(np.array([[[101, 202], [303, 404]]])) works: the cell's matmul promotes the integers.
    x = np.array([[[101, 202], [303, 404]], [[-5, 7], [0, 1]]])
    ours, theirs = pair(variant, 2, path, return_sequences=True)
    ours(x), theirs(x)
    weights = [np.random.default_rng(4).normal(scale=0.01, size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    got, want = (keras.ops.convert_to_numpy(layer(x)) for layer in (ours, theirs))
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


CELLS = {
    "lstm": (custom_layers.LSTMCell, keras.layers.LSTMCell, {}),
    "simple_rnn": (custom_layers.SimpleRNNCell, keras.layers.SimpleRNNCell, {}),
    "gru": (custom_layers.GRUCell, keras.layers.GRUCell, {"reset_after": True}),
    "gru_reset_before": (custom_layers.GRUCell, keras.layers.GRUCell, {"reset_after": False}),
}


@pytest.mark.parametrize("name", list(CELLS))
def test_cells_inside_keras_rnn_and_stacked_cells(name):
    ours, theirs, options = CELLS[name]
    x = sequences()
    assert_same(keras.layers.RNN(ours(6, **options), return_sequences=True, return_state=True),
                keras.layers.RNN(theirs(6, **options), return_sequences=True, return_state=True), x)  # fmt: skip
    assert_same(keras.layers.RNN([ours(6, **options), ours(3, **options)], return_sequences=True, return_state=True),
                keras.layers.RNN([theirs(6, **options), theirs(3, **options)], return_sequences=True,
                                 return_state=True), x)  # fmt: skip


def test_weights_have_the_built_ins_shapes_and_names(variant):
    x = sequences()
    ours, theirs = pair(variant, 6, {}, return_sequences=True)
    ours(x), theirs(x)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    assert [w.path.split("/")[-1] for w in ours.weights] == [w.path.split("/")[-1] for w in theirs.weights]


def test_dropout_fused_and_cell_paths_agree(variant):
    """With the same seed both paths draw the same per-sequence masks, so they compute the same function."""
    if not on_tensorflow():
        pytest.skip("the fused kernel is TensorFlow's")
    layer_class, _, options = VARIANTS[variant]
    x = sequences()
    results = []
    for fused in (True, False):
        layer = layer_class(5, **options, dropout=0.3, seed=7, return_sequences=True, fused=fused)
        layer(x)
        randomize(layer)
        results.append(outputs_and_gradients(layer, x, training=True))
    (out_a, grad_a), (out_b, grad_b) = results
    np.testing.assert_allclose(out_a[0], out_b[0], atol=TOLERANCE, rtol=0)
    for a, b in zip(grad_a, grad_b):
        np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=0)


def test_dropout_applies_only_when_training(variant, path):
    layer_class, _, options = VARIANTS[variant]
    x = keras.ops.convert_to_tensor(sequences())
    layer = layer_class(5, **options, dropout=0.3, recurrent_dropout=0.2, seed=7, return_sequences=True, **path)
    layer(x)
    randomize(layer)
    inference = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(inference, keras.ops.convert_to_numpy(layer(x, training=False)))
    assert np.abs(keras.ops.convert_to_numpy(layer(x, training=True)) - inference).max() > 1e-3


def test_recurrent_dropout_trains(variant):
    layer_class, _, options = VARIANTS[variant]
    model = keras.Sequential([keras.Input((7, 5)), layer_class(4, **options, dropout=0.2, recurrent_dropout=0.2,
                                                                 seed=1), keras.layers.Dense(1)])  # fmt: skip
    model.compile("adam", "mse")
    history = model.fit(sequences(batch=8), np.ones((8, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_fit_in_graph_mode_matches_keras(variant):
    """A few Adam steps inside model.fit (compiled): the weights stay equal to the built-in's."""
    x, y = sequences(batch=8), np.random.default_rng(3).normal(size=(8, 2)).astype("float32")

    def model(recurrent):
        m = keras.Sequential([keras.Input((7, 5)), recurrent, keras.layers.Dense(2)])
        m.compile(keras.optimizers.Adam(0.01), "mse")
        return m

    ours, theirs = (model(layer) for layer in pair(variant, 4, {}))
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    ours.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    theirs.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_matches_keras_in_float32(variant, path, policy):
    """Under a mixed policy the weights stay float32 and the outputs come in the compute dtype, within a few of its
    rounding steps of the built-in's in float32 (eps: float16 2^-10, bfloat16 2^-7); gradients within as many of the
    largest gradient. The reference is float32 because the built-in GRU itself fails under mixed precision on JAX
    (its scan's carried state comes back float32)."""
    ours_class, theirs_class, options = VARIANTS[variant]
    options = {**options, "return_sequences": True, "return_state": True}
    ours, theirs = ours_class(6, **options, **path, dtype=policy), theirs_class(6, **options)
    assert ours.can_fuse() == (path.get("fused", True) and on_tensorflow())  # the fused kernel computes in it too
    x = sequences()
    build(ours, x)
    build(theirs, x)
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    compute = keras.dtype_policies.get(policy).compute_dtype
    assert {w.dtype for w in ours.weights} == {"float32"}
    assert {keras.backend.standardize_dtype(o.dtype) for o in ours(x)} == {compute}
    eps = {"float16": 2.0**-10, "bfloat16": 2.0**-7}[compute]
    (our_out, our_grad), (their_out, their_grad) = outputs_and_gradients(ours, x), outputs_and_gradients(theirs, x)
    for a, b in zip(our_out, their_out, strict=True):
        np.testing.assert_allclose(a.astype("float32"), b, atol=4 * eps, rtol=0)
    largest = max(np.abs(g).max() for g in their_grad)
    for a, b in zip(our_grad, their_grad, strict=True):
        np.testing.assert_allclose(a.astype("float32"), b, atol=4 * eps * largest, rtol=0)
