"""Sequence-level LSTM and SimpleRNN kernels for the TensorFlow backend.

The per-step cell inside `keras.layers.RNN` pays for everything at every timestep: the input projection x_t W,
the weight-gradient accumulation in backprop and a handful of small ops. Here the work that does not depend on
the recurrence is hoisted out of the time loop:

- forward: Z_x = X W for all timesteps is one (batch*time, input_dim) x (input_dim, 4 units) matmul; the loop
  only does h_{t-1} U + b and the gate nonlinearities;
- backward (`tf.custom_gradient`): the loop only carries dh, dc back through time and records dz_t; then
  dW and db (one matmul, through a column of ones), dU = H_{prev}^T dZ and dX = dZ W^T are single large matmuls.

On a CPU these arrays of (time, batch, 4 units) floats are bigger than the caches, so the kernels also avoid
passes over them: the bias joins the per-step gate arithmetic, under XLA the saved gates overwrite Z_x in place,
the gate derivatives are formed inside the backward loop from the saved gates, and states are kept with the
initial one in slot 0 so that H_{prev} needs no shifted copy (see `_with_initial` and `_weight_gradients`).

When one step's matmul is not large (batch x units x gate units below 2**29 multiply-adds), the XLA kernels run
the batch as two independent halves, which TensorFlow executes concurrently: a single recurrence cannot keep two
cores busy (`_batch_parts`). Each half is the same computation on fewer rows, so results do not change.

With large recurrent weights (`_weights_left`, a threshold per loop), the per-step product puts the weights on
the left, U^T h^T: the CPU matmul repacks its right-hand operand on every call, and in h U that operand is the
whole recurrent kernel. The LSTM inference kernel keeps its states feature-major, (units, batch), throughout
(`_lstm_infer_feature_major`); the training kernels transpose the small per-step operands around that one
product (`_recurrent_product`).

The time loops run as XLA-compiled functions when `jit_compile=True`: on CPU that roughly halves the cost of the
small per-step matmul and fuses the gate nonlinearities; `jit_compile=False` keeps plain TensorFlow ops
(TensorArrays instead of in-place updates), for consumers without XLA (e.g. TensorFlow Serving's default CPU
build). The large matmuls of the weight gradients run as plain TensorFlow ops either way: oneDNN's matmul is
faster than XLA's CPU one at these shapes (LSTM(512), half batch: 68 vs 78 ms for both halves' dU).

The equations are those of `LSTMCell` / `SimpleRNNCell` (tanh/sigmoid activations, no peephole, no layer norm,
no recurrent dropout); the layers fall back to the cell loop otherwise. Masking follows Keras: a masked step
carries the state and repeats the previous output (or outputs zeros with `zero_output_for_mask`).
"""

import functools
import os

import keras
import tensorflow as tf

# Without the barrier (see _keras_private) the recurrent matmul stays h @ U.
from custom_layers._keras_private import optimization_barrier as _optimization_barrier


def _weights_as_tensors(kernel, recurrent_kernel, bias):
    # Reading the variables here, outside the custom-gradient function, lets the tape route the gradients
    # returned for these tensors to the variables.
    kernel = tf.convert_to_tensor(kernel)
    recurrent_kernel = tf.convert_to_tensor(recurrent_kernel)
    bias = tf.zeros([tf.shape(kernel)[1]], kernel.dtype) if bias is None else tf.convert_to_tensor(bias)
    return kernel, recurrent_kernel, bias


def _mask_time_major(mask):
    """(batch, time) mask -> (time, batch, 1) bool, ready to broadcast against (batch, units) states."""
    if mask is None:
        return None
    # Transposed as int8: oneDNN's transpose rejects bool on CPUs without AVX-512 and logs an error line about it.
    return tf.cast(tf.transpose(tf.cast(mask, tf.int8)), tf.bool)[:, :, tf.newaxis]


def _time_major(x):
    return tf.transpose(x, [1, 0, 2])


