"""Sequence-level LSTM and SimpleRNN kernels for the TensorFlow backend.

The per-step cell inside `keras.layers.RNN` pays for everything at every timestep: the input projection x_t W,
the weight-gradient accumulation in backprop and a handful of small ops. Here the work that does not depend on
the recurrence is hoisted out of the time loop:

- forward: Z_x = X W + b for all timesteps is one (batch*time, input_dim) x (input_dim, 4 units) matmul; the loop
  only does h_{t-1} U and the gate nonlinearities;
- backward (`tf.custom_gradient`): the loop only carries dh, dc back through time and records dz_t; then
  dW = X^T dZ, dU = H_{prev}^T dZ, db = sum dZ and dX = dZ W^T are single large matmuls, and every factor of dz_t
  that is known from the forward pass (gate derivatives, tanh(c_t)) is computed once for all timesteps.

The time loops (and the matmuls around them) run as XLA-compiled functions when `jit_compile=True`: on CPU that
roughly halves the cost of the small per-step matmul and fuses the gate nonlinearities; `jit_compile=False`
keeps plain TensorFlow ops, for consumers without XLA (e.g. TensorFlow Serving's default CPU build).

The equations are those of `LSTMCell` / `SimpleRNNCell` (tanh/sigmoid activations, no peephole, no layer norm,
no recurrent dropout); the layers fall back to the cell loop otherwise. Masking follows Keras: a masked step
carries the state and repeats the previous output (or outputs zeros with `zero_output_for_mask`).
"""

import tensorflow as tf


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


def _project_inputs(x_tm, kernel, bias):
    """X W + b for all timesteps at once; x_tm is (time, batch, input_dim)."""
    steps, batch = tf.shape(x_tm)[0], tf.shape(x_tm)[1]
    z = tf.matmul(tf.reshape(x_tm, [steps * batch, -1]), kernel)
    if bias is not None:
        z = z + bias
    return tf.reshape(z, [steps, batch, tf.shape(kernel)[1]])


def _weight_gradients(x_tm, h_prev_tm, dz_tm, kernel):
    """dX, dW, dU, db from the per-step pre-activation gradients dZ, each as one matmul over all timesteps."""
    steps, batch = tf.shape(dz_tm)[0], tf.shape(dz_tm)[1]
    dz = tf.reshape(dz_tm, [steps * batch, -1])
    x = tf.reshape(x_tm, [steps * batch, -1])
    h_prev = tf.reshape(h_prev_tm, [steps * batch, -1])
    d_kernel = tf.matmul(x, dz, transpose_a=True)
    d_recurrent = tf.matmul(h_prev, dz, transpose_a=True)
    d_bias = tf.reduce_sum(dz, axis=0)
    dx = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), [steps, batch, -1])
    return dx, d_kernel, d_recurrent, d_bias


def _previous(initial, sequence_tm):
    """The sequence shifted one step later in time, starting with `initial`: h_{t-1} for every t."""
    return tf.concat([initial[tf.newaxis], sequence_tm[:-1]], axis=0)


def _output_gradient(d_outputs, like_tm, mask_tm, zero_output_for_mask):
    if d_outputs is None:
        return tf.zeros_like(like_tm)
    d_out = _time_major(d_outputs)
    if mask_tm is not None and zero_output_for_mask:
        d_out = tf.where(mask_tm, d_out, tf.zeros_like(d_out))
    return d_out


def _or_zeros(grad, like):
    return tf.zeros_like(like) if grad is None else grad



def _gate_affine(units, dtype):
    """Scale and shift so that tanh(z * scale) * scale + shift gives (i, f, g, o) from (z_i, z_f, z_c, z_o)."""
    half, one = tf.fill([units], tf.constant(0.5, dtype)), tf.ones([units], dtype)
    scale = tf.concat([half, half, one, half], axis=0)
    shift = tf.concat([half, half, tf.zeros([units], dtype), half], axis=0)
    return scale, shift


