"""The sequence kernels of custom_layers.fused: batch splitting and the feature-major layouts change nothing."""

import functools
from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers import fused
from custom_layers.fused import layout
from tests.custom_layers.helpers import TOLERANCE, assert_same, keras_counterpart, right_padding_mask, sequences

UNITS, FEATURES, STEPS = 6, 5, 7


class Kernel(NamedTuple):
    run: Callable
    gates: int
    states: int
    bias_rows: tuple  # leading dimensions of the bias
    keras_layer: Callable


KERNELS = {
    "lstm": Kernel(fused.lstm, 4, 2, (), keras.layers.LSTM),
    "simple_rnn": Kernel(fused.simple_rnn, 1, 1, (), keras.layers.SimpleRNN),
    "gru": Kernel(functools.partial(fused.gru, reset_after=True), 3, 1, (2,),
                  functools.partial(keras.layers.GRU, reset_after=True)),
    "gru_reset_before": Kernel(functools.partial(fused.gru, reset_after=False), 3, 1, (),
                               functools.partial(keras.layers.GRU, reset_after=False)),
}  # fmt: skip
ALL_KERNELS = pytest.mark.parametrize("kernel_name", list(KERNELS))


def weights(kernel_name, seed=3):
    gates, bias_rows = KERNELS[kernel_name].gates, KERNELS[kernel_name].bias_rows
    rng = np.random.default_rng(seed)
    shapes = [(FEATURES, gates * UNITS), (UNITS, gates * UNITS), (*bias_rows, gates * UNITS)]
    return [tf.constant(rng.normal(scale=0.4, size=shape).astype("float32")) for shape in shapes]


def run(kernel_name, x, states, parts, mask=None, signature=None, **options):
    """Outputs, final states and the gradients of a fixed projection of them w.r.t. x, states and weights."""
    kernel_fn = KERNELS[kernel_name].run
    kernel, recurrent_kernel, bias = weights(kernel_name)

    def forward_backward(x, *states):
        with tf.GradientTape() as tape:
            tape.watch([x, *states, kernel, recurrent_kernel, bias])
            results = kernel_fn(x, *states, kernel, recurrent_kernel, bias, mask=mask, batch_parts=parts, **options)
            loss = sum(tf.reduce_sum(r * tf.cos(r)) for r in results)
        return results, tape.gradient(loss, [x, *states, kernel, recurrent_kernel, bias])

    if signature is not None:
        forward_backward = tf.function(forward_backward, input_signature=signature)
    results, gradients = forward_backward(tf.constant(x), *[tf.constant(s) for s in states])
    return [np.asarray(r) for r in results], [np.asarray(g) for g in gradients]


def initial_states(kernel_name, batch, seed=5):
    rng = np.random.default_rng(seed)
    count = KERNELS[kernel_name].states
    return [rng.normal(scale=0.5, size=(batch, UNITS)).astype("float32") for _ in range(count)]


@ALL_KERNELS
@pytest.mark.parametrize("batch", [2, 5, 17])
@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
def test_batch_split_matches_whole_batch(kernel_name, batch, masked):
    x = sequences(batch=batch, steps=STEPS, features=FEATURES)
    mask = None
    if masked:
        lengths = np.random.default_rng(0).integers(1, STEPS + 1, size=batch)
        mask = tf.constant(right_padding_mask(lengths, STEPS))
    states = initial_states(kernel_name, batch)
    whole = run(kernel_name, x, states, parts=1, mask=mask)
    split = run(kernel_name, x, states, parts=2, mask=mask)
    for ours, reference in zip([*split[0], *split[1]], [*whole[0], *whole[1]]):
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)


