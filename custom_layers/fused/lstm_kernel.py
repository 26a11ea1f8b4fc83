"""The fused LSTM kernel: the whole sequence of `LSTMCell`'s standard configuration in one call.

The equations are `LSTMCell`'s with tanh/sigmoid activations, no peephole and no layer norm; recurrent dropout
is not covered (the layer steps the cell for it). One tanh over all four gate blocks, with a per-block scale and
shift (sigmoid(a) = (1 + tanh(a / 2)) / 2), stands for three sigmoids and a tanh, in the forward and backward loops.
Training records the activated gates (under XLA in place of the input projection, once a step has read it) and
the cell states; inference records nothing and, from `layout.WEIGHTS_LEFT_FROM["lstm"]["inference"]`, keeps its
states feature-major (`_infer_feature_major`).
"""

import tensorflow as tf

from custom_layers.fused import layout
from custom_layers.fused._shared import (
    after,
    concat_parts,
    kernels,
    loop_options,
    mask_time_major,
    or_zeros,
    output_gradient_at,
    outputs_from_states,
    project_all_inputs,
    recurrent_product,
    split_batch,
    stacked,
    step_buffer,
    time_major,
    unwatched,
    weight_gradients,
    weights_as_tensors,
    with_initial,
    with_zero_last,
    write,
    xla_function,
)


def _gate_affine(units, dtype):
    """Scale and shift so that tanh(z * scale) * scale + shift gives (i, f, g, o) from (z_i, z_f, z_c, z_o)."""
    half, one = tf.fill([units], tf.constant(0.5, dtype)), tf.ones([units], dtype)
    scale = tf.concat([half, half, one, half], axis=0)
    shift = tf.concat([half, half, tf.zeros([units], dtype), half], axis=0)
    return scale, shift


def _forward(x, h0, c0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask, keep_gates=True,
                  weights_left=False, in_place=True):  # fmt: skip
    """keep_gates=False (inference) skips recording what the backward pass needs; it recomputes it if asked.

    in_place (XLA only): the activated gates of step t overwrite z_x[t] once it has been read, so the saved gates
    cost no buffer of their own.
    """
    z_x = project_all_inputs(time_major(x), kernel)
    steps = tf.shape(z_x)[0]
    units = tf.shape(h0)[1]
    # sigmoid(a) = (1 + tanh(a / 2)) / 2: one tanh over all four blocks instead of three sigmoids and a tanh.
    scale, shift = _gate_affine(units, x.dtype)
    reuse_z = in_place and keep_gates
    recurrent = recurrent_product(recurrent_kernel, weights_left)

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
            gates_buf, c_buf = write(gates_buf, t, gates), write(c_buf, t + 1, c_new)
        return t + 1, h_new, c_new, gates_buf, write(h_buf, t + 1, h_new), c_buf

    if not keep_gates:
        gates_buf = c_buf = tf.zeros([0], x.dtype)  # unused loop slots
    else:
        gates_buf = z_x if reuse_z else step_buffer(False, steps, z_x[0])
        c_buf = with_initial(in_place, steps, c0)
    _, h_last, c_last, gates_buf, h_buf, c_buf = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), h0, c0, gates_buf, with_initial(in_place, steps, h0), c_buf)
    )
    h_ext = stacked(h_buf)
    outputs = outputs_from_states(h_ext, mask_tm, zero_output_for_mask)
    if not keep_gates:
        return outputs, h_last, c_last
    return outputs, h_last, c_last, stacked(gates_buf), h_ext, stacked(c_buf)


def _infer_feature_major(x, h0, c0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask):
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
        # One tanh over all four gate blocks, as in _forward. Four activations of their own, fused with the
        # cell update, made XLA interleave four tanh streams in one loop that spilled registers.
        i, f, g, o = tf.split(tf.tanh(z * scale) * scale + shift, 4, axis=0)
        c_new = f * c + i * g
        h_new = o * tf.tanh(c_new)
        if mask_fm is not None:
            h_new = tf.where(mask_fm[t], h_new, h)
            c_new = tf.where(mask_fm[t], c_new, c)
        return t + 1, h_new, c_new, write(h_buf, t, h_new)

    h_buf = tf.zeros([steps, units, batch], x.dtype)
    _, h_last, c_last, h_buf = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), tf.transpose(h0), tf.transpose(c0), h_buf)
    )
    outputs = tf.transpose(h_buf, [2, 0, 1])
    if mask_tm is not None and zero_output_for_mask:
        outputs = tf.where(tf.transpose(mask_tm, [1, 0, 2]), outputs, tf.zeros_like(outputs))
    return outputs, tf.transpose(h_last), tf.transpose(c_last)


