"""Recurrent Keras 3 layers written from their gate equations.

Drop-in replacements for `keras.layers.SimpleRNN` / `keras.layers.LSTM` / `keras.layers.GRU` (same arguments,
same weight shapes, names and gate order, so `set_weights` works both ways), with a sequence-level fast path on
the TensorFlow backend and optional peephole connections and layer normalization for the LSTM.

Each cell has a per-step API (`project_inputs`, `step`) and each layer a `can_fuse` predicate and a `scan` that
returns the outputs and final states of one call; `LAYERS` maps the cell names a configuration uses to the layers.
"""

from types import MappingProxyType

from custom_layers.gru import GRU
from custom_layers.gru_cell import GRUCell
from custom_layers.lstm import LSTM
from custom_layers.lstm_cell import LSTMCell
from custom_layers.simple_rnn import SimpleRNN
from custom_layers.simple_rnn_cell import SimpleRNNCell

# Read-only: the pipeline takes its `model.cell` choices from here.
LAYERS = MappingProxyType({"lstm": LSTM, "simple_rnn": SimpleRNN, "gru": GRU})

__all__ = ["GRU", "GRUCell", "LAYERS", "LSTM", "LSTMCell", "SimpleRNN", "SimpleRNNCell"]