@ALL_KERNELS
def test_batch_of_one_with_unknown_batch_size_splits_into_an_empty_slice(kernel_name):
    # With the batch size unknown when traced, the split happens at run time; a batch of one leaves one slice
    # empty, which must still work.
    x = sequences(batch=1, steps=STEPS, features=FEATURES)
    states = initial_states(kernel_name, 1)
    signature = [tf.TensorSpec((None, STEPS, FEATURES)), *[tf.TensorSpec((None, UNITS))] * len(states)]
    whole = run(kernel_name, x, states, parts=1)
    split = run(kernel_name, x, states, parts=2, signature=signature)
    for ours, reference in zip([*split[0], *split[1]], [*whole[0], *whole[1]]):
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)


def test_batch_parts_rule(monkeypatch):
    monkeypatch.setattr(layout.os, "cpu_count", lambda: 2)

    def parts(batch, units, gates, jit_compile=True):
        x = tf.zeros([batch, 3, 4]) if batch is not None else tf.TensorSpec([None, 3, 4])
        return layout.batch_parts(x, tf.zeros([units, gates * units]), jit_compile)

    assert parts(64, 256, 4) == 2  # 2**24 multiply-adds per step: split
    assert parts(64, 512, 4) == 2  # 2**26
    assert parts(64, 1024, 4) == 2  # 2**28
    assert parts(128, 1024, 4) == 1  # 2**29: one sequence keeps both cores busy
    assert parts(None, 256, 4) == 2  # unknown batch: judged at batch 64
    assert parts(8, 64, 4) == 1  # slices would be too small
    assert parts(64, 256, 4, jit_compile=False) == 1  # only the XLA kernels are split
    monkeypatch.setattr(layout.os, "cpu_count", lambda: 1)
    assert parts(64, 256, 4) == 1


@pytest.mark.parametrize("layer_class", [custom_layers.LSTM, custom_layers.SimpleRNN], ids=["lstm", "simple_rnn"])
def test_layer_with_a_split_batch_matches_keras(layer_class):
    # Batch 20 is large enough for the layer to split it (see test_batch_parts_rule); masking included.
    batch = 20
    x = sequences(batch=batch, steps=STEPS, features=FEATURES)
    lengths = np.random.default_rng(1).integers(1, STEPS + 1, size=batch)
    mask = right_padding_mask(lengths, STEPS)
    assert layout.batch_parts(tf.constant(x), tf.zeros([UNITS, UNITS]), True) == 2
    options = {"return_sequences": True, "return_state": True}
    assert_same(
        layer_class(UNITS, **options), keras_counterpart(layer_class)(UNITS, **options), x, mask=tf.constant(mask)
    )


def infer(x, states, **options):
    """Inference outputs and final states, then the gradients (which rerun the training forward pass)."""
    results, gradients = run("lstm", x, states, options.pop("batch_parts", 1), training=False, **options)
    return [*results, *gradients]


@pytest.mark.parametrize("masked", [None, "repeat", "zeros"])
@pytest.mark.parametrize("parts", [1, 2])
def test_feature_major_inference_matches_batch_major(masked, parts):
    batch = 5
    x = sequences(batch=batch, steps=STEPS, features=FEATURES)
    states = initial_states("lstm", batch)
    mask = None
    if masked:
        lengths = np.random.default_rng(2).integers(1, STEPS + 1, size=batch)
        mask = tf.constant(right_padding_mask(lengths, STEPS))
    options = {"mask": mask, "zero_output_for_mask": masked == "zeros", "batch_parts": parts}
    feature_major = infer(x, states, feature_major=True, **options)
    batch_major = infer(x, states, feature_major=False, **options)
    for ours, reference in zip(feature_major, batch_major):
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)
    if masked == "zeros":
        assert np.all(feature_major[0][~np.asarray(mask)] == 0)


