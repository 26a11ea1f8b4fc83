"""The fused SimpleRNN kernel: `SimpleRNNCell` with tanh over the whole sequence in one call.

The forward pass records only h, which is the output anyway, so training and inference run the same loop.
"""

import tensorflow as tf

from custom_layers._keras_private import optimization_barrier
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
    time_major,
    unwatched,
    weight_gradients,
    weights_as_tensors,
    with_initial,
    with_zero_last,
    write,
)


def _forward(x, h0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask, weights_left=False,
             one_pass=False, in_place=True):  # fmt: skip
    z_x = project_all_inputs(time_major(x), kernel)
    steps = tf.shape(z_x)[0]
    recurrent = recurrent_product(recurrent_kernel, weights_left)

    # The loop carries the next step's product h U, made at the end of each step, as the backward loop carries
    # its product: in timelines both halves' loops then run on the intra-op threads, without YNNPACK's waits for
    # them (benchmarks/THROUGHPUT_NOTES.md, "Which thread runs a loop"). The product made after the last step is
    # wasted: one in `steps + 1`.
    def step(t, h, h_u, h_buf):
        h_new = tf.tanh(z_x[t] + h_u + bias)
        if mask_tm is not None:
            h_new = tf.where(mask_tm[t], h_new, h)
        return t + 1, h_new, recurrent(h_new), write(h_buf, t + 1, h_new)

    # With one_pass (XLA, from the backward loop's threshold of `layout`), the product before the loop has the
    # weights on the left, which XLA runs in Eigen, asynchronously (split across the intra-op threads), and the
    # outputs are made in one pass. Each change alone was slower: XLA's CPU runtime goes on from whichever thread
    # completes an asynchronous operation, and with the one-pass outputs alone both halves' loops ran on the
    # calling threads, where each per-step h U (YNNPACK) handed parts to the intra-op threads and waited for them
    # (benchmarks/THROUGHPUT_NOTES.md, "Which thread runs a loop"). `layout.plan` already leaves one_pass False without
    # XLA; without the barrier the initial product could not have the weights on the left, so neither change is
    # made.
    one_pass = one_pass and optimization_barrier is not None
    h_u = recurrent_product(recurrent_kernel, weights_left=True)(h0) if one_pass else recurrent(h0)
    _, h_last, _, h_buf = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), h0, h_u, with_initial(in_place, steps, h0))
    )
    h_ext = stacked(h_buf)
    return outputs_from_states(h_ext, mask_tm, zero_output_for_mask, slice_last=one_pass), h_last, h_ext


def _backward(d_outputs, dh_last, recurrent_kernel, h_ext, mask_tm, zero_output_for_mask,
                         weights_left=False, in_place=True):  # fmt: skip
    """The loop of the backward pass: dh_0 and dz_ext for `weight_gradients`."""
    steps = tf.shape(h_ext)[0] - 1  # h_ext holds the initial state too
    recurrent_t = recurrent_product(recurrent_kernel, weights_left, transpose=True)

    def step(t, dh_next, dz_buf):
        dh = dh_next
        if d_outputs is not None:  # an unconnected output's gradient may come in as None
            dh = dh + output_gradient_at(d_outputs, t, mask_tm, zero_output_for_mask)
        if mask_tm is not None:
            zeros = tf.zeros_like(dh)
            dh, dh_skip = tf.where(mask_tm[t], dh, zeros), tf.where(mask_tm[t], zeros, dh)
        h = h_ext[t + 1]
        dz = dh * (1 - h * h)
        dh_prev = recurrent_t(dz)
        if mask_tm is not None:
            dh_prev = dh_prev + dh_skip
        return t - 1, dh_prev, write(dz_buf, t, dz)

    dz_buf = with_zero_last(in_place, steps, dh_last)
    _, dh0, dz_buf = tf.while_loop(lambda t, *_: t >= 0, step, (steps - 1, dh_last, dz_buf))
    return dh0, stacked(dz_buf)


_KERNELS = kernels(_forward, _backward)


def simple_rnn(
    x, h0, kernel, recurrent_kernel, bias, mask=None, zero_output_for_mask=False, jit_compile=True, training=True,
    batch_parts=None, feature_major=None,
):  # fmt: skip
    """Runs the tanh SimpleRNN over a whole sequence; arguments as `custom_layers.fused.lstm`. Returns (outputs, h_T).

    The forward pass records only h, which is the output anyway, so `training` changes nothing here; it is
    accepted for symmetry with `lstm`.
    """
    del training
    kernel, recurrent_kernel, bias = weights_as_tensors(kernel, recurrent_kernel, bias)
    weights = (kernel, recurrent_kernel, bias)
    parts, loops = layout.plan("simple_rnn", x, recurrent_kernel, jit_compile, batch_parts, feature_major)
    return concat_parts(
        _simple_rnn(x_k, h0_k, *weights, mask_k, zero_output_for_mask, jit_compile, loops)
        for x_k, h0_k, mask_k in zip(*split_batch(parts, x, h0, mask))
    )


def _simple_rnn(x, h0, kernel, recurrent_kernel, bias, mask, zero_output_for_mask, jit_compile, loops):
    mask_tm = mask_time_major(mask)
    forward_fn, backward_fn = _KERNELS[bool(jit_compile)]
    forward_layout, backward_layout = loop_options(loops)
    # The same threshold as the backward loop's weights on the left (see _forward).
    forward_layout["one_pass"] = backward_layout["weights_left"]

    @tf.custom_gradient
    def forward(x, h0, kernel, recurrent_kernel, bias):
        outputs, h_last, h_ext = forward_fn(
            *unwatched(x, h0, kernel, recurrent_kernel, bias), mask_tm, zero_output_for_mask, **forward_layout
        )

        def backward(d_outputs, dh_last):
            dh0, dz_ext = backward_fn(
                d_outputs,
                or_zeros(dh_last, h0),
                recurrent_kernel,
                h_ext,
                mask_tm,
                zero_output_for_mask,
                **backward_layout,
            )
            dx, d_kernel, d_recurrent, d_bias = weight_gradients(after(h_ext, x), h_ext, dz_ext, kernel)
            return dx, dh0, d_kernel, d_recurrent, d_bias

        return (outputs, h_last), backward

    return forward(x, h0, kernel, recurrent_kernel, bias)
