"""The per-step API (`project_inputs`, `step`), `can_fuse`, `scan` and the `LAYERS` registry."""

import inspect

import keras
import numpy as np
import pytest

import custom_layers
from tests.custom_layers.helpers import TOLERANCE, on_tensorflow, randomize, right_padding_mask, sequences

# (layer class, options): each cell variant whose step has its own arithmetic.
VARIANTS = {
    "lstm": (custom_layers.LSTM, {}),
    "lstm_peephole_layer_norm": (custom_layers.LSTM, {"peephole": True, "layer_norm": True}),
    "simple_rnn": (custom_layers.SimpleRNN, {}),
    "gru": (custom_layers.GRU, {"reset_after": True}),
    "gru_reset_before": (custom_layers.GRU, {"reset_after": False}),
}


def as_numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


FUSED_VARIANTS = ["lstm", "simple_rnn", "gru", "gru_reset_before"]


def built_layer(name, units=4, features=3, **options):
    layer_class, variant_options = VARIANTS[name]
    layer = layer_class(units, **variant_options, **options)
    layer(sequences(batch=2, steps=3, features=features))
    randomize(layer)
    return layer


def random_states(cell, batch, seed=2):
    rng = np.random.default_rng(seed)
    sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
    return [keras.ops.convert_to_tensor(rng.normal(scale=0.5, size=(batch, size)).astype("float32")) for size in sizes]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_call_is_step_of_projected_inputs(name):
    cell = built_layer(name).cell
    x = keras.ops.convert_to_tensor(sequences(batch=2, steps=1, features=3)[:, 0])
    states = random_states(cell, 2)
    h_call, states_call = cell(x, states)
    h_step, states_step = cell.step(cell.project_inputs(x), states)
    np.testing.assert_array_equal(as_numpy(h_call), as_numpy(h_step))
    assert isinstance(states_step, list) and len(states_step) == len(states)
    for a, b in zip(states_call, states_step):
        np.testing.assert_array_equal(as_numpy(a), as_numpy(b))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_project_inputs_takes_any_leading_dimensions(name):
    cell = built_layer(name).cell
    x = sequences(batch=2, steps=5, features=3)
    whole = as_numpy(cell.project_inputs(x))
    assert whole.shape[:2] == (2, 5)
    for t in range(5):
        np.testing.assert_allclose(whole[:, t], as_numpy(cell.project_inputs(x[:, t])), atol=1e-6, rtol=0)
    # An embedding table, as the export precomputes it: each row is the projection of that row.
    table = np.random.default_rng(3).normal(size=(11, 3)).astype("float32")
    projected = as_numpy(cell.project_inputs(table))
    np.testing.assert_allclose(projected[[4, 7]], as_numpy(cell.project_inputs(table[[4, 7]])), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_stepping_the_cell_reproduces_the_layer(name):
    layer = built_layer(name, return_sequences=True, return_state=True)
    x = sequences(batch=2, steps=5, features=3)
    outputs, *final = layer(x)
    cell, states = layer.cell, layer.get_initial_state(2)
    projected = cell.project_inputs(x)
    for t in range(5):
        h, states = cell.step(projected[:, t], states)
        np.testing.assert_allclose(as_numpy(h), as_numpy(outputs)[:, t], atol=TOLERANCE, rtol=0)
    for a, b in zip(states, final):
        np.testing.assert_allclose(as_numpy(a), as_numpy(b), atol=TOLERANCE, rtol=0)


SCAN_PATHS = {"fused_xla": {"fused": True}, "fused_tf": {"fused": True, "jit_compile": False}, "cell": {"fused": False}}
if not on_tensorflow():
    SCAN_PATHS = {"cell": SCAN_PATHS["cell"]}


@pytest.mark.parametrize("path", list(SCAN_PATHS))
@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
def test_scan_matches_the_layer_with_sequences_and_states(name, path, go_backwards):
    options = {**SCAN_PATHS[path], "go_backwards": go_backwards}
    layer = built_layer(name, **options)  # return_sequences and return_state False: scan ignores them
    reference = VARIANTS[name][0](4, **VARIANTS[name][1], **options, return_sequences=True, return_state=True)
    x = sequences(batch=4, steps=6, features=3)
    reference(x)
    reference.set_weights(layer.get_weights())
    assert layer.can_fuse() == (path != "cell" and name in FUSED_VARIANTS)
    mask = right_padding_mask([6, 4, 1, 3], steps=6)
    initial = random_states(layer.cell, 4)
    for kwargs in ({}, {"mask": mask}, {"initial_state": initial, "mask": mask}):
        outputs, states = layer.scan(x, **kwargs)
        expected_outputs, *expected_states = reference(x, **kwargs)
        assert isinstance(states, list) and len(states) == len(expected_states)
        np.testing.assert_allclose(as_numpy(outputs), as_numpy(expected_outputs), atol=TOLERANCE, rtol=0)
        for a, b in zip(states, expected_states):
            np.testing.assert_allclose(as_numpy(a), as_numpy(b), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", ["lstm", "simple_rnn", "gru"])
def test_scan_leaves_a_stateful_layers_states_alone(name):
    layer = built_layer(name, stateful=True)
    x = sequences(batch=2, steps=3, features=3)
    layer.reset_state()
    layer(x)
    kept = [as_numpy(s) for s in layer.states]
    outputs, states = layer.scan(x)
    for a, b in zip(kept, layer.states):
        np.testing.assert_array_equal(a, as_numpy(b))
    # scan starts from zeros, not from the stored states: the same as the stateful layer's first call after a reset.
    layer.reset_state()
    np.testing.assert_allclose(as_numpy(outputs)[:, -1], as_numpy(layer(x)), atol=TOLERANCE, rtol=0)


def test_scan_builds_an_unbuilt_layer_and_applies_dropout_only_when_training():
    layer = custom_layers.LSTM(4, dropout=0.5, seed=3)
    x = sequences(batch=2, steps=4, features=3)
    inference, _ = layer.scan(x)
    assert layer.cell.built
    again, _ = layer.scan(x)
    np.testing.assert_array_equal(as_numpy(inference), as_numpy(again))
    dropped, _ = layer.scan(x, training=True)
    assert np.abs(as_numpy(dropped) - as_numpy(inference)).max() > 1e-3


def test_can_fuse_follows_the_configuration():
    if not on_tensorflow():
        assert not any(layer_class(4).can_fuse() for layer_class in custom_layers.LAYERS.values())
        return
    assert custom_layers.LSTM(4).can_fuse()
    assert custom_layers.LSTM(4, recurrent_dropout=0.2).can_fuse(training=False)
    assert not custom_layers.LSTM(4, recurrent_dropout=0.2).can_fuse(training=True)
    assert not custom_layers.LSTM(4, peephole=True).can_fuse()
    assert not custom_layers.LSTM(4, unroll=True).can_fuse()
    assert not custom_layers.LSTM(4, fused=False).can_fuse()
    assert not custom_layers.SimpleRNN(4, activation="relu").can_fuse()
    assert custom_layers.GRU(4, reset_after=False).can_fuse()
    assert not custom_layers.GRU(4, recurrent_activation="hard_sigmoid").can_fuse()
    assert not custom_layers.GRU(4, recurrent_dropout=0.1).can_fuse(training=True)


def test_layers_registry():
    assert custom_layers.LAYERS["lstm"] is custom_layers.LSTM
    assert custom_layers.LAYERS["simple_rnn"] is custom_layers.SimpleRNN
    assert custom_layers.LAYERS["gru"] is custom_layers.GRU
    with pytest.raises(TypeError):
        custom_layers.LAYERS["other"] = custom_layers.LSTM  # read-only
    for layer_class in custom_layers.LAYERS.values():
        parameters = inspect.signature(layer_class).parameters
        assert {"units", "dropout", "recurrent_dropout", "fused", "jit_compile"} <= set(parameters)
        layer = layer_class(3, return_sequences=True)
        assert isinstance(layer, keras.layers.RNN) and callable(layer.scan) and callable(layer.can_fuse)
        assert callable(layer.cell.step) and callable(layer.cell.project_inputs)


def test_runs_on_the_backend_asked_for():
    # tests/custom_layers/test_backends.py runs this file with KERAS_BACKEND set: make sure Keras obeyed.
    import os

    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", keras.backend.backend())


@pytest.mark.parametrize("name", list(VARIANTS))
def test_prompt_then_steps_as_the_export_generates(name):
    """What an in-graph generation loop does: scan the prompt through two stacked layers, then feed tokens one at a
    time, the first layer's input projection a lookup in project_inputs(embedding table). It must continue exactly
    as the layers run over the whole sequence."""
    layer_class, options = VARIANTS[name]
    embedding = keras.layers.Embedding(12, 3)
    first = layer_class(4, **options, return_sequences=True, jit_compile=False)
    second = layer_class(5, **options, return_sequences=True, jit_compile=False)
    tokens = np.array([[3, 7, 1, 4, 9, 2, 5], [6, 2, 8, 8, 1, 3, 11]], dtype="int32")
    second(first(embedding(tokens)))  # builds the weights
    for layer in (embedding, first, second):
        randomize(layer)
    whole = as_numpy(second(first(embedding(tokens))))
    prompt = 4
    x, states = embedding(tokens[:, :prompt]), []
    for layer in (first, second):
        x, layer_states = layer.scan(x)
        states.append(layer_states)
    np.testing.assert_allclose(as_numpy(x), whole[:, :prompt], atol=TOLERANCE, rtol=0)
    table = first.cell.project_inputs(embedding.embeddings)  # (vocab, gate units)
    for t in range(prompt, tokens.shape[1]):
        h, states[0] = first.cell.step(keras.ops.take(table, tokens[:, t], axis=0), states[0])
        h, states[1] = second.cell.step(second.cell.project_inputs(h), states[1])
        np.testing.assert_allclose(as_numpy(h), whole[:, t], atol=TOLERANCE, rtol=0)