@ALL_KERNELS
@pytest.mark.parametrize("masked", [None, "repeat", "zeros"])
@pytest.mark.parametrize("parts", [1, 2])
def test_training_with_weights_on_the_left_matches_batch_major(kernel_name, masked, parts):
    # The training kernels compute the per-step product as (U^T h^T)^T: same outputs and gradients.
    batch = 5
    x = sequences(batch=batch, steps=STEPS, features=FEATURES)
    states = initial_states(kernel_name, batch)
    mask = None
    if masked:
        lengths = np.random.default_rng(2).integers(1, STEPS + 1, size=batch)
        mask = tf.constant(right_padding_mask(lengths, STEPS))
    options = {"mask": mask, "zero_output_for_mask": masked == "zeros"}
    left = run(kernel_name, x, states, parts, feature_major=True, **options)
    right = run(kernel_name, x, states, parts, feature_major=False, **options)
    for ours, reference in zip([*left[0], *left[1]], [*right[0], *right[1]]):
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)


def test_weights_left_rule():
    for loop in ("inference", "forward", "backward"):
        assert layout.weights_left("lstm", tf.zeros([512, 4 * 512]), loop)  # 4 MiB of recurrent weights
        assert layout.weights_left("lstm", tf.zeros([1024, 1024]), loop)
        assert not layout.weights_left("lstm", tf.zeros([256, 256]), loop)
    # From 1 MiB on for LSTM inference and the backward loop, 4 MiB for the training forward loop.
    for loop in ("inference", "backward"):
        assert layout.weights_left("lstm", tf.zeros([256, 4 * 256]), loop)
        assert layout.weights_left("lstm", tf.zeros([512, 512]), loop)
    assert not layout.weights_left("lstm", tf.zeros([256, 4 * 256]), "forward")
    assert not layout.weights_left("lstm", tf.zeros([512, 512]), "forward")
    _, loops = layout.plan("lstm", tf.zeros([4, 3, 2]), tf.zeros([512, 512]), True, None, None)
    assert loops == {"inference": True, "forward": False, "backward": True}
    assert layout.plan("lstm", tf.zeros([4, 3, 2]), tf.zeros([512, 512]), False, None, None)[1] == {
        "inference": False, "forward": False, "backward": False}  # fmt: skip
    assert layout.plan("lstm", tf.zeros([4, 3, 2]), tf.zeros([8, 8]), True, None, True)[1] == {
        "inference": True, "forward": True, "backward": True}  # fmt: skip
    # GRU: its recurrent kernel (units, 3 units) reaches the inference and backward thresholds at 512 units, the
    # training forward one at 1024.
    assert layout.weights_left("gru", tf.zeros([512, 3 * 512]), "backward")
    assert layout.weights_left("gru", tf.zeros([512, 3 * 512]), "inference")
    assert not layout.weights_left("gru", tf.zeros([512, 3 * 512]), "forward")
    assert layout.weights_left("gru", tf.zeros([1024, 3 * 1024]), "forward")
    for loop in layout.LOOPS:
        assert not layout.weights_left("gru", tf.zeros([256, 3 * 256]), loop)
    # The feature-major layouts are XLA's; plain TensorFlow ignores the request.
    x = sequences(batch=2, steps=STEPS, features=FEATURES)
    states = initial_states("lstm", 2)
    for ours, reference in zip(infer(x, states, feature_major=True, jit_compile=False),
                               infer(x, states, feature_major=False, jit_compile=False)):  # fmt: skip
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)
    left, right = (run("lstm", x, states, 1, feature_major=f, jit_compile=False) for f in (True, False))
    for ours, reference in zip([*left[0], *left[1]], [*right[0], *right[1]]):
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)


def test_feature_major_inference_with_an_empty_batch_slice():
    # A batch of one, size unknown when traced, split in two: one slice has no rows.
    kernel, recurrent_kernel, bias = weights("lstm")
    x = sequences(batch=1, steps=STEPS, features=FEATURES)
    states = initial_states("lstm", 1)

    @tf.function(input_signature=[tf.TensorSpec((None, STEPS, FEATURES)), *[tf.TensorSpec((None, UNITS))] * 2])
    def infer_split(x, h0, c0):
        return fused.lstm(x, h0, c0, kernel, recurrent_kernel, bias, training=False, batch_parts=2,
                          feature_major=True)  # fmt: skip

    whole = fused.lstm(x, *states, kernel, recurrent_kernel, bias, training=False, batch_parts=1, feature_major=False)
    for ours, reference in zip(infer_split(x, *states), whole):
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)


