"""What the fused kernels share: buffers, masks, the recurrent product, the weight gradients and the batch split.

Time-major throughout: (time, batch, features) arrays, so that a step reads one contiguous slice. Buffers hold one
value per timestep: under XLA a zeroed tensor updated in place (dynamic-update-slice), in plain TensorFlow a
TensorArray. State buffers keep the initial state in slot 0 (`with_initial`), so that slot t is the state before
step t, which is what the weight gradients pair with dz_t, without a shifted copy.
"""

import functools

import keras
import tensorflow as tf

# Without the barrier (see _keras_private) the recurrent matmul stays h @ U.
from custom_layers._keras_private import optimization_barrier


def weights_as_tensors(kernel, recurrent_kernel, bias):
    # Reading the variables here, outside the custom-gradient function, lets the tape route the gradients
    # returned for these tensors to the variables.
    kernel = tf.convert_to_tensor(kernel)
    recurrent_kernel = tf.convert_to_tensor(recurrent_kernel)
    bias = tf.zeros([tf.shape(kernel)[1]], kernel.dtype) if bias is None else tf.convert_to_tensor(bias)
    return kernel, recurrent_kernel, bias


def mask_time_major(mask):
    """(batch, time) mask -> (time, batch, 1) bool, ready to broadcast against (batch, units) states."""
    if mask is None:
        return None
    # Transposed as int8: oneDNN's transpose rejects bool on CPUs without AVX-512 and logs an error line about it.
    # expand_dims rather than [..., tf.newaxis]: LiteRT has no built-in for a bool StridedSlice with a new axis.
    return tf.expand_dims(tf.cast(tf.transpose(tf.cast(mask, tf.int8)), tf.bool), -1)


def time_major(x):
    return tf.transpose(x, [1, 0, 2])


def project_all_inputs(x_tm, kernel):
    """X W for all timesteps at once; x_tm is (time, batch, input_dim). The bias is added inside the step, where
    it fuses with the gate arithmetic, instead of costing a pass over this (time, batch, 4 units) array."""
    steps, batch = tf.shape(x_tm)[0], tf.shape(x_tm)[1]
    # Explicit sizes rather than -1 throughout: a slice of the batch may be empty (see split_batch).
    z = tf.matmul(tf.reshape(x_tm, [steps * batch, tf.shape(kernel)[0]]), kernel)
    return tf.reshape(z, [steps, batch, tf.shape(kernel)[1]])


def step_buffer(in_place, size, like):
    """Storage for one value per timestep: a zeroed tensor updated in place under XLA, a TensorArray otherwise."""
    if in_place:
        return tf.zeros(tf.concat([[size], tf.shape(like)], axis=0), like.dtype)
    # The LiteRT converter gives a TensorArray of unknown element shape the shape of its first write, computed where
    # the TensorArray is created: the written value (`like` for `with_initial`) must exist before it, or converting
    # fails with "operand #0 does not dominate this use" (go_backwards, so every Bidirectional layer).
    with tf.control_dependencies([like]):
        return tf.TensorArray(like.dtype, size=size)


def write(buffer, t, value):
    if isinstance(buffer, tf.TensorArray):
        return buffer.write(t, value)
    # XLA's dynamic-update-slice: in place, with no copy of the buffer.
    return keras.ops.slice_update(buffer, [t, 0, 0], value[tf.newaxis])


def stacked(buffer):
    return buffer.stack() if isinstance(buffer, tf.TensorArray) else buffer


def with_zero_last(in_place, steps, like):
    """A buffer of steps + 1 slots whose last slot stays zero (a zeroed tensor already is; a TensorArray is not)."""
    buffer = step_buffer(in_place, steps + 1, like)
    return buffer if in_place else buffer.write(steps, tf.zeros_like(like))


def with_initial(in_place, steps, initial):
    """A buffer of steps + 1 slots holding `initial` in slot 0; step t writes slot t + 1. Slot t is then the
    state *before* step t, which is what the weight gradients pair with dz_t, without a shifted copy."""
    return write(step_buffer(in_place, steps + 1, initial), 0, initial)


def weight_gradients(x, h_ext, dz_ext, kernel, dz_recurrent_ext=None):
    """dX, dW, dU, db as single matmuls over all timesteps.

    h_ext (time + 1, batch, units) holds h_{t-1} in slot t; dz_ext (time + 1, batch, gates) holds dz_t in slot t
    and zeros in the last slot, so dU = H_ext^T dZ_ext needs no shifted copy of H. A column of ones appended to X
    makes db the last row of the kernel gradient: one pass over dZ fewer than a separate sum. When the gradient
    reaching the recurrent product differs from the one reaching the input projection (GRU's reset gate multiplies
    the former), it comes as dz_recurrent_ext, laid out as dz_ext.
    """
    x_tm = time_major(x)
    steps, batch = tf.shape(x_tm)[0], tf.shape(x_tm)[1]
    input_dim, gate_units = tf.shape(kernel)[0], tf.shape(kernel)[1]
    dz_ext = tf.reshape(dz_ext, [(steps + 1) * batch, gate_units])
    dz = dz_ext[: steps * batch]  # without the zero slot; a leading-axis slice is a view, not a copy
    x_ones = tf.concat([x_tm, tf.ones_like(x_tm[:, :, :1])], axis=2)
    d_kernel_bias = tf.matmul(tf.reshape(x_ones, [steps * batch, input_dim + 1]), dz, transpose_a=True)
    if dz_recurrent_ext is not None:
        dz_recurrent_ext = tf.reshape(dz_recurrent_ext, [(steps + 1) * batch, tf.shape(dz_recurrent_ext)[2]])
    h_rows = tf.reshape(h_ext, [(steps + 1) * batch, tf.shape(h_ext)[2]])
    d_recurrent = tf.matmul(h_rows, dz_ext if dz_recurrent_ext is None else dz_recurrent_ext, transpose_a=True)
    dx = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), [steps, batch, input_dim])
    return time_major(dx), d_kernel_bias[:-1], d_recurrent, d_kernel_bias[-1]


