"""The LSTM layer."""

import keras

from custom_layers._recurrent import FusedRNN, forward_to_cell
from custom_layers.lstm_cell import LSTMCell


@keras.saving.register_keras_serializable(package="custom_layers")
@forward_to_cell(
    "units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer",
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint",
    "dropout", "recurrent_dropout", "recurrent_weight_dropout", "seed", "peephole", "layer_norm", "implementation",
)  # fmt: skip
class LSTM(FusedRNN):
    """Long short-term memory layer: `LSTMCell` applied over the time axis.

        i_t = sigmoid(x_t W_i + h_{t-1} U_i + b_i)      f_t = sigmoid(x_t W_f + h_{t-1} U_f + b_f)
        g_t = tanh(x_t W_c + h_{t-1} U_c + b_c)         o_t = sigmoid(x_t W_o + h_{t-1} U_o + b_o)
        c_t = f_t * c_{t-1} + i_t * g_t                 h_t = o_t * tanh(c_t)

    A drop-in for `keras.layers.LSTM`: the same arguments and the same weights (`kernel` (input_dim, 4 units),
    `recurrent_kernel` (units, 4 units), `bias` (4 units,), gate order i, f, c, o), so
    `ours.set_weights(theirs.get_weights())` and back give the same outputs. Optional `peephole` and `layer_norm`
    (equations in `LSTMCell`) go beyond it.

    On the TensorFlow backend the whole sequence runs in a fused kernel (`custom_layers.fused.lstm`: the input
    projection and the weight gradients hoisted out of the time loop) when the configuration is the standard one:
    tanh/sigmoid activations, no peephole, no layer norm, no recurrent dropout while training, `unroll=False`.
    Anything else, or `fused=False`, steps the cell; results agree to float32 rounding.
    `can_fuse(training)` says which path a call takes; `scan(sequences, initial_state, mask, training)` returns
    the outputs and the final states of one call whatever `return_sequences` / `return_state` / `stateful` say.

    Args:
        units: positive int, dimensionality of the output and of both states.
        activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        unit_forget_bias, kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint,
        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, recurrent_weight_dropout, seed, peephole,
        layer_norm: as in `LSTMCell`.
        activity_regularizer: regularizer on the layer output.
        return_sequences: return the output at every timestep (batch, time, units) instead of the last one.
        return_state: also return the final h and c.
        go_backwards: process the sequence in reverse (and return the outputs in that order).
        stateful: carry the final states of a batch into the next call; `reset_state()` zeroes them.
        unroll: unroll the time loop in Python (short sequences only; never fused).
        zero_output_for_mask: output zeros at masked timesteps instead of repeating the last output.
        use_cudnn: accepted for `keras.layers.LSTM` compatibility: "auto" (default) or False run this layer's own
            kernels (the fused one when `can_fuse`, else the cell loop); there is no cuDNN kernel here, so True
            raises ValueError when the layer is called, as the built-in does where cuDNN cannot be used. Like the
            built-in's, it is an attribute, not part of the config.
        fused: allow the fused sequence kernel (default True).
        jit_compile: run the fused kernel's loops XLA-compiled (default True); False keeps plain TensorFlow ops,
            e.g. for a SavedModel served without XLA.
        implementation: as in `LSTMCell`: accepted, changes nothing.
        **kwargs: base layer arguments (name, dtype, ...).

    Call arguments:
        sequences: (batch, time, features) tensor (integer inputs are cast to the layer's dtype, as the built-in's
            matmul promotes them).
        initial_state: optional [h_0, c_0].
        mask: optional (batch, time) boolean mask (also taken from `Embedding(mask_zero=True)` or `Masking`).
        training: whether dropout is applied.

    Example:

    >>> model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(100, 16, mask_zero=True),
    ...                           LSTM(32), keras.layers.Dense(1)])
    >>> model(np.array([[5, 3, 0, 0]])).shape
    (1, 1)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        recurrent_weight_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        peephole=False,
        layer_norm=False,
        use_cudnn="auto",
        fused=True,
        jit_compile=True,
        implementation=2,
        **kwargs,
    ):
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            recurrent_weight_dropout=recurrent_weight_dropout,
            seed=seed,
            peephole=peephole,
            layer_norm=layer_norm,
            implementation=implementation,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="lstm_cell",
        )
        super().__init__(
            cell,
            fused=fused,
            jit_compile=jit_compile,
            use_cudnn=use_cudnn,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    def can_fuse(self, training=False):
        """Whether the recurrence runs in the fused TensorFlow kernel: see the class docstring."""
        cell = self.cell
        return (
            self._fused_backend_ok()
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and not cell.peephole
            and not cell.layer_norm
            and not (training and cell.recurrent_dropout > 0)
        )

    def _fused(self, x, initial_state, mask, training):
        from custom_layers import fused  # TensorFlow-only module

        cell = self.cell
        h0, c0 = initial_state
        return fused.lstm(
            x,
            h0,
            c0,
            cell.kernel,
            cell.recurrent_kernel_for(training),
            cell.bias,
            mask=mask,
            zero_output_for_mask=self.zero_output_for_mask,
            jit_compile=self.jit_compile,
            training=training,
        )