@ALL_KERNELS
@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "tf"])
def test_gradient_through_the_final_states_only(kernel_name, jit_compile):
    # Only the final states reach the loss: the gradient flows in through dh_T (and dc_T) alone.
    kernel_fn = KERNELS[kernel_name].run
    weights_ = weights(kernel_name)
    x = tf.constant(sequences(batch=3, steps=STEPS, features=FEATURES))
    states = [tf.constant(s) for s in initial_states(kernel_name, 3)]
    reference_layer = KERNELS[kernel_name].keras_layer(UNITS, return_state=True)
    reference_layer(x, initial_state=states)
    reference_layer.set_weights([np.asarray(w) for w in weights_])

    def final_state_gradients(run):
        with tf.GradientTape() as tape:
            tape.watch(x)
            final_states = run()
            loss = sum(tf.reduce_sum(s * tf.cos(s)) for s in final_states)
        return tape.gradient(loss, x)

    ours = final_state_gradients(lambda: kernel_fn(x, *states, *weights_, jit_compile=jit_compile)[1:])
    reference = final_state_gradients(lambda: reference_layer(x, initial_state=states)[1:])
    np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)


def test_layer_inference_with_feature_major_states_matches_keras():
    # 256 units reach the feature-major threshold; Bidirectional covers go_backwards, the mask covers padding.
    units, batch, steps, features = 256, 4, 5, 8
    rng = np.random.default_rng(4)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    mask = tf.constant(right_padding_mask([5, 3, 1, 4], steps))
    options = {"return_sequences": True, "return_state": True}
    ours = keras.layers.Bidirectional(custom_layers.LSTM(units, **options))
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(units, **options))
    ours(x), theirs(x)
    assert layout.weights_left("lstm", ours.forward_layer.cell.recurrent_kernel, "inference")
    weights_ = [rng.normal(scale=0.05, size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights_)
    theirs.set_weights(weights_)
    for a, b in zip(ours(x, mask=mask, training=False), theirs(x, mask=mask, training=False)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOLERANCE, rtol=TOLERANCE)


LSTM_LAYERS = (custom_layers.LSTM, keras.layers.LSTM)
SIMPLE_RNN_LAYERS = (custom_layers.SimpleRNN, keras.layers.SimpleRNN)
GRU_LAYERS = (custom_layers.GRU, keras.layers.GRU)
GRU_RESET_BEFORE_LAYERS = tuple(functools.partial(cls, reset_after=False) for cls in GRU_LAYERS)


@pytest.mark.parametrize(
    "make_layers, units, forward_left",
    [
        (LSTM_LAYERS, 512, True),
        (SIMPLE_RNN_LAYERS, 1024, True),
        (SIMPLE_RNN_LAYERS, 512, False),
        (GRU_LAYERS, 1024, True),
        (GRU_RESET_BEFORE_LAYERS, 1024, True),
        (GRU_LAYERS, 512, False),
    ],
    ids=["lstm", "simple_rnn", "simple_rnn_backward_only", "gru", "gru_reset_before", "gru_backward_only"],
)
def test_layer_training_with_weights_on_the_left_matches_keras(make_layers, units, forward_left):
    # LSTM(512) and SimpleRNN(1024) reach both loops' thresholds: both run the product as U^T h^T. SimpleRNN(512)
    # reaches the backward loop's only. Bidirectional covers go_backwards, the mask covers padding; outputs and
    # all gradients against Keras.
    batch, steps, features = 4, 5, 8
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(batch, steps, features)).astype("float32"))
    mask = tf.constant(right_padding_mask([5, 3, 1, 4], steps))
    ours, theirs = (keras.layers.Bidirectional(make(units, return_sequences=True)) for make in make_layers)
    ours(x), theirs(x)
    recurrent_kernel = ours.forward_layer.cell.recurrent_kernel
    cell = {LSTM_LAYERS: "lstm", SIMPLE_RNN_LAYERS: "simple_rnn"}.get(make_layers, "gru")
    assert layout.weights_left(cell, recurrent_kernel, "backward")
    assert layout.weights_left(cell, recurrent_kernel, "forward") == forward_left
    weights_ = [rng.normal(scale=0.05, size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights_)
    theirs.set_weights(weights_)
    # Scaled so that the gradients are O(1), like the outputs, for one absolute tolerance across them.
    projection = tf.constant(rng.normal(scale=0.02, size=(batch, steps, 2 * units)).astype("float32"))

    def outputs_and_gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, mask=mask, training=True)
            loss = tf.reduce_sum(outputs * projection)
        return [outputs, *tape.gradient(loss, [x, *layer.trainable_weights])]

    for a, b in zip(outputs_and_gradients(ours), outputs_and_gradients(theirs), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("kernel_name", ["gru", "gru_reset_before"])
@pytest.mark.parametrize("masked", [None, "repeat", "zeros"])
@pytest.mark.parametrize("parts", [1, 2])
def test_gru_feature_major_inference_matches_batch_major(kernel_name, masked, parts):
    # From layout.WEIGHTS_LEFT_FROM["gru"]["inference"] on, GRU inference keeps its state (units, batch); the
    # gradients rerun the batch-major training forward pass.
    batch = 5
    x = sequences(batch=batch, steps=STEPS, features=FEATURES)
    states = initial_states(kernel_name, batch)
    mask = None
    if masked:
        mask = tf.constant(right_padding_mask(np.random.default_rng(2).integers(1, STEPS + 1, size=batch), STEPS))
    options = {"mask": mask, "zero_output_for_mask": masked == "zeros", "training": False}
    left = run(kernel_name, x, states, parts, feature_major=True, **options)
    right = run(kernel_name, x, states, 1, feature_major=False, **options)
    for ours, reference in zip([*left[0], *left[1]], [*right[0], *right[1]]):
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)
    if masked == "zeros":
        assert np.all(left[0][0][~np.asarray(mask)] == 0)