def _lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask, keep_gates=True):
    """keep_gates=False (inference) skips recording what the backward pass needs; it recomputes it if asked."""
    x_tm = _time_major(x)
    z_x = _project_inputs(x_tm, kernel, bias)
    steps = tf.shape(z_x)[0]
    units = tf.shape(h0)[1]
    # sigmoid(a) = (1 + tanh(a / 2)) / 2: one tanh over all four blocks instead of three sigmoids and a tanh.
    scale, shift = _gate_affine(units, x.dtype)

    def step(t, h, c, gates_ta, h_ta, c_ta):
        gates = tf.tanh((z_x[t] + tf.matmul(h, recurrent_kernel)) * scale) * scale + shift
        i, f, g, o = tf.split(gates, 4, axis=1)
        c_new = f * c + i * g
        h_new = o * tf.tanh(c_new)
        if mask_tm is not None:
            h_new = tf.where(mask_tm[t], h_new, h)
            c_new = tf.where(mask_tm[t], c_new, c)
        if keep_gates:
            gates_ta, c_ta = gates_ta.write(t, gates), c_ta.write(t, c_new)
        return t + 1, h_new, c_new, gates_ta, h_ta.write(t, h_new), c_ta

    def array(size):
        return tf.TensorArray(x.dtype, size=size)

    kept = steps if keep_gates else 0
    _, h_last, c_last, gates_ta, h_ta, c_ta = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), h0, c0, array(kept), array(steps), array(kept))
    )
    h_tm = h_ta.stack()
    outputs_tm = h_tm
    if mask_tm is not None and zero_output_for_mask:
        outputs_tm = tf.where(mask_tm, h_tm, tf.zeros_like(h_tm))
    if not keep_gates:
        return _time_major(outputs_tm), h_last, c_last
    return _time_major(outputs_tm), h_last, c_last, gates_ta.stack(), h_tm, c_ta.stack()


def _lstm_backward(d_out_tm, dh_last, dc_last, x, h0, c0, kernel, recurrent_kernel, gates_tm, h_tm, c_tm, mask_tm):
    x_tm = _time_major(x)
    steps = tf.shape(x_tm)[0]
    recurrent_kernel_t = tf.transpose(recurrent_kernel)  # a plain matmul per step is faster than transpose_b
    i, f, g, o = tf.split(gates_tm, 4, axis=2)
    tanh_c = tf.tanh(c_tm)
    # dz_t = [dc*g*i', dc*c_{t-1}*f', dc*i*g', dh*tanh(c)*o']: every factor but dc, dh is known from the forward
    # pass, so it is computed once for all timesteps instead of inside the loop.
    dz_factor = tf.concat(
        [g * i * (1 - i), _previous(c0, c_tm) * f * (1 - f), i * (1 - g * g), tanh_c * o * (1 - o)], axis=2
    )
    dc_from_h = o * (1 - tanh_c * tanh_c)

    def step(t, dh_next, dc_next, dz_ta):
        dh = d_out_tm[t] + dh_next
        dc = dc_next
        if mask_tm is not None:
            # A masked step copied its states forward: their gradients skip it.
            zeros = tf.zeros_like(dh)
            dh, dh_skip = tf.where(mask_tm[t], dh, zeros), tf.where(mask_tm[t], zeros, dh)
            dc, dc_skip = tf.where(mask_tm[t], dc, zeros), tf.where(mask_tm[t], zeros, dc)
        dc = dc + dh * dc_from_h[t]
        dz = tf.concat([dc, dc, dc, dh], axis=1) * dz_factor[t]
        dh_prev = tf.matmul(dz, recurrent_kernel_t)
        dc_prev = dc * f[t]
        if mask_tm is not None:
            dh_prev, dc_prev = dh_prev + dh_skip, dc_prev + dc_skip
        return t - 1, dh_prev, dc_prev, dz_ta.write(t, dz)

    _, dh0, dc0, dz_ta = tf.while_loop(
        lambda t, *_: t >= 0, step, (steps - 1, dh_last, dc_last, tf.TensorArray(x.dtype, size=steps))
    )
    dx_tm, d_kernel, d_recurrent, d_bias = _weight_gradients(x_tm, _previous(h0, h_tm), dz_ta.stack(), kernel)
    return _time_major(dx_tm), dh0, dc0, d_kernel, d_recurrent, d_bias


def _simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, mask_tm, zero_output_for_mask):
    x_tm = _time_major(x)
    z_x = _project_inputs(x_tm, kernel, bias)
    steps = tf.shape(z_x)[0]

    def step(t, h, h_ta):
        h_new = tf.tanh(z_x[t] + tf.matmul(h, recurrent_kernel))
        if mask_tm is not None:
            h_new = tf.where(mask_tm[t], h_new, h)
        return t + 1, h_new, h_ta.write(t, h_new)

    _, h_last, h_ta = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0), h0, tf.TensorArray(x.dtype, size=steps))
    )
    h_tm = h_ta.stack()
    outputs_tm = h_tm
    if mask_tm is not None and zero_output_for_mask:
        outputs_tm = tf.where(mask_tm, h_tm, tf.zeros_like(h_tm))
    return _time_major(outputs_tm), h_last, h_tm


