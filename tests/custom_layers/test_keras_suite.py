"""Keras' own tests for its recurrent layers, run against ours.

The keras package ships them (keras/src/layers/rnn/*_test.py). Each test module's `layers` (keras.src.layers) is
replaced, for the duration of each test, by a namespace in which LSTM, GRU, SimpleRNN and their cells are ours and
everything else is Keras'. A test that cannot pass is listed in SKIPPED with the behaviour of the built-in we
deliberately do not copy.
"""

import importlib
import types

import keras
import pytest

import custom_layers

MODULES = ["lstm_test", "simple_rnn_test", "gru_test", "bidirectional_test", "stacked_rnn_cells_test"]
OURS = {name: getattr(custom_layers, name) for name in ("LSTM", "LSTMCell", "GRU", "GRUCell", "SimpleRNN",
                                                        "SimpleRNNCell")}  # fmt: skip

try:
    _modules = {name: importlib.import_module(f"keras.src.layers.rnn.{name}") for name in MODULES}
except ImportError as error:  # pragma: no cover (a Keras release that no longer ships its tests)
    pytest.skip(f"this keras package does not ship its RNN tests: {error}", allow_module_level=True)

# The test classes, collected by pytest from this module (several Keras modules call theirs SimpleRNNTest).
KerasLSTMTest = _modules["lstm_test"].LSTMTest
KerasSimpleRNNTest = _modules["simple_rnn_test"].SimpleRNNTest
KerasGRUTest = _modules["gru_test"].GRUTest
KerasBidirectionalTest = _modules["bidirectional_test"].SimpleRNNTest
KerasStackedRNNCellsTest = _modules["stacked_rnn_cells_test"].StackedRNNTest

_FUSED_BIDIRECTIONAL = (
    "Bidirectional's own fused dispatch (one backend call for both directions, cuDNN on JAX/torch GPUs) is keyed on "
    "isinstance(layer, keras.layers.LSTM / GRU); ours are not subclasses of the built-ins, so Bidirectional runs "
    "them as two layers, which the other Bidirectional tests check"
)
_CUDNN_DISPATCH = "checks that the built-in dispatches to torch's cuDNN kernel; ours have no cuDNN kernel"
# (Keras test module, test name): why it is skipped.
SKIPPED = {
    ("bidirectional_test", "test_fused_lstm_eligibility"): _FUSED_BIDIRECTIONAL,
    ("bidirectional_test", "test_fused_gru_eligibility"): _FUSED_BIDIRECTIONAL,
    ("bidirectional_test", "test_torch_cudnn_bidirectional_gru_dispatch_fires"): _CUDNN_DISPATCH,
    ("gru_test", "test_torch_cudnn_dispatch_fires"): _CUDNN_DISPATCH,
}


@pytest.fixture(autouse=True)
def our_layers(request, monkeypatch):
    module = request.cls.__module__.rsplit(".", 1)[-1] if request.cls else ""
    reason = SKIPPED.get((module, request.node.originalname or request.node.name))
    if reason:
        pytest.skip(reason)
    namespace = types.SimpleNamespace(**{**vars(keras.src.layers), **OURS})
    for module in _modules.values():
        monkeypatch.setattr(module, "layers", namespace)


def test_the_swap_reaches_the_keras_tests():
    # Guards the fixture above: without it every Keras test would pass against the built-ins.
    for module in _modules.values():
        assert module.layers.LSTM is custom_layers.LSTM and module.layers.GRU is custom_layers.GRU
        assert module.layers.Bidirectional is keras.layers.Bidirectional
