"""The fused GRU kernel: `GRUCell` with tanh/sigmoid over the whole sequence in one call, both variants.

With reset_after (Keras' default), per step: u = h U + b_h (one product over the three blocks z, r, h),
z, r = sigmoid(x_{z,r} + u_{z,r}), g = tanh(x_h + r * u_h), h' = z * h + (1 - z) * g. Without it the candidate's
product needs the reset gate first: z, r from h U_{z,r}, then g = tanh(x_h + (r * h) U_h), two dependent products.

Training records [z, r, g] per step (under XLA in place of the input projection, once a step has read it), and
u_h with reset_after (the reset gate's derivative needs it). From `layout.WEIGHTS_LEFT_FROM["gru"]["inference"]`,
inference keeps its state feature-major and records nothing (`_infer_feature_major`). The backward loop forms

    dz = dh (h_prev - g) z (1 - z)        dg = dh (1 - z) (1 - g^2)
    reset_after:  dr = dg u_h r (1 - r);  the input projection gets [dz, dr, dg], the recurrent product
                  [dz, dr, dg r], and dh_prev = dh z + [dz, dr, dg r] U^T
    reset_before: d(r h) = dg U_h^T;  dr = d(r h) h_prev r (1 - r);  both get [dz, dr, dg] (U_h pairs with
                  r h_prev), and dh_prev = dh z + d(r h) r + [dz, dr] U_{z,r}^T

and the weight gradients are single matmuls after the loop (`_shared.weight_gradients`).
"""

import tensorflow as tf

from custom_layers.fused import layout
from custom_layers.fused._shared import (
    after,
    concat_parts,
    kernels,
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
    with_initial,
    with_zero_last,
    write,
    xla_function,
)


def _sigmoid(a):
    # sigmoid(a) = (1 + tanh(a / 2)) / 2, as in the LSTM kernels: XLA compiles tanh as a rational approximation,
    # sigmoid as an exp and a division. Plain TensorFlow (and LiteRT) has sigmoid as one op, so the XLA kernels
    # only use this form.
    return tf.tanh(a * 0.5) * 0.5 + 0.5


def _forward(x, h0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask, reset_after, keep_gates=True,
             weights_left=False, in_place=True):  # fmt: skip
    """keep_gates=False (inference) skips recording what the backward pass needs; it recomputes it if asked.

    Returns (outputs, h_T) and, with keep_gates, the [z, r, g] buffer, the u_h buffer (reset_after; otherwise an
    empty placeholder) and the states buffer (initial state in slot 0).
    """
    z_x = project_all_inputs(time_major(x), kernel)
    steps = tf.shape(z_x)[0]
    units = tf.shape(h0)[1]
    if reset_after:
        input_bias, recurrent_bias = bias[0], bias[1]
        recurrent = recurrent_product(recurrent_kernel, weights_left)
    else:
        input_bias = bias
        recurrent_zr = recurrent_product(recurrent_kernel[:, : 2 * units], weights_left)
        recurrent_h = recurrent_product(recurrent_kernel[:, 2 * units :], weights_left)
    reuse_z = in_place and keep_gates
    sigmoid = _sigmoid if in_place else tf.sigmoid

    def step(t, h, gates_buf, u_h_buf, h_buf):
        x_t = (gates_buf if reuse_z else z_x)[t] + input_bias
        if reset_after:
            u = recurrent(h) + recurrent_bias
            zr = sigmoid(x_t[:, : 2 * units] + u[:, : 2 * units])
            u_h = u[:, 2 * units :]
            z, r = tf.split(zr, 2, axis=1)
            g = tf.tanh(x_t[:, 2 * units :] + r * u_h)
        else:
            zr = sigmoid(x_t[:, : 2 * units] + recurrent_zr(h))
            z, r = tf.split(zr, 2, axis=1)
            g = tf.tanh(x_t[:, 2 * units :] + recurrent_h(r * h))
        h_new = g + z * (h - g)
        if mask_tm is not None:
            h_new = tf.where(mask_tm[t], h_new, h)
        if keep_gates:
            gates_buf = write(gates_buf, t, tf.concat([zr, g], axis=1))
            if reset_after:
                u_h_buf = write(u_h_buf, t, u_h)
        return t + 1, h_new, gates_buf, u_h_buf, write(h_buf, t + 1, h_new)

    placeholder = tf.zeros([0], x.dtype)  # an unused loop slot
    gates_buf = u_h_buf = placeholder
    if keep_gates:
        gates_buf = z_x if reuse_z else step_buffer(False, steps, z_x[0])
        if reset_after:
            u_h_buf = step_buffer(in_place, steps, h0)
    _, h_last, gates_buf, u_h_buf, h_buf = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), h0, gates_buf, u_h_buf, with_initial(in_place, steps, h0))
    )
    h_ext = stacked(h_buf)
    outputs = outputs_from_states(h_ext, mask_tm, zero_output_for_mask)
    if not keep_gates:
        return outputs, h_last
    return outputs, h_last, stacked(gates_buf), stacked(u_h_buf) if reset_after else placeholder, h_ext