def _project_inputs(x_tm, kernel):
    """X W for all timesteps at once; x_tm is (time, batch, input_dim). The bias is added inside the step, where
    it fuses with the gate arithmetic, instead of costing a pass over this (time, batch, 4 units) array."""
    steps, batch = tf.shape(x_tm)[0], tf.shape(x_tm)[1]
    # Explicit sizes rather than -1 throughout: a slice of the batch may be empty (see _split_batch).
    z = tf.matmul(tf.reshape(x_tm, [steps * batch, tf.shape(kernel)[0]]), kernel)
    return tf.reshape(z, [steps, batch, tf.shape(kernel)[1]])


def _step_buffer(in_place, size, like):
    """Storage for one value per timestep: a zeroed tensor updated in place under XLA, a TensorArray otherwise."""
    if in_place:
        return tf.zeros(tf.concat([[size], tf.shape(like)], axis=0), like.dtype)
    return tf.TensorArray(like.dtype, size=size)


def _write(buffer, t, value):
    if isinstance(buffer, tf.TensorArray):
        return buffer.write(t, value)
    # XLA's dynamic-update-slice: in place, with no copy of the buffer.
    return keras.ops.slice_update(buffer, [t, 0, 0], value[tf.newaxis])


def _stacked(buffer):
    return buffer.stack() if isinstance(buffer, tf.TensorArray) else buffer


def _with_zero_last(in_place, steps, like):
    """A buffer of steps + 1 slots whose last slot stays zero (a zeroed tensor already is; a TensorArray is not)."""
    buffer = _step_buffer(in_place, steps + 1, like)
    return buffer if in_place else buffer.write(steps, tf.zeros_like(like))


def _with_initial(in_place, steps, initial):
    """A buffer of steps + 1 slots holding `initial` in slot 0; step t writes slot t + 1. Slot t is then the
    state *before* step t, which is what the weight gradients pair with dz_t, without a shifted copy."""
    return _write(_step_buffer(in_place, steps + 1, initial), 0, initial)


def _weight_gradients(x, h_ext, dz_ext, kernel):
    """dX, dW, dU, db as single matmuls over all timesteps.

    h_ext (time + 1, batch, units) holds h_{t-1} in slot t; dz_ext (time + 1, batch, gates) holds dz_t in slot t
    and zeros in the last slot, so dU = H_ext^T dZ_ext needs no shifted copy of H. A column of ones appended to X
    makes db the last row of the kernel gradient: one pass over dZ fewer than a separate sum.
    """
    x_tm = _time_major(x)
    steps, batch = tf.shape(x_tm)[0], tf.shape(x_tm)[1]
    input_dim, gate_units = tf.shape(kernel)[0], tf.shape(kernel)[1]
    dz_ext = tf.reshape(dz_ext, [(steps + 1) * batch, gate_units])
    dz = dz_ext[: steps * batch]  # without the zero slot; a leading-axis slice is a view, not a copy
    x_ones = tf.concat([x_tm, tf.ones_like(x_tm[:, :, :1])], axis=2)
    d_kernel_bias = tf.matmul(tf.reshape(x_ones, [steps * batch, input_dim + 1]), dz, transpose_a=True)
    d_recurrent = tf.matmul(tf.reshape(h_ext, [(steps + 1) * batch, tf.shape(h_ext)[2]]), dz_ext, transpose_a=True)
    dx = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), [steps, batch, input_dim])
    return _time_major(dx), d_kernel_bias[:-1], d_recurrent, d_kernel_bias[-1]


def _output_gradient_at(d_outputs, t, mask_tm, zero_output_for_mask):
    """The gradient reaching output t, read from the batch-major output gradient inside the loop: a strided
    read of (batch, units) per step instead of a transposed copy of the whole (batch, time, units) array."""
    d_out = d_outputs[:, t]
    if mask_tm is not None and zero_output_for_mask:
        d_out = tf.where(mask_tm[t], d_out, tf.zeros_like(d_out))
    return d_out


def _after(first, tensor):
    """`tensor`, for ops that must not start before `first` exists. The backward pass's ops on the inputs alone
    (the transpose of X for the weight gradients) would otherwise run at the very start of a training step, on
    the thread that is about to launch the second batch half's forward kernel, and delay it."""
    with tf.control_dependencies([first]):
        return tf.identity(tensor)


def _or_zeros(grad, like):
    return tf.zeros_like(like) if grad is None else grad


