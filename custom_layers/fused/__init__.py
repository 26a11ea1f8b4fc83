"""Sequence-level kernels for the TensorFlow backend (see `lstm_kernel`)."""

from custom_layers.fused.lstm_kernel import _batch_parts, _layout, _weights_left, lstm, os, simple_rnn  # noqa: F401
