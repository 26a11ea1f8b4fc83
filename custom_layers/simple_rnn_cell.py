"""The vanilla (Elman) recurrent cell."""

import keras
from keras import ops

from custom_layers._validation import (
    check_rate,
    check_units,
    get_activation,
    set_weight_arguments,
    weight_arguments_config,
)
from custom_layers._weight_dropout import RecurrentWeightDropout


@keras.saving.register_keras_serializable(package="custom_layers")
class SimpleRNNCell(keras.layers.Layer, RecurrentWeightDropout):
    """One step of a fully connected recurrent network.

        h_t = activation(x_t W + h_{t-1} U + b)

    with W = `kernel` (input_dim, units), U = `recurrent_kernel` (units, units), b = `bias` (units,): the shapes
    and names of `keras.layers.SimpleRNNCell`, so weights can be copied either way. Dropout, when training,
    multiplies x_t by a mask and h_{t-1} (recurrent dropout) by another; both masks are drawn once per sequence
    and reused at every step (Gal & Ghahramani, 2016).

    DropConnect (training only; Wan et al. 2013, as in Merity et al. 2017's AWD-LSTM): with
    `recurrent_weight_dropout` = p > 0 the step uses, in place of U,
        U~ = U * M / (1 - p),   M ~ Bernoulli(1 - p) of U's shape, drawn once per sequence batch (E[U~] = U)
    The per-step computation is unchanged, so the layer keeps its fused kernel (`recurrent_dropout` does not).

    Per-step API: `call(x_t, states)` is `step(project_inputs(x_t), states)` after the input dropout;
    `project_inputs` takes any leading dimensions, so a caller can project a whole sequence, or an embedding table
    once, and step the recurrence on the result.

    Args:
        units: positive int, dimensionality of h.
        activation: activation for h (default "tanh").
        use_bias: whether to add b.
        kernel_initializer, recurrent_initializer, bias_initializer: initializers for W, U, b.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: regularizers for W, U, b.
        kernel_constraint, recurrent_constraint, bias_constraint: constraints for W, U, b.
        dropout: fraction in [0, 1) of the inputs to drop.
        recurrent_dropout: fraction in [0, 1) of h_{t-1} to drop.
        recurrent_weight_dropout: fraction in [0, 1) of the recurrent kernel's entries to drop (DropConnect).
        seed: random seed for the dropout masks.
        **kwargs: base `keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        inputs: (batch, input_dim) tensor, x_t.
        states: list with one (batch, units) tensor, h_{t-1}.
        training: whether dropout is applied.

    Returns `(h_t, [h_t])`.

    Example:

    >>> layer = keras.layers.RNN(SimpleRNNCell(4), return_sequences=True)
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        recurrent_weight_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units(units)
        self.activation = get_activation("activation", activation)
        self.use_bias = bool(use_bias)
        set_weight_arguments(
            self,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
        )
        self.dropout = check_rate("dropout", dropout)
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        self.recurrent_weight_dropout = check_rate("recurrent_weight_dropout", recurrent_weight_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def project_inputs(self, inputs):
        """The input's contribution x W + b, for any leading dimensions: (..., input_dim) -> (..., units).

        One timestep, a whole sequence, or an embedding table (vocab, dim) whose projected rows then serve as a
        lookup table for `step`. No dropout: `call` applies it before projecting.
        """
        z = ops.matmul(inputs, self.kernel)
        return z + self.bias if self.use_bias else z

    def step(self, projected, states, training=False):
        """One timestep after the input projection: `projected` = `project_inputs(x_t)`, (batch, units).

        Applies the recurrent dropout (when training), the recurrent product and the activation. Returns
        `(h_t, [h_t])`.
        """
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        if training and self.recurrent_dropout > 0:
            h_prev = h_prev * self.get_recurrent_dropout_mask(h_prev)
        h = self.activation(projected + ops.matmul(h_prev, self.recurrent_kernel_for(training)))
        return h, [h]

    def call(self, inputs, states, training=False):
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        h, new_states = self.step(self.project_inputs(inputs), states, training=training)
        return h, (new_states if isinstance(states, (list, tuple)) else h)

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **weight_arguments_config(self),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "recurrent_weight_dropout": self.recurrent_weight_dropout,
            "seed": self.seed,
        }