def _outputs(h_ext, mask_tm, zero_output_for_mask, slice_last=False):
    """The outputs, batch-major, from the states buffer (initial state in slot 0). XLA compiles the default,
    slicing first, as a slice into a transposed layout and then a copy into the result's layout: two passes over
    the buffer. With slice_last (transpose, then drop the initial state) it is one pass; see _simple_rnn_forward
    for why the LSTM kernels keep the default."""
    if mask_tm is not None and zero_output_for_mask:
        outputs_tm = h_ext[1:]
        return _time_major(tf.where(mask_tm, outputs_tm, tf.zeros_like(outputs_tm)))
    return _time_major(h_ext)[:, 1:] if slice_last else _time_major(h_ext[1:])


def _gate_affine(units, dtype):
    """Scale and shift so that tanh(z * scale) * scale + shift gives (i, f, g, o) from (z_i, z_f, z_c, z_o)."""
    half, one = tf.fill([units], tf.constant(0.5, dtype)), tf.ones([units], dtype)
    scale = tf.concat([half, half, one, half], axis=0)
    shift = tf.concat([half, half, tf.zeros([units], dtype), half], axis=0)
    return scale, shift


def _recurrent_product(weights, weights_left, transpose=False):
    """h -> h @ W for a per-step recurrent matmul, W = weights, or weights^T with `transpose` (the backward pass).

    weights_left (XLA only, see `_weights_left`): compute it as (W^T h^T)^T. The CPU matmul repacks its
    right-hand operand on every call, and in h @ W that operand is the whole weight matrix, every step.
    The barrier keeps XLA from folding the two small transposes back into h @ W.
    """
    if not weights_left or _optimization_barrier is None:
        # A transposed copy made once keeps the per-step matmul a plain one, faster than transpose_b.
        right = tf.transpose(weights) if transpose else weights
        return lambda h: tf.matmul(h, right)
    left = weights if transpose else tf.transpose(weights)
    return lambda h: tf.transpose(_optimization_barrier(tf.matmul(left, h, transpose_b=True))[0])


def _lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask, keep_gates=True,
                  weights_left=False, in_place=True):  # fmt: skip
    """keep_gates=False (inference) skips recording what the backward pass needs; it recomputes it if asked.

    in_place (XLA only): the activated gates of step t overwrite z_x[t] once it has been read, so the saved gates
    cost no buffer of their own.
    """
    z_x = _project_inputs(_time_major(x), kernel)
    steps = tf.shape(z_x)[0]
    units = tf.shape(h0)[1]
    # sigmoid(a) = (1 + tanh(a / 2)) / 2: one tanh over all four blocks instead of three sigmoids and a tanh.
    scale, shift = _gate_affine(units, x.dtype)
    reuse_z = in_place and keep_gates
    recurrent = _recurrent_product(recurrent_kernel, weights_left)

    def step(t, h, c, gates_buf, h_buf, c_buf):
        z_t = (gates_buf if reuse_z else z_x)[t]
        gates = tf.tanh((z_t + recurrent(h) + bias) * scale) * scale + shift
        i, f, g, o = tf.split(gates, 4, axis=1)
        c_new = f * c + i * g
        h_new = o * tf.tanh(c_new)
        if mask_tm is not None:
            h_new = tf.where(mask_tm[t], h_new, h)
            c_new = tf.where(mask_tm[t], c_new, c)
        if keep_gates:
            gates_buf, c_buf = _write(gates_buf, t, gates), _write(c_buf, t + 1, c_new)
        return t + 1, h_new, c_new, gates_buf, _write(h_buf, t + 1, h_new), c_buf

    if not keep_gates:
        gates_buf = c_buf = tf.zeros([0], x.dtype)  # unused loop slots
    else:
        gates_buf = z_x if reuse_z else _step_buffer(False, steps, z_x[0])
        c_buf = _with_initial(in_place, steps, c0)
    _, h_last, c_last, gates_buf, h_buf, c_buf = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), h0, c0, gates_buf, _with_initial(in_place, steps, h0), c_buf)
    )
    h_ext = _stacked(h_buf)
    outputs = _outputs(h_ext, mask_tm, zero_output_for_mask)
    if not keep_gates:
        return outputs, h_last, c_last
    return outputs, h_last, c_last, _stacked(gates_buf), h_ext, _stacked(c_buf)


