"""Keras models holding our layers convert to LiteRT (TensorFlow Lite) with built-in ops only, masks and
Bidirectional included, and the LiteRT interpreter reproduces Keras; the Keras built-ins, side by side, do not
convert (they need Select TF ops), which is expected but not asserted forever."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from tests.custom_layers.helpers import randomize

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="needs the litert extra (ai-edge-litert)")
schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

VOCAB, STEPS = 30, 9
# The recurrent layers convert through their fused kernel without XLA (LiteRT runs no XLA programs): the one option
# conversion needs. The weights are the same with either setting.
OURS = {
    "lstm": lambda **kw: custom_layers.LSTM(6, jit_compile=False, **kw),
    "simple_rnn": lambda **kw: custom_layers.SimpleRNN(6, jit_compile=False, **kw),
    "gru": lambda **kw: custom_layers.GRU(6, jit_compile=False, **kw),
    "gru_reset_before": lambda **kw: custom_layers.GRU(6, reset_after=False, jit_compile=False, **kw),
}
KERAS = {"lstm": lambda **kw: keras.layers.LSTM(6, **kw), "simple_rnn": lambda **kw: keras.layers.SimpleRNN(6, **kw)}
MODELS = {
    # the shape of the pipeline's sentiment models: masked ids -> Bidirectional, stacked, pooled or last state
    "masked_bidirectional_stacked": {"mask": True, "bidirectional": True, "layers": 2},
    "masked_last_state": {"mask": True, "bidirectional": False, "layers": 1},
    "unmasked_go_backwards": {"mask": False, "bidirectional": False, "layers": 1, "go_backwards": True},
    # dropout (off in inference) keeps its seed-generator state as a LiteRT resource variable, which works
    "masked_with_dropout": {"mask": True, "bidirectional": True, "layers": 1, "dropout": 0.2, "recurrent_dropout": 0.1},
}


def build(make_layer, mask, bidirectional, layers, **layer_options):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 5, mask_zero=mask)(tokens)
    for i in range(layers):
        layer = make_layer(return_sequences=i < layers - 1, **layer_options)
        x = (keras.layers.Bidirectional(layer) if bidirectional else layer)(x)
    model = keras.Model(tokens, keras.layers.Dense(3)(x))
    for layer in model.layers:
        randomize(layer)
    return model


def convert_builtin_only(model) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Select TF ops (Flex)
    return converter.convert()


def custom_ops(tflite: bytes) -> list:
    model = schema.Model.GetRootAs(tflite, 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    custom = schema.BuiltinOperator.CUSTOM
    return [c.CustomCode() for c in codes if max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) == custom]


def padded_ids():
    rng = np.random.default_rng(3)
    ids = rng.integers(1, VOCAB, size=(4, STEPS)).astype("int32")
    for row, length in enumerate([STEPS, 5, 1, 3]):
        ids[row, length:] = 0
    return ids


def run_litert(tflite, ids):
    runner = litert.Interpreter(model_content=tflite).get_signature_runner()
    (output,) = runner(**{next(iter(runner.get_input_details())): ids}).values()
    return output


@pytest.mark.parametrize("model_kind", list(MODELS))
@pytest.mark.parametrize("layer", list(OURS))
def test_our_layers_convert_with_builtin_ops_only_and_match_keras(layer, model_kind):
    model = build(OURS[layer], **MODELS[model_kind])
    tflite = convert_builtin_only(model)
    assert custom_ops(tflite) == []
    ids = padded_ids()
    np.testing.assert_allclose(run_litert(tflite, ids), model(ids).numpy(), atol=1e-5, rtol=0)


class NeedsSelectTfOps(Exception):
    """The converter failed as it does for the Keras built-ins: on the tensor-list ops of their time loop."""


@pytest.mark.xfail(
    raises=NeedsSelectTfOps,
    strict=False,
    reason="the Keras built-ins' time loop needs TensorFlow's tensor-list ops, which LiteRT has only as Select TF "
    "ops (tensorflow#58668, #62849); an XPASS means this TensorFlow release converts them",
)
@pytest.mark.parametrize("layer", list(KERAS))
def test_keras_builtins_side_by_side(layer):
    model = build(KERAS[layer], **MODELS["masked_bidirectional_stacked"])
    try:
        tflite = convert_builtin_only(model)
    except Exception as error:  # the converter's ConverterError has no public name
        if "TensorList" not in str(error):
            raise  # a different failure is a real one
        raise NeedsSelectTfOps(f"keras.layers.{type(model.layers[2].forward_layer).__name__}") from error
    assert custom_ops(tflite) == []
    ids = padded_ids()
    np.testing.assert_allclose(run_litert(tflite, ids), model(ids).numpy(), atol=1e-5, rtol=0)
