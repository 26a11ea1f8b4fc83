"""Sequence-level LSTM, SimpleRNN and GRU kernels for the TensorFlow backend.

The per-step cell inside `keras.layers.RNN` pays for everything at every timestep: the input projection x_t W,
the weight-gradient accumulation in backprop and a handful of small ops. Here the work that does not depend on
the recurrence is hoisted out of the time loop:

- forward: Z_x = X W for all timesteps is one (batch*time, input_dim) x (input_dim, gate units) matmul; the loop
  only does the recurrent product h_{t-1} U, the bias and the gate nonlinearities;
- backward (`tf.custom_gradient`): the loop only carries the state gradients back through time and records the
  pre-activation gradients dz_t; then dW and db (one matmul, through a column of ones), dU = H_{prev}^T dZ and
  dX = dZ W^T are single large matmuls.

On a CPU these arrays of (time, batch, gate units) floats are bigger than the caches, so the kernels also avoid
passes over them: the bias joins the per-step gate arithmetic, the gate derivatives are formed inside the
backward loop from the saved gates, and states are kept with the initial one in slot 0 so that H_{prev} needs no
shifted copy (`_shared.with_initial`, `_shared.weight_gradients`).

How a call's work is arranged (two batch halves side by side, the per-step product with the weights on the left)
is one policy, `layout`; it changes the speed, never the numbers.

The time loops run as XLA-compiled functions when `jit_compile=True`: on CPU that roughly halves the cost of the
small per-step matmul and fuses the gate nonlinearities; `jit_compile=False` keeps plain TensorFlow ops
(TensorArrays instead of in-place updates), for consumers without XLA (e.g. TensorFlow Serving's default CPU
build). The large matmuls of the weight gradients run as plain TensorFlow ops either way: oneDNN's matmul is
faster than XLA's CPU one at these shapes.

The equations are those of the cells in their standard configuration (tanh/sigmoid activations, no peephole, no
layer norm, no recurrent dropout); the layers step the cell otherwise (`can_fuse`). Masking follows Keras: a
masked step carries the state and repeats the previous output (or outputs zeros with `zero_output_for_mask`).
One module per cell (`lstm_kernel`, `simple_rnn_kernel`, `gru_kernel`), what they share in `_shared`.
"""

from custom_layers.fused import layout
from custom_layers.fused.gru_kernel import gru
from custom_layers.fused.lstm_kernel import lstm
from custom_layers.fused.simple_rnn_kernel import simple_rnn

__all__ = ["gru", "layout", "lstm", "simple_rnn"]
