"""Models holding our layers survive `.keras` save/load and `model.export` (SavedModel) without our code."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import custom_layers
from tests.custom_layers.helpers import randomize
from tests.isolation import BLOCK_OUR_CODE

LOAD_WITHOUT_OUR_CODE = BLOCK_OUR_CODE + textwrap.dedent(
    """
    import json, sys

    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(sys.argv[1])
    tokens = np.load(sys.argv[2])
    out = loaded.signatures["serving_default"](tokens=tf.constant(tokens))
    print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))
    """
)


def model_with(layers):
    inputs = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 6, mask_zero=True)(inputs)
    for layer in layers:
        x = layer(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    randomize(model)
    return model


MODELS = {
    "lstm_stack": lambda: [custom_layers.LSTM(5, return_sequences=True), custom_layers.LSTM(4)],
    "bidirectional_simple_rnn": lambda: [keras.layers.Bidirectional(custom_layers.SimpleRNN(4))],
    "peephole_layer_norm": lambda: [custom_layers.LSTM(4, peephole=True, layer_norm=True, dropout=0.1)],
    "cell_path": lambda: [custom_layers.LSTM(4, fused=False)],
    "gru_stack": lambda: [custom_layers.GRU(5, return_sequences=True), custom_layers.GRU(4, reset_after=False)],
    "bidirectional_gru_cell_path": lambda: [keras.layers.Bidirectional(custom_layers.GRU(4, fused=False, dropout=0.1))],
}
TOKENS = np.array([[3, 5, 7, 0, 0], [1, 2, 3, 4, 5], [9, 0, 0, 0, 0]], dtype="int32")


@pytest.mark.parametrize("name", list(MODELS))
def test_keras_file_round_trip(name, tmp_path):
    model = model_with(MODELS[name]())
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(TOKENS)), np.asarray(model(TOKENS)))
    # Through JSON, as the .keras file stores them (tuples come back as lists, as for the Keras built-ins).
    configs = [json.dumps([layer.get_config() for layer in m.layers], sort_keys=True) for m in (model, loaded)]
    assert configs[0] == configs[1]


def test_layer_config_round_trip():
    layer = custom_layers.LSTM(7, dropout=0.25, recurrent_dropout=0.1, peephole=True, go_backwards=True,
                               kernel_regularizer="l2", activity_regularizer="l1", jit_compile=False)  # fmt: skip
    clone = custom_layers.LSTM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.units, clone.dropout, clone.peephole, clone.go_backwards) == (7, 0.25, True, True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm_stack", "bidirectional_simple_rnn", "peephole_layer_norm", "gru_stack"])
def test_saved_model_loads_without_our_code(name, tmp_path):
    model = model_with(MODELS[name]())
    export_dir = tmp_path / "export"
    model.export(str(export_dir), verbose=False)
    np.save(tmp_path / "tokens.npy", TOKENS)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_OUR_CODE, str(export_dir), str(tmp_path / "tokens.npy")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (served,) = json.loads(result.stdout.strip().splitlines()[-1]).values()
    np.testing.assert_allclose(served, np.asarray(model(TOKENS)), atol=1e-6)