def _infer_feature_major(x, h0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask, reset_after):
    """Inference forward (XLA only) with the state kept feature-major, (units, batch).

    The per-step products are then W^T x_t and U^T h^T with the weights as the left operand, which the CPU matmul
    does not repack at every step (it does repack a right-hand operand), and each gate is a contiguous block of
    rows: z and r, the first 2 units rows, take one `_sigmoid`.
    """
    x_fm = tf.transpose(x, [1, 2, 0])  # (time, input_dim, batch)
    kernel_t, recurrent_kernel_t = tf.transpose(kernel), tf.transpose(recurrent_kernel)
    steps, batch, units = tf.shape(x_fm)[0], tf.shape(x_fm)[2], tf.shape(h0)[1]
    mask_fm = None if mask_tm is None else tf.transpose(mask_tm, [0, 2, 1])  # (time, 1, batch)
    if reset_after:
        input_bias, recurrent_bias = bias[0][:, tf.newaxis], bias[1][:, tf.newaxis]
    else:
        input_bias = bias[:, tf.newaxis]
        recurrent_zr_t, recurrent_h_t = recurrent_kernel_t[: 2 * units], recurrent_kernel_t[2 * units :]

    def step(t, h, h_buf):
        x_t = tf.matmul(kernel_t, x_fm[t]) + input_bias
        if reset_after:
            u = tf.matmul(recurrent_kernel_t, h) + recurrent_bias
            zr = _sigmoid(x_t[: 2 * units] + u[: 2 * units])
            z, r = tf.split(zr, 2, axis=0)
            g = tf.tanh(x_t[2 * units :] + r * u[2 * units :])
        else:
            zr = _sigmoid(x_t[: 2 * units] + tf.matmul(recurrent_zr_t, h))
            z, r = tf.split(zr, 2, axis=0)
            g = tf.tanh(x_t[2 * units :] + tf.matmul(recurrent_h_t, r * h))
        h_new = g + z * (h - g)
        if mask_fm is not None:
            h_new = tf.where(mask_fm[t], h_new, h)
        return t + 1, h_new, write(h_buf, t, h_new)

    h_buf = tf.zeros([steps, units, batch], x.dtype)
    _, h_last, h_buf = tf.while_loop(lambda t, *_: t < steps, step, (tf.constant(0), tf.transpose(h0), h_buf))
    outputs = tf.transpose(h_buf, [2, 0, 1])
    if mask_tm is not None and zero_output_for_mask:
        outputs = tf.where(tf.transpose(mask_tm, [1, 0, 2]), outputs, tf.zeros_like(outputs))
    return outputs, tf.transpose(h_last)


