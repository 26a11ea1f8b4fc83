"""The SimpleRNN layer."""

import keras

from custom_layers._recurrent import FusedRNN, forward_to_cell
from custom_layers.simple_rnn_cell import SimpleRNNCell


@keras.saving.register_keras_serializable(package="custom_layers")
@forward_to_cell(
    "units", "activation", "use_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer",
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint",
    "dropout", "recurrent_dropout", "recurrent_weight_dropout", "seed",
)  # fmt: skip
class SimpleRNN(FusedRNN):
    """Fully connected recurrent layer: `SimpleRNNCell` applied over the time axis.

        h_t = tanh(x_t W + h_{t-1} U + b)

    A drop-in for `keras.layers.SimpleRNN`: same arguments and weights (`kernel` (input_dim, units),
    `recurrent_kernel` (units, units), `bias` (units,)), so `set_weights` works both ways.

    On the TensorFlow backend a tanh layer without recurrent dropout (while training) and without `unroll` runs the
    whole sequence in the fused kernel `custom_layers.fused.simple_rnn` (input projection and weight gradients
    hoisted out of the time loop); otherwise, or with `fused=False`, it steps the cell.
    `can_fuse(training)` says which path a call takes; `scan(sequences, initial_state, mask, training)` returns
    the outputs and the final states of one call whatever `return_sequences` / `return_state` / `stateful` say.

    Args:
        units: positive int, dimensionality of the output.
        activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer, kernel_regularizer,
        recurrent_regularizer, bias_regularizer, kernel_constraint, recurrent_constraint, bias_constraint, dropout,
        recurrent_dropout, recurrent_weight_dropout, seed: as in `SimpleRNNCell`.
        activity_regularizer: regularizer on the layer output.
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask, fused, jit_compile:
            as in `custom_layers.LSTM`.
        **kwargs: base layer arguments (name, dtype, ...).

    Call arguments:
        sequences: (batch, time, features) tensor.
        initial_state: optional [h_0].
        mask: optional (batch, time) boolean mask.
        training: whether dropout is applied.

    Example:

    >>> SimpleRNN(4, return_sequences=True)(np.zeros((2, 3, 5), "float32")).shape
    (2, 3, 4)
    """

    def __init__(
        self,
        units,
        activation="tanh",
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
        fused=True,
        jit_compile=True,
        **kwargs,
    ):
        cell = SimpleRNNCell(
            units,
            activation=activation,
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
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="simple_rnn_cell",
        )
        super().__init__(
            cell,
            fused=fused,
            jit_compile=jit_compile,
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
            and not (training and cell.recurrent_dropout > 0)
        )

    def _fused(self, x, initial_state, mask, training):
        from custom_layers import fused  # TensorFlow-only module

        cell = self.cell
        return fused.simple_rnn(
            x,
            initial_state[0],
            cell.kernel,
            cell.recurrent_kernel_for(training),
            cell.bias,
            mask=mask,
            zero_output_for_mask=self.zero_output_for_mask,
            jit_compile=self.jit_compile,
            training=training,
        )