def _lstm_infer_feature_major(x, h0, c0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask):
    """Inference forward (XLA only) with the states kept feature-major, (units, batch).

    The per-step product is then U^T h^T with the weights as the left operand, which the CPU matmul does not
    repack at every step (it does repack a right-hand operand), and each gate is a contiguous block of rows.
    """
    x_fm = tf.transpose(x, [1, 2, 0])  # (time, input_dim, batch)
    kernel_t, recurrent_kernel_t = tf.transpose(kernel), tf.transpose(recurrent_kernel)
    bias_col = bias[:, tf.newaxis]
    steps, batch, units = tf.shape(x_fm)[0], tf.shape(x_fm)[2], tf.shape(h0)[1]
    mask_fm = None if mask_tm is None else tf.transpose(mask_tm, [0, 2, 1])  # (time, 1, batch)
    scale, shift = (column[:, tf.newaxis] for column in _gate_affine(units, x.dtype))

    def step(t, h, c, h_buf):
        z = tf.matmul(kernel_t, x_fm[t]) + tf.matmul(recurrent_kernel_t, h) + bias_col
        # One tanh over all four gate blocks, as in _lstm_forward. Four activations of their own, fused with the
        # cell update, made XLA interleave four tanh streams in one loop that spilled registers (LSTM(512)
        # inference layer alone 1.03x faster this way).
        i, f, g, o = tf.split(tf.tanh(z * scale) * scale + shift, 4, axis=0)
        c_new = f * c + i * g
        h_new = o * tf.tanh(c_new)
        if mask_fm is not None:
            h_new = tf.where(mask_fm[t], h_new, h)
            c_new = tf.where(mask_fm[t], c_new, c)
        return t + 1, h_new, c_new, _write(h_buf, t, h_new)

    h_buf = tf.zeros([steps, units, batch], x.dtype)
    _, h_last, c_last, h_buf = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), tf.transpose(h0), tf.transpose(c0), h_buf)
    )
    outputs = tf.transpose(h_buf, [2, 0, 1])
    if mask_tm is not None and zero_output_for_mask:
        outputs = tf.where(tf.transpose(mask_tm, [1, 0, 2]), outputs, tf.zeros_like(outputs))
    return outputs, tf.transpose(h_last), tf.transpose(c_last)


def _lstm_backward(d_outputs, dh_last, dc_last, recurrent_kernel, gates_tm, h_ext, c_ext, mask_tm,
                   zero_output_for_mask, weights_left=False, in_place=True):  # fmt: skip
    """The loop of the backward pass: dh_0, dc_0 and dz_ext for `_weight_gradients`."""
    steps = tf.shape(gates_tm)[0]
    recurrent_t = _recurrent_product(recurrent_kernel, weights_left, transpose=True)
    scale, shift = _gate_affine(tf.shape(dh_last)[1], dh_last.dtype)
    scale_squared = scale * scale

    def step(t, dh_next, dc_next, dz_buf):
        dh = dh_next
        if d_outputs is not None:  # an unconnected output's gradient may come in as None
            dh = dh + _output_gradient_at(d_outputs, t, mask_tm, zero_output_for_mask)
        dc = dc_next
        if mask_tm is not None:
            # A masked step copied its states forward: their gradients skip it.
            zeros = tf.zeros_like(dh)
            dh, dh_skip = tf.where(mask_tm[t], dh, zeros), tf.where(mask_tm[t], zeros, dh)
            dc, dc_skip = tf.where(mask_tm[t], dc, zeros), tf.where(mask_tm[t], zeros, dc)
        # The gate derivatives are formed here, from the saved gates and cell states, rather than as whole
        # (time, batch, 4 units) arrays before the loop: that would be several more passes over memory.
        gates = gates_tm[t]
        i, f, g, o = tf.split(gates, 4, axis=1)
        c_prev, tanh_c = c_ext[t], tf.tanh(c_ext[t + 1])
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        # d gate / d z for all four blocks at once: s (1 - s) for the sigmoids, 1 - g^2 for the tanh.
        slope = scale_squared - tf.square(gates - shift)
        dz = tf.concat([dc, dc, dc, dh], axis=1) * tf.concat([g, c_prev, i, tanh_c], axis=1) * slope
        dh_prev = recurrent_t(dz)
        dc_prev = dc * f
        if mask_tm is not None:
            dh_prev, dc_prev = dh_prev + dh_skip, dc_prev + dc_skip
        return t - 1, dh_prev, dc_prev, _write(dz_buf, t, dz)

    # One slot more than steps, left zero: see _weight_gradients.
    dz_buf = _with_zero_last(in_place, steps, gates_tm[0])
    _, dh0, dc0, dz_buf = tf.while_loop(lambda t, *_: t >= 0, step, (steps - 1, dh_last, dc_last, dz_buf))
    return dh0, dc0, _stacked(dz_buf)