def _backward(d_outputs, dh_last, recurrent_kernel, gates_tm, u_h_tm, h_ext, mask_tm, zero_output_for_mask,
              reset_after, weights_left=False, in_place=True):  # fmt: skip
    """The loop of the backward pass: dh_0, the input projection's dz_ext and (reset_after) the recurrent
    product's, for `weight_gradients`."""
    steps = tf.shape(gates_tm)[0]
    units = tf.shape(dh_last)[1]
    if reset_after:
        recurrent_t = recurrent_product(recurrent_kernel, weights_left, transpose=True)
    else:
        recurrent_zr_t = recurrent_product(recurrent_kernel[:, : 2 * units], weights_left, transpose=True)
        recurrent_h_t = recurrent_product(recurrent_kernel[:, 2 * units :], weights_left, transpose=True)

    def step(t, dh_next, dz_buf, du_buf):
        dh = dh_next
        if d_outputs is not None:  # an unconnected output's gradient may come in as None
            dh = dh + output_gradient_at(d_outputs, t, mask_tm, zero_output_for_mask)
        if mask_tm is not None:
            # A masked step copied its state forward: its gradient skips it.
            zeros = tf.zeros_like(dh)
            dh, dh_skip = tf.where(mask_tm[t], dh, zeros), tf.where(mask_tm[t], zeros, dh)
        # The gate derivatives are formed here, from the saved gates, rather than as whole (time, batch, 3 units)
        # arrays before the loop: that would be several more passes over memory.
        z, r, g = tf.split(gates_tm[t], 3, axis=1)
        h_prev = h_ext[t]
        dz = dh * (h_prev - g) * z * (1 - z)
        dg = dh * (1 - z) * (1 - g * g)
        if reset_after:
            u_h = u_h_tm[t]
            dr = dg * u_h * r * (1 - r)
            du = tf.concat([dz, dr, dg * r], axis=1)
            dh_prev = dh * z + recurrent_t(du)
            du_buf = write(du_buf, t, du)
        else:
            d_rh = recurrent_h_t(dg)
            dr = d_rh * h_prev * r * (1 - r)
            dh_prev = dh * z + d_rh * r + recurrent_zr_t(tf.concat([dz, dr], axis=1))
        if mask_tm is not None:
            dh_prev = dh_prev + dh_skip
        return t - 1, dh_prev, write(dz_buf, t, tf.concat([dz, dr, dg], axis=1)), du_buf

    # One slot more than steps, left zero: see weight_gradients.
    dz_buf = with_zero_last(in_place, steps, gates_tm[0])
    du_buf = with_zero_last(in_place, steps, gates_tm[0]) if reset_after else tf.zeros([0], dh_last.dtype)
    _, dh0, dz_buf, du_buf = tf.while_loop(lambda t, *_: t >= 0, step, (steps - 1, dh_last, dz_buf, du_buf))
    return dh0, stacked(dz_buf), stacked(du_buf) if reset_after else None


_KERNELS = kernels(_forward, _backward)
_INFER_FEATURE_MAJOR = xla_function(_infer_feature_major)


def gru(
    x, h0, kernel, recurrent_kernel, bias, reset_after=True, mask=None, zero_output_for_mask=False, jit_compile=True,
    training=True, batch_parts=None, feature_major=None,
):  # fmt: skip
    """Runs the GRU over a whole sequence.

    Args:
        x: (batch, time, input_dim) inputs.
        h0: (batch, units) initial state.
        kernel, recurrent_kernel, bias: the `GRUCell` weights, gate order (z, r, h); bias (2, 3 units) with
            reset_after, (3 units,) without, or None.
        reset_after: the variant (see `GRUCell`).
        mask, zero_output_for_mask, jit_compile, training, batch_parts: as in `custom_layers.fused.lstm`.
        feature_major: under XLA, compute the per-step products of both loops as U^T h^T, with the state kept as
            (units, batch) throughout for inference (`_infer_feature_major`); None chooses per loop (`layout`).

    Returns:
        (outputs (batch, time, units), h_T).
    """
    kernel = tf.convert_to_tensor(kernel)
    recurrent_kernel = tf.convert_to_tensor(recurrent_kernel)
    gate_units = tf.shape(kernel)[1]
    if bias is None:
        bias = tf.zeros([2, gate_units] if reset_after else [gate_units], kernel.dtype)
    bias = tf.convert_to_tensor(bias)
    weights = (kernel, recurrent_kernel, bias)
    parts, loops = layout.plan("gru", x, recurrent_kernel, jit_compile, batch_parts, feature_major)
    return concat_parts(
        _gru(x_k, h0_k, *weights, bool(reset_after), mask_k, zero_output_for_mask, jit_compile, training, loops)
        for x_k, h0_k, mask_k in zip(*split_batch(parts, x, h0, mask))
    )