@pytest.mark.parametrize("kernel_name", ["gru", "gru_reset_before"])
def test_gru_feature_major_inference_with_an_empty_batch_slice(kernel_name):
    # A batch of one, size unknown when traced, split in two: one slice has no rows.
    x = sequences(batch=1, steps=STEPS, features=FEATURES)
    states = initial_states(kernel_name, 1)
    signature = [tf.TensorSpec((None, STEPS, FEATURES)), tf.TensorSpec((None, UNITS))]
    split = run(kernel_name, x, states, 2, signature=signature, training=False, feature_major=True)
    whole = run(kernel_name, x, states, 1, training=False, feature_major=False)
    for ours, reference in zip([*split[0], *split[1]], [*whole[0], *whole[1]]):
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_layer_gru_inference_with_feature_major_state_matches_keras(reset_after):
    # The smallest GRU that reaches the feature-major threshold; Bidirectional covers go_backwards, the mask padding.
    units = int(np.ceil(np.sqrt(layout.WEIGHTS_LEFT_FROM["gru"]["inference"] / 3)))
    batch, steps, features = 4, 5, 8
    rng = np.random.default_rng(4)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    mask = tf.constant(right_padding_mask([5, 3, 1, 4], steps))
    options = {"return_sequences": True, "return_state": True, "reset_after": reset_after}
    ours = keras.layers.Bidirectional(custom_layers.GRU(units, **options))
    theirs = keras.layers.Bidirectional(keras.layers.GRU(units, **options))
    ours(x), theirs(x)
    assert layout.weights_left("gru", ours.forward_layer.cell.recurrent_kernel, "inference")
    weights_ = [rng.normal(scale=0.05, size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights_)
    theirs.set_weights(weights_)
    for a, b in zip(ours(x, mask=mask, training=False), theirs(x, mask=mask, training=False), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOLERANCE, rtol=TOLERANCE)