def _simple_rnn_backward(d_out_tm, dh_last, x, h0, kernel, recurrent_kernel, h_tm, mask_tm):
    x_tm = _time_major(x)
    steps = tf.shape(x_tm)[0]
    recurrent_kernel_t = tf.transpose(recurrent_kernel)
    tanh_derivative = 1 - h_tm * h_tm

    def step(t, dh_next, dz_ta):
        dh = d_out_tm[t] + dh_next
        if mask_tm is not None:
            zeros = tf.zeros_like(dh)
            dh, dh_skip = tf.where(mask_tm[t], dh, zeros), tf.where(mask_tm[t], zeros, dh)
        dz = dh * tanh_derivative[t]
        dh_prev = tf.matmul(dz, recurrent_kernel_t)
        if mask_tm is not None:
            dh_prev = dh_prev + dh_skip
        return t - 1, dh_prev, dz_ta.write(t, dz)

    _, dh0, dz_ta = tf.while_loop(
        lambda t, *_: t >= 0, step, (steps - 1, dh_last, tf.TensorArray(x.dtype, size=steps))
    )
    dx_tm, d_kernel, d_recurrent, d_bias = _weight_gradients(x_tm, _previous(h0, h_tm), dz_ta.stack(), kernel)
    return _time_major(dx_tm), dh0, d_kernel, d_recurrent, d_bias


def _unwatched(*tensors):
    # An enclosing GradientTape would otherwise make tf.function build a differentiable forward pass (with
    # while-loop accumulators XLA cannot compile) that the custom gradient never uses.
    return [tf.stop_gradient(t) for t in tensors]


def _xla(function):
    # One compiled program per input shape; reduce_retracing keeps the Python-side traces to a few.
    return tf.function(function, jit_compile=True, reduce_retracing=True)


_KERNELS = {
    False: (_lstm_forward, _lstm_backward, _simple_rnn_forward, _simple_rnn_backward),
    True: tuple(_xla(f) for f in (_lstm_forward, _lstm_backward, _simple_rnn_forward, _simple_rnn_backward)),
}


def lstm(
    x, h0, c0, kernel, recurrent_kernel, bias, mask=None, zero_output_for_mask=False, jit_compile=True, training=True
):
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

    Returns:
        (outputs (batch, time, units), h_T, c_T).
    """
    mask_tm = _mask_time_major(mask)
    kernel, recurrent_kernel, bias = _weights_as_tensors(kernel, recurrent_kernel, bias)
    forward_fn, backward_fn, _, _ = _KERNELS[bool(jit_compile)]

    @tf.custom_gradient
    def forward(x, h0, c0, kernel, recurrent_kernel, bias):
        inputs = _unwatched(x, h0, c0, kernel, recurrent_kernel, bias)
        if training:
            outputs, h_last, c_last, *saved = forward_fn(*inputs, mask_tm, zero_output_for_mask)
        else:
            outputs, h_last, c_last = forward_fn(*inputs, mask_tm, zero_output_for_mask, keep_gates=False)
            saved = None

        def backward(d_outputs, dh_last, dc_last):
            gates_tm, h_tm, c_tm = saved or forward_fn(*inputs, mask_tm, zero_output_for_mask)[3:]
            d_out_tm = _output_gradient(d_outputs, h_tm, mask_tm, zero_output_for_mask)
            return backward_fn(
                d_out_tm, _or_zeros(dh_last, h0), _or_zeros(dc_last, c0),
                x, h0, c0, kernel, recurrent_kernel, gates_tm, h_tm, c_tm, mask_tm,
            )  # fmt: skip

        return (outputs, h_last, c_last), backward

    return forward(x, h0, c0, kernel, recurrent_kernel, bias)


def simple_rnn(x, h0, kernel, recurrent_kernel, bias, mask=None, zero_output_for_mask=False, jit_compile=True):
    """Runs the tanh SimpleRNN over a whole sequence; arguments as `lstm`. Returns (outputs, h_T)."""
    mask_tm = _mask_time_major(mask)
    kernel, recurrent_kernel, bias = _weights_as_tensors(kernel, recurrent_kernel, bias)
    _, _, forward_fn, backward_fn = _KERNELS[bool(jit_compile)]

    @tf.custom_gradient
    def forward(x, h0, kernel, recurrent_kernel, bias):
        outputs, h_last, h_tm = forward_fn(
            *_unwatched(x, h0, kernel, recurrent_kernel, bias), mask_tm, zero_output_for_mask
        )

        def backward(d_outputs, dh_last):
            d_out_tm = _output_gradient(d_outputs, h_tm, mask_tm, zero_output_for_mask)
            return backward_fn(d_out_tm, _or_zeros(dh_last, h0), x, h0, kernel, recurrent_kernel, h_tm, mask_tm)

        return (outputs, h_last), backward

    return forward(x, h0, kernel, recurrent_kernel, bias)