def _gru(x, h0, kernel, recurrent_kernel, bias, reset_after, mask, zero_output_for_mask, jit_compile, training,
         loops):  # fmt: skip
    mask_tm = mask_time_major(mask)
    forward_fn, backward_fn = _KERNELS[bool(jit_compile)]
    options = {"reset_after": reset_after}

    @tf.custom_gradient
    def forward(x, h0, kernel, recurrent_kernel, bias):
        inputs = unwatched(x, h0, kernel, recurrent_kernel, bias)
        saved = None
        if training:
            outputs, h_last, *saved = forward_fn(
                *inputs, mask_tm, zero_output_for_mask, **options, weights_left=loops["forward"]
            )
        elif loops["inference"]:
            outputs, h_last = _INFER_FEATURE_MAJOR(*inputs, mask_tm, zero_output_for_mask, reset_after)
        else:
            # Batch-major inference under XLA records the gates too and drops them: without those writes XLA
            # recomputes the gate activations in each fusion that reads them, which made the loop slower than the
            # recording one (benchmarks/THROUGHPUT_NOTES.md, GRU). The feature-major loop has one fusion per step.
            outputs, h_last = forward_fn(
                *inputs, mask_tm, zero_output_for_mask, **options, keep_gates=bool(jit_compile)
            )[:2]  # fmt: skip

        def backward(d_outputs, dh_last):
            gates_tm, u_h_tm, h_ext = (
                saved
                or forward_fn(*inputs, mask_tm, zero_output_for_mask, **options, weights_left=loops["forward"])[2:]
            )
            dh0, dz_ext, du_ext = backward_fn(
                d_outputs, or_zeros(dh_last, h0), recurrent_kernel, gates_tm, u_h_tm, h_ext, mask_tm,
                zero_output_for_mask, **options, weights_left=loops["backward"],
            )  # fmt: skip
            dx, d_kernel, d_recurrent, d_input_bias = weight_gradients(
                after(h_ext, x), h_ext, dz_ext, kernel, dz_recurrent_ext=du_ext
            )
            if reset_after:
                du = du_ext[:-1]  # without the zero slot
                d_bias = tf.stack([d_input_bias, tf.reduce_sum(du, axis=[0, 1])])
            else:
                # U_h pairs with r * h_prev, not with h_prev: its block of dU comes from its own product.
                units = tf.shape(h0)[1]
                steps, batch = tf.shape(gates_tm)[0], tf.shape(gates_tm)[1]
                rh = gates_tm[:, :, units : 2 * units] * h_ext[:-1]
                dg = dz_ext[:-1, :, 2 * units :]
                d_recurrent_h = tf.matmul(
                    tf.reshape(rh, [steps * batch, units]), tf.reshape(dg, [steps * batch, units]), transpose_a=True
                )
                d_recurrent = tf.concat([d_recurrent[:, : 2 * units], d_recurrent_h], axis=1)
                d_bias = d_input_bias
            return dx, dh0, d_kernel, d_recurrent, d_bias

        return (outputs, h_last), backward

    return forward(x, h0, kernel, recurrent_kernel, bias)