def _simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask, weights_left=False,
                        one_pass=False, in_place=True):  # fmt: skip
    z_x = _project_inputs(_time_major(x), kernel)
    steps = tf.shape(z_x)[0]
    recurrent = _recurrent_product(recurrent_kernel, weights_left)

    # The loop carries the next step's product h U, made at the end of each step, as the backward loop carries
    # its product. Inside the benchmark model SimpleRNN(512) trains 1.06-1.07x and infers 1.16-1.19x faster this
    # way (units 256: 1.00-1.03x); in timelines both halves' loops then run on the intra-op threads
    # (benchmarks/THROUGHPUT_NOTES.md).
    # The product made after the last step is wasted: one in `steps + 1` (1% at the benchmark's 100 steps).
    def step(t, h, h_u, h_buf):
        h_new = tf.tanh(z_x[t] + h_u + bias)
        if mask_tm is not None:
            h_new = tf.where(mask_tm[t], h_new, h)
        return t + 1, h_new, recurrent(h_new), _write(h_buf, t + 1, h_new)

    # With one_pass (XLA, from 1 MiB of weights), the product before the loop has the weights on the left, which
    # XLA runs in Eigen, asynchronously (split across the intra-op threads), and the outputs are made in one pass.
    # Each change alone was slower: XLA's CPU runtime goes on from whichever thread completes an asynchronous
    # operation, and with the one-pass outputs alone both halves' loops ran on the calling threads, where each
    # per-step h U (YNNPACK) handed parts to the intra-op threads and waited for them (loops of 19-21 ms instead of
    # 13.8-14.5; SimpleRNN(512) training 0.96x, inference 0.85x; the same outputs in the LSTM forward: LSTM(256)
    # inference 0.83x). Together, against the previous form, SimpleRNN(512) training 1.00-1.03x, inference
    # 0.99-1.05x (five runs). At units 256, where Eigen runs that product on the calling thread, 0.97-1.01x.
    # (Tests: the weights-on-the-left tests force this path and compare it with the default one; SimpleRNN(512)
    # against Keras takes it by the rule.) `_layout` already leaves one_pass False without XLA; without the
    # barrier the initial product could not have the weights on the left, so neither change is made.
    one_pass = one_pass and _optimization_barrier is not None
    h_u = _recurrent_product(recurrent_kernel, weights_left=True)(h0) if one_pass else recurrent(h0)
    _, h_last, _, h_buf = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), h0, h_u, _with_initial(in_place, steps, h0))
    )
    h_ext = _stacked(h_buf)
    return _outputs(h_ext, mask_tm, zero_output_for_mask, slice_last=one_pass), h_last, h_ext


def _simple_rnn_backward(d_outputs, dh_last, recurrent_kernel, h_ext, mask_tm, zero_output_for_mask,
                         weights_left=False, in_place=True):  # fmt: skip
    """The loop of the backward pass: dh_0 and dz_ext for `_weight_gradients`."""
    steps = tf.shape(h_ext)[0] - 1  # h_ext holds the initial state too
    recurrent_t = _recurrent_product(recurrent_kernel, weights_left, transpose=True)

    def step(t, dh_next, dz_buf):
        dh = dh_next
        if d_outputs is not None:  # an unconnected output's gradient may come in as None
            dh = dh + _output_gradient_at(d_outputs, t, mask_tm, zero_output_for_mask)
        if mask_tm is not None:
            zeros = tf.zeros_like(dh)
            dh, dh_skip = tf.where(mask_tm[t], dh, zeros), tf.where(mask_tm[t], zeros, dh)
        h = h_ext[t + 1]
        dz = dh * (1 - h * h)
        dh_prev = recurrent_t(dz)
        if mask_tm is not None:
            dh_prev = dh_prev + dh_skip
        return t - 1, dh_prev, _write(dz_buf, t, dz)

    dz_buf = _with_zero_last(in_place, steps, dh_last)
    _, dh0, dz_buf = tf.while_loop(lambda t, *_: t >= 0, step, (steps - 1, dh_last, dz_buf))
    return dh0, _stacked(dz_buf)