def _backward(d_outputs, dh_last, dc_last, recurrent_kernel, gates_tm, h_ext, c_ext, mask_tm,
                   zero_output_for_mask, weights_left=False, in_place=True):  # fmt: skip
    """The loop of the backward pass: dh_0, dc_0 and dz_ext for `weight_gradients`."""
    steps = tf.shape(gates_tm)[0]
    recurrent_t = recurrent_product(recurrent_kernel, weights_left, transpose=True)
    scale, shift = _gate_affine(tf.shape(dh_last)[1], dh_last.dtype)
    scale_squared = scale * scale

    def step(t, dh_next, dc_next, dz_buf):
        dh = dh_next
        if d_outputs is not None:  # an unconnected output's gradient may come in as None
            dh = dh + output_gradient_at(d_outputs, t, mask_tm, zero_output_for_mask)
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
        return t - 1, dh_prev, dc_prev, write(dz_buf, t, dz)

    # One slot more than steps, left zero: see weight_gradients.
    dz_buf = with_zero_last(in_place, steps, gates_tm[0])
    _, dh0, dc0, dz_buf = tf.while_loop(lambda t, *_: t >= 0, step, (steps - 1, dh_last, dc_last, dz_buf))
    return dh0, dc0, stacked(dz_buf)


# In-place buffer updates are XLA's dynamic-update-slice; plain TensorFlow gets TensorArrays.
_KERNELS = kernels(_forward, _backward)
_INFER_FEATURE_MAJOR = xla_function(_infer_feature_major)


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
        batch_parts: run the batch as this many independent slices side by side; None chooses (`layout`).
        feature_major: under XLA, compute the per-step products of both loops as U^T h^T, with the states kept
            as (units, batch) throughout for inference (`_infer_feature_major`); None chooses per loop
            (`layout`).

    Returns:
        (outputs (batch, time, units), h_T, c_T).
    """
    kernel, recurrent_kernel, bias = weights_as_tensors(kernel, recurrent_kernel, bias)
    weights = (kernel, recurrent_kernel, bias)
    parts, loops = layout.plan("lstm", x, recurrent_kernel, jit_compile, batch_parts, feature_major)
    return concat_parts(
        _lstm(x_k, h0_k, c0_k, *weights, mask_k, zero_output_for_mask, jit_compile, training, loops)
        for x_k, h0_k, c0_k, mask_k in zip(*split_batch(parts, x, h0, c0, mask))
    )


def _lstm(x, h0, c0, kernel, recurrent_kernel, bias, mask, zero_output_for_mask, jit_compile, training, loops):
    mask_tm = mask_time_major(mask)
    forward_fn, backward_fn = _KERNELS[bool(jit_compile)]
    forward_layout, backward_layout = loop_options(loops)

    @tf.custom_gradient
    def forward(x, h0, c0, kernel, recurrent_kernel, bias):
        inputs = unwatched(x, h0, c0, kernel, recurrent_kernel, bias)
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
                d_outputs, or_zeros(dh_last, h0), or_zeros(dc_last, c0),
                recurrent_kernel, gates_tm, h_ext, c_ext, mask_tm, zero_output_for_mask, **backward_layout,
            )  # fmt: skip
            dx, d_kernel, d_recurrent, d_bias = weight_gradients(after(h_ext, x), h_ext, dz_ext, kernel)
            return dx, dh0, dc0, d_kernel, d_recurrent, d_bias

        return (outputs, h_last, c_last), backward

    return forward(x, h0, c0, kernel, recurrent_kernel, bias)
