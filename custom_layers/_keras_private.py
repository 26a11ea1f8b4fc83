"""Every use of a private Keras (or TensorFlow) API in rnnpipe, in one place, each with the reason it is needed.

The layers need three: the dropout-mask protocol, the backend's time loop and the XLA optimization barrier (the
pipeline keeps its own, for training-loop details, in pipeline/training/_keras_private.py). Each name here is
checked by `tests/custom_layers/test_keras_private.py`, which fails loudly when a Keras or TensorFlow release moves or
changes one; the `keras` pin in pyproject.toml covers the releases that test has passed on.
"""

from __future__ import annotations

# The time loop behind `keras.layers.RNN` (masking, go_backwards, unroll and zero_output_for_mask, on every backend)
# has no public API. `keras.layers.RNN.inner_loop` calls it with `return_all_outputs=return_sequences`; the layers'
# `scan` must return every output whatever `return_sequences` says, so their cell path calls it directly.
from keras.src.backend import rnn as backend_rnn

# `keras.layers.RNN` creates a cell's per-sequence dropout masks before the time loop and clears them after it only
# for subclasses of this mixin (`isinstance(cell, DropoutRNNCell)` in keras/src/layers/rnn/rnn.py), which is what
# makes a mask drawn once per sequence and shared by all steps, as the built-in cells do. A cell that reimplemented
# the methods without the base class would keep the first batch's mask forever.
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

try:
    # XLA's optimization barrier has no public TensorFlow API. The fused kernels use it to keep XLA from folding two
    # small transposes back into a slower matmul layout; without it they still compute the same numbers.
    from tensorflow.compiler.tf2xla.python.xla import optimization_barrier
except ImportError:  # pragma: no cover (another backend without TensorFlow, or a TensorFlow that moved it)
    optimization_barrier = None

__all__ = ["DropoutRNNCell", "backend_rnn", "optimization_barrier"]