def output_gradient_at(d_outputs, t, mask_tm, zero_output_for_mask):
    """The gradient reaching output t, read from the batch-major output gradient inside the loop: a strided
    read of (batch, units) per step instead of a transposed copy of the whole (batch, time, units) array."""
    d_out = d_outputs[:, t]
    if mask_tm is not None and zero_output_for_mask:
        d_out = tf.where(mask_tm[t], d_out, tf.zeros_like(d_out))
    return d_out


def after(first, tensor):
    """`tensor`, for ops that must not start before `first` exists. The backward pass's ops on the inputs alone
    (the transpose of X for the weight gradients) would otherwise run at the very start of a training step, on
    the thread that is about to launch the second batch half's forward kernel, and delay it."""
    with tf.control_dependencies([first]):
        return tf.identity(tensor)


def or_zeros(grad, like):
    return tf.zeros_like(like) if grad is None else grad


def outputs_from_states(h_ext, mask_tm, zero_output_for_mask, slice_last=False):
    """The outputs, batch-major, from the states buffer (initial state in slot 0). XLA compiles the default,
    slicing first, as a slice into a transposed layout and then a copy into the result's layout: two passes over
    the buffer. With slice_last (transpose, then drop the initial state) it is one pass; see
    `simple_rnn_kernel._forward` for why the LSTM kernels keep the default."""
    if mask_tm is not None and zero_output_for_mask:
        outputs_tm = h_ext[1:]
        return time_major(tf.where(mask_tm, outputs_tm, tf.zeros_like(outputs_tm)))
    return time_major(h_ext)[:, 1:] if slice_last else time_major(h_ext[1:])


def recurrent_product(weights, weights_left, transpose=False):
    """h -> h @ W for a per-step recurrent matmul, W = weights, or weights^T with `transpose` (the backward pass).

    weights_left (XLA only, see `layout`): compute it as (W^T h^T)^T. The CPU matmul repacks its
    right-hand operand on every call, and in h @ W that operand is the whole weight matrix, every step.
    The barrier keeps XLA from folding the two small transposes back into h @ W.
    """
    if not weights_left or optimization_barrier is None:
        # A transposed copy made once keeps the per-step matmul a plain one, faster than transpose_b.
        right = tf.transpose(weights) if transpose else weights
        return lambda h: tf.matmul(h, right)
    left = weights if transpose else tf.transpose(weights)
    return lambda h: tf.transpose(optimization_barrier(tf.matmul(left, h, transpose_b=True))[0])


def unwatched(*tensors):
    # An enclosing GradientTape would otherwise make tf.function build a differentiable forward pass (with
    # while-loop accumulators XLA cannot compile) that the custom gradient never uses.
    return [tf.stop_gradient(t) for t in tensors]


def kernels(*functions):
    """{jit_compile: the functions}: XLA-compiled with buffers updated in place, or plain TensorFlow with
    TensorArrays. `in_place` is each kernel function's keyword for the buffer kind."""
    return {
        False: tuple(functools.partial(f, in_place=False) for f in functions),
        True: tuple(xla_function(functools.partial(f, in_place=True)) for f in functions),
    }


def xla_function(function):
    # One compiled program per input shape; reduce_retracing keeps the Python-side traces to a few.
    return tf.function(function, jit_compile=True, reduce_retracing=True)


def split_batch(parts, *tensors):
    """Each tensor (or None) cut into `parts` slices along the batch axis, as one tuple per tensor."""
    if parts == 1:
        return [(tensor,) for tensor in tensors]
    batch = tf.shape(tensors[0])[0]
    sizes = [(batch + k) // parts for k in range(parts)]  # they sum to batch, the largest last
    return [(None,) * parts if tensor is None else tuple(tf.split(tensor, sizes)) for tensor in tensors]


def concat_parts(results):
    results = list(results)
    if len(results) == 1:
        return results[0]
    return tuple(tf.concat(pieces, axis=0) for pieces in zip(*results))


def loop_options(loops):
    # Python bools: one XLA program per value. Without XLA, `layout.plan` has already set both to False.
    return {"weights_left": loops["forward"]}, {"weights_left": loops["backward"]}