def _unwatched(*tensors):
    # An enclosing GradientTape would otherwise make tf.function build a differentiable forward pass (with
    # while-loop accumulators XLA cannot compile) that the custom gradient never uses.
    return [tf.stop_gradient(t) for t in tensors]


def _xla(function):
    # One compiled program per input shape; reduce_retracing keeps the Python-side traces to a few.
    return tf.function(function, jit_compile=True, reduce_retracing=True)


_ALL = (_lstm_forward, _lstm_backward, _simple_rnn_forward, _simple_rnn_backward)
# In-place buffer updates are XLA's dynamic-update-slice; plain TensorFlow gets TensorArrays.
_KERNELS = {
    False: tuple(functools.partial(f, in_place=False) for f in _ALL),
    True: tuple(_xla(functools.partial(f, in_place=True)) for f in _ALL),
}
_INFER_FEATURE_MAJOR = _xla(_lstm_infer_feature_major)


# Below this many multiply-adds in one step's recurrent matmul (batch x units x gate units), one sequence loop
# cannot keep two cores busy: the per-step matmul is split across threads that mostly wait for each other, and
# the gate ops run one at a time. Two independent halves of the batch, which TensorFlow runs concurrently, fill
# both cores. Measured on 2 cores, fwd+bwd of the layer alone at batch 64: LSTM(256) (2**24) 92 -> 68 ms,
# SimpleRNN(256) 27 -> 21 ms, SimpleRNN(512) 70 -> 61 ms. Inside the benchmark model, split / unsplit tokens/s
# (median of 7 paired rounds), training / inference: LSTM(512) at batch 128 (2**27) 1.10 / 1.12, LSTM(1024) at
# batch 64 (2**28) 1.19 / 0.99.
_SPLIT_BELOW_STEP_WORK = 2**29
_ASSUMED_BATCH = 64  # for the rule when the batch size is only known at run time
_MIN_PART = 8


def _batch_parts(x, recurrent_kernel, jit_compile):
    """1 or 2: how many independent slices of the batch to run side by side (see _SPLIT_BELOW_STEP_WORK)."""
    if not jit_compile or (os.cpu_count() or 1) < 2:
        return 1
    batch = x.shape[0]
    if batch is not None and batch < 2 * _MIN_PART:
        return 1
    units, gate_units = recurrent_kernel.shape
    if units is None or gate_units is None:
        return 1
    return 2 if (batch or _ASSUMED_BATCH) * units * gate_units < _SPLIT_BELOW_STEP_WORK else 1


# From this many recurrent weights on, a loop's per-step product is U^T h^T rather than h U: the CPU matmul repacks
# its right-hand operand on every call, and with h U that operand is the whole recurrent kernel, every step. With
# U^T h^T it is the (units, batch) state, but the training kernels then transpose the product back, inside the
# fusion that reads it. Thresholds, in float32 weights: LSTM inference (the feature-major kernel) and the
# backward loop 1 MiB, the training forward loop 4 MiB (SimpleRNN's forward loop serves inference too).
# Inside the benchmark model (median of 9-21 paired rounds, 2 cores, batch 64), tokens/s against h U, on a 2-core
# AVX-512 host: inference LSTM(512) 1.21 (the inference kernel is feature-major throughout), SimpleRNN(512) 0.96,
# LSTM(256) 0.97, SimpleRNN(256) 0.93; training with both loops so LSTM(512) 1.10, SimpleRNN(512) 1.07, LSTM(256)
# 1.02, SimpleRNN(256) 1.01; the training forward loop alone back to h U, with the backward loop keeping U^T:
# SimpleRNN(512) 1.02 (its forward fusion then reads the product without a transpose), LSTM(256) 1.00,
# SimpleRNN(1024) 0.87. Fwd+bwd of the layer alone, SimpleRNN(1024) at batch 64: 450 -> 296 ms. Re-checked once
# the SimpleRNN forward loop carried its product (37ef8b9): with its weights on the left from 1 MiB, SimpleRNN(512)
# training gained 1.05x over 896ac5b, with the carried h U 1.06-1.07x. On a 2-core AVX2 host (AMD EPYC) the
# feature-major kernel infers LSTM(256) 1.23, 1.36 and 1.43x faster than h U (three runs), against 0.97x on the
# AVX-512 host, so LSTM inference takes it from 1 MiB; on the AVX2 host, SimpleRNN loops with the weights on the left
# from 256 KiB were neutral (0.997-1.018x).
_WEIGHTS_LEFT_FROM = {"inference": 2**18, "forward": 2**20, "backward": 2**18}


