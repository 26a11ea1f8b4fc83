"""Recurrent Keras 3 layers written from their gate equations.

Drop-in replacements for `keras.layers.SimpleRNN` / `keras.layers.LSTM` (same arguments, same weight shapes,
names and gate order, so `set_weights` works both ways), with a sequence-level fast path on the TensorFlow
backend and optional peephole connections and layer normalization for the LSTM.
"""

from custom_layers.lstm import LSTM
from custom_layers.lstm_cell import LSTMCell
from custom_layers.simple_rnn import SimpleRNN
from custom_layers.simple_rnn_cell import SimpleRNNCell

# The recurrent layers by name: what `model.cell` in a pipeline config chooses from.
LAYERS = {"lstm": LSTM, "simple_rnn": SimpleRNN}

__all__ = ["LAYERS", "LSTM", "LSTMCell", "SimpleRNN", "SimpleRNNCell"]
