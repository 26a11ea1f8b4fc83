"""The GRU layer."""

import keras

from custom_layers._recurrent import FusedRNN, forward_to_cell
from custom_layers.gru_cell import GRUCell


@keras.saving.register_keras_serializable(package="custom_layers")
@forward_to_cell(
    "units", "activation", "recurrent_activation", "use_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer",
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint",
    "dropout", "recurrent_dropout", "recurrent_weight_dropout", "seed", "reset_after", "implementation",
)  # fmt: skip
class GRU(FusedRNN):
    """Gated recurrent unit layer (Cho et al. 2014): `GRUCell` applied over the time axis.

    reset_after=True (the default; the form cuDNN implements):

        z_t = sigmoid(x_t W_z + b_xz + h_{t-1} U_z + b_hz)      r_t = sigmoid(x_t W_r + b_xr + h_{t-1} U_r + b_hr)
        g_t = tanh(x_t W_h + b_xh + r_t * (h_{t-1} U_h + b_hh))
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    reset_after=False (the reset gate applied before the product):

        z_t = sigmoid(x_t W_z + h_{t-1} U_z + b_z)               r_t = sigmoid(x_t W_r + h_{t-1} U_r + b_r)
        g_t = tanh(x_t W_h + (r_t * h_{t-1}) U_h + b_h)
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    A drop-in for `keras.layers.GRU`: the same arguments and the same weights (`kernel` (input_dim, 3 units),
    `recurrent_kernel` (units, 3 units), `bias` (2, 3 units) with reset_after or (3 units,) without, gate order
    z, r, h), so `ours.set_weights(theirs.get_weights())` and back give the same outputs.

    On the TensorFlow backend the whole sequence runs in a fused kernel (`custom_layers.fused.gru`: the input
    projection and the weight gradients hoisted out of the time loop), for both variants, when the activations are
    tanh/sigmoid, there is no recurrent dropout while training and `unroll=False`. Anything else, or `fused=False`,
    steps the cell; results agree to float32 rounding. `can_fuse(training)` says which path a call takes;
    `scan(sequences, initial_state, mask, training)` returns the outputs and the final state of one call whatever
    `return_sequences` / `return_state` / `stateful` say.

    Args:
        units: positive int, dimensionality of the output and of the state.
        activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint, recurrent_constraint,
        bias_constraint, dropout, recurrent_dropout, recurrent_weight_dropout, reset_after, seed: as in `GRUCell`.
        activity_regularizer: regularizer on the layer output.
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask, fused, jit_compile:
            as in `custom_layers.LSTM`.
        use_cudnn: as in `custom_layers.LSTM`: accepted, no cuDNN kernel here.
        implementation: as in `GRUCell`: accepted, changes nothing.
        **kwargs: base layer arguments (name, dtype, ...).

    Call arguments:
        sequences: (batch, time, features) tensor (integer inputs are cast to the layer's dtype, as the built-in's
            matmul promotes them).
        initial_state: optional [h_0].
        mask: optional (batch, time) boolean mask (also taken from `Embedding(mask_zero=True)` or `Masking`).
        training: whether dropout is applied.

    Example:

    >>> GRU(4, return_sequences=True)(np.zeros((2, 3, 5), "float32")).shape
    (2, 3, 4)
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
        reset_after=True,
        use_cudnn="auto",
        fused=True,
        jit_compile=True,
        implementation=2,
        **kwargs,
    ):
        cell = GRUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            recurrent_weight_dropout=recurrent_weight_dropout,
            reset_after=reset_after,
            seed=seed,
            implementation=implementation,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="gru_cell",
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
            and not (training and cell.recurrent_dropout > 0)
        )

    def _fused(self, x, initial_state, mask, training):
        from custom_layers import fused  # TensorFlow-only module

        cell = self.cell
        return fused.gru(
            x,
            initial_state[0],
            cell.kernel,
            cell.recurrent_kernel_for(training),
            cell.bias,
            reset_after=cell.reset_after,
            mask=mask,
            zero_output_for_mask=self.zero_output_for_mask,
            jit_compile=self.jit_compile,
            training=training,
        )