def _weights_left(recurrent_kernel, loop):
    """Whether `loop` ("inference", "forward" or "backward") computes its per-step product as U^T h^T; see above."""
    units, gate_units = recurrent_kernel.shape
    if units is None or gate_units is None:
        return False
    return units * gate_units >= _WEIGHTS_LEFT_FROM[loop]


def _layout(x, recurrent_kernel, jit_compile, batch_parts, feature_major):
    """(batch parts, {loop: weights on the left}) for one call: the caller's choices, or the rules above."""
    parts = batch_parts or _batch_parts(x, recurrent_kernel, jit_compile)
    loops = {}
    for loop in _WEIGHTS_LEFT_FROM:
        chosen = _weights_left(recurrent_kernel, loop) if feature_major is None else feature_major
        loops[loop] = bool(chosen) and bool(jit_compile)
    return parts, loops


def _split_batch(parts, *tensors):
    """Each tensor (or None) cut into `parts` slices along the batch axis, as one tuple per tensor."""
    if parts == 1:
        return [(tensor,) for tensor in tensors]
    batch = tf.shape(tensors[0])[0]
    sizes = [(batch + k) // parts for k in range(parts)]  # they sum to batch, the largest last
    return [(None,) * parts if tensor is None else tuple(tf.split(tensor, sizes)) for tensor in tensors]


def _concat_parts(results):
    results = list(results)
    if len(results) == 1:
        return results[0]
    return tuple(tf.concat(pieces, axis=0) for pieces in zip(*results))


def lstm(
    x, h0, c0, kernel, recurrent_kernel, bias, mask=None, zero_output_for_mask=False, jit_compile=True, training=True,
    batch_parts=None, feature_major=None,
):  # fmt: skip
    """Runs the LSTM over a whole sequence.

    Args:
        x: (batch, time, input_dim) inputs.
        h0, c0: (batch, units) initial states.
        kernel, recurrent_kernel, bias: the `LSTMCell` weights, gate order (i, f, c, o); bias may be None.
        mask: optional (batch, time) bool, False for padded steps.
        zero_output_for_mask: output zeros (instead of repeating the last output) at masked steps.
        jit_compile: run the loops as XLA-compiled functions.
        training: record the gates for the backward pass while running forward. With False (inference) the
            forward pass is lighter and a gradient, if one is asked for anyway, reruns it first.
        batch_parts: run the batch as this many independent slices side by side; None chooses (`_batch_parts`).
        feature_major: under XLA, compute the per-step products of both loops as U^T h^T, with the states kept
            as (units, batch) throughout for inference (`_lstm_infer_feature_major`); None chooses per loop
            (`_weights_left`).

    Returns:
        (outputs (batch, time, units), h_T, c_T).
    """
    kernel, recurrent_kernel, bias = _weights_as_tensors(kernel, recurrent_kernel, bias)
    weights = (kernel, recurrent_kernel, bias)
    parts, loops = _layout(x, recurrent_kernel, jit_compile, batch_parts, feature_major)
    return _concat_parts(
        _lstm(x_k, h0_k, c0_k, *weights, mask_k, zero_output_for_mask, jit_compile, training, loops)
        for x_k, h0_k, c0_k, mask_k in zip(*_split_batch(parts, x, h0, c0, mask))
    )


def _loop_options(loops):
    # Python bools: one XLA program per value. Without XLA, `_layout` has already set both to False.
    return {"weights_left": loops["forward"]}, {"weights_left": loops["backward"]}


def _lstm(x, h0, c0, kernel, recurrent_kernel, bias, mask, zero_output_for_mask, jit_compile, training, loops):
    mask_tm = _mask_time_major(mask)
    forward_fn, backward_fn, _, _ = _KERNELS[bool(jit_compile)]
    forward_layout, backward_layout = _loop_options(loops)

    @tf.custom_gradient
    def forward(x, h0, c0, kernel, recurrent_kernel, bias):
        inputs = _unwatched(x, h0, c0, kernel, recurrent_kernel, bias)
        saved = None
        if training:
            outputs, h_last, c_last, *saved = forward_fn(*inputs, mask_tm, zero_output_for_mask, **forward_layout)
        elif loops["inference"]:
            outputs, h_last, c_last = _INFER_FEATURE_MAJOR(*inputs, mask_tm, zero_output_for_mask)
        else:
            outputs, h_last, c_last = forward_fn(*inputs, mask_tm, zero_output_for_mask, keep_gates=False)

        def backward(d_outputs, dh_last, dc_last):
            gates_tm, h_ext, c_ext = saved or forward_fn(*inputs, mask_tm, zero_output_for_mask, **forward_layout)[3:]
            dh0, dc0, dz_ext = backward_fn(
                d_outputs, _or_zeros(dh_last, h0), _or_zeros(dc_last, c0),
                recurrent_kernel, gates_tm, h_ext, c_ext, mask_tm, zero_output_for_mask, **backward_layout,
            )  # fmt: skip
            dx, d_kernel, d_recurrent, d_bias = _weight_gradients(_after(h_ext, x), h_ext, dz_ext, kernel)
            return dx, dh0, dc0, d_kernel, d_recurrent, d_bias

        return (outputs, h_last, c_last), backward

    return forward(x, h0, c0, kernel, recurrent_kernel, bias)


def simple_rnn(
    x, h0, kernel, recurrent_kernel, bias, mask=None, zero_output_for_mask=False, jit_compile=True, training=True,
    batch_parts=None, feature_major=None,
):  # fmt: skip
    """Runs the tanh SimpleRNN over a whole sequence; arguments as `lstm`. Returns (outputs, h_T).

    The forward pass records only h, which is the output anyway, so `training` changes nothing here; it is
    accepted for symmetry with `lstm`.
    """
    del training
    kernel, recurrent_kernel, bias = _weights_as_tensors(kernel, recurrent_kernel, bias)
    weights = (kernel, recurrent_kernel, bias)
    parts, loops = _layout(x, recurrent_kernel, jit_compile, batch_parts, feature_major)
    return _concat_parts(
        _simple_rnn(x_k, h0_k, *weights, mask_k, zero_output_for_mask, jit_compile, loops)
        for x_k, h0_k, mask_k in zip(*_split_batch(parts, x, h0, mask))
    )


def _simple_rnn(x, h0, kernel, recurrent_kernel, bias, mask, zero_output_for_mask, jit_compile, loops):
    mask_tm = _mask_time_major(mask)
    _, _, forward_fn, backward_fn = _KERNELS[bool(jit_compile)]
    forward_layout, backward_layout = _loop_options(loops)
    # The same threshold as the backward loop's weights on the left (see _simple_rnn_forward).
    forward_layout["one_pass"] = backward_layout["weights_left"]

    @tf.custom_gradient
    def forward(x, h0, kernel, recurrent_kernel, bias):
        outputs, h_last, h_ext = forward_fn(
            *_unwatched(x, h0, kernel, recurrent_kernel, bias), mask_tm, zero_output_for_mask, **forward_layout
        )

        def backward(d_outputs, dh_last):
            dh0, dz_ext = backward_fn(
                d_outputs, _or_zeros(dh_last, h0), recurrent_kernel, h_ext, mask_tm, zero_output_for_mask,
                **backward_layout,
            )
            dx, d_kernel, d_recurrent, d_bias = _weight_gradients(_after(h_ext, x), h_ext, dz_ext, kernel)
            return dx, dh0, d_kernel, d_recurrent, d_bias

        return (outputs, h_last), backward

    return forward(x, h0, kernel, recurrent_kernel, bias)
