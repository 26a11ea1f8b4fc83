"""The gated recurrent unit cell."""

import keras
from keras import ops

from custom_layers._validation import (
    check_implementation,
    check_rate,
    check_units,
    get_activation,
    set_weight_arguments,
    weight_arguments_config,
)
from custom_layers._weight_dropout import RecurrentWeightDropout


@keras.saving.register_keras_serializable(package="custom_layers")
class GRUCell(keras.layers.Layer, RecurrentWeightDropout):
    """One step of a gated recurrent unit (Cho et al. 2014), in either of Keras' two variants.

    reset_after=True (the default; the form cuDNN implements, with a second bias inside the reset product):

        [x_z, x_r, x_h] = x_t W + b_x                  [u_z, u_r, u_h] = h_{t-1} U + b_h
        z_t = sigmoid(x_z + u_z)                        r_t = sigmoid(x_r + u_r)
        g_t = tanh(x_h + r_t * u_h)
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    reset_after=False (the reset gate applied to the state before the product, as in the paper's v3):

        [x_z, x_r, x_h] = x_t W + b
        z_t = sigmoid(x_z + h_{t-1} U_z)                r_t = sigmoid(x_r + h_{t-1} U_r)
        g_t = tanh(x_h + (r_t * h_{t-1}) U_h)
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    W = `kernel` (input_dim, 3 units), U = `recurrent_kernel` (units, 3 units), blocks in the gate order z, r, h;
    `bias` is (2, 3 units) with reset_after (row 0 is b_x, row 1 b_h) and (3 units,) without: the shapes, names and
    layout of `keras.layers.GRUCell`, so weights copy either way. "sigmoid" and "tanh" above are
    `recurrent_activation` and `activation`.

    Dropout (training only) multiplies x_t by a mask and h_{t-1} by another inside the products (the state update
    keeps the unmasked h_{t-1}), each drawn once per sequence and shared by the three gates (Gal & Ghahramani 2016).

    DropConnect (training only; Wan et al. 2013, as in Merity et al. 2017's AWD-LSTM): with
    `recurrent_weight_dropout` = p > 0 the step uses, in place of U,
        U~ = U * M / (1 - p),   M ~ Bernoulli(1 - p) of U's shape, drawn once per sequence batch (E[U~] = U)
    The per-step computation is unchanged, so the layer keeps its fused kernel (`recurrent_dropout` does not).

    Per-step API: `call(x_t, states)` is `step(project_inputs(x_t), states)` after the input dropout;
    `project_inputs` takes any leading dimensions, so a caller can project a whole sequence, or an embedding table
    once, and step the recurrence on the result.

    Args:
        units: positive int, dimensionality of h.
        activation: activation for the candidate g (default "tanh").
        recurrent_activation: activation for the gates z, r (default "sigmoid").
        use_bias: whether to add the biases.
        kernel_initializer, recurrent_initializer, bias_initializer: initializers for W, U, the bias.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: regularizers for W, U, the bias.
        kernel_constraint, recurrent_constraint, bias_constraint: constraints for W, U, the bias.
        dropout: fraction in [0, 1) of the inputs to drop.
        recurrent_dropout: fraction in [0, 1) of h_{t-1} to drop (in the products).
        recurrent_weight_dropout: fraction in [0, 1) of the recurrent kernel's entries to drop (DropConnect).
        reset_after: the variant, see above (default True).
        seed: random seed for the dropout masks.
        implementation: accepted for `keras.layers.GRUCell` compatibility, 1 or 2; the arithmetic is the same either
            way (Keras' 1 splits the matmuls per gate and draws a dropout mask per gate; here there is one
            product and one mask per sequence).
        **kwargs: base `keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        inputs: (batch, input_dim) tensor, x_t.
        states: [h_{t-1}] (or the (batch, units) tensor itself).
        training: whether dropout is applied.

    Returns `(h_t, [h_t])` (`(h_t, h_t)` when `states` is a tensor).

    Example:

    >>> cell = GRUCell(8)
    >>> h, (state,) = cell(np.zeros((2, 5), "float32"), cell.get_initial_state(batch_size=2))
    >>> h.shape
    (2, 8)
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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        recurrent_weight_dropout=0.0,
        reset_after=True,
        seed=None,
        implementation=2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units(units)
        self.activation = get_activation("activation", activation)
        self.recurrent_activation = get_activation("recurrent_activation", recurrent_activation)
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
        self.reset_after = bool(reset_after)
        self.implementation = check_implementation(implementation)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = self.units
        self.output_size = self.units

    def build(self, input_shape):
        units = self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 3 * units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(units, 3 * units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                # reset_after: one row for the input product, one for the recurrent product.
                shape=(2, 3 * units) if self.reset_after else (3 * units,),
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def input_bias(self):
        """b_x: the bias added to x W (row 0 of `bias` with reset_after, the whole bias without), or None."""
        if self.bias is None:
            return None
        return self.bias[0] if self.reset_after else self.bias

    def recurrent_bias(self):
        """b_h: the bias added to h U (row 1 of `bias`), or None (no bias, or reset_after=False)."""
        return self.bias[1] if self.bias is not None and self.reset_after else None

    def project_inputs(self, inputs):
        """The input's contribution x W + b_x to the three blocks, for any leading dimensions.

        (..., input_dim) -> (..., 3 units): one timestep, a whole sequence, or an embedding table (vocab, dim) whose
        projected rows then serve as a lookup table for `step`. No dropout: `call` applies it before projecting.
        """
        z = ops.matmul(inputs, self.kernel)
        bias = self.input_bias()
        return z if bias is None else z + bias

    def step(self, projected, states, training=False):
        """One timestep after the input projection: `projected` = `project_inputs(x_t)`, (batch, 3 units).

        Applies the recurrent dropout (when training), the recurrent products, the gates and the state update.
        Returns `(h_t, [h_t])`.
        """
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        h_in = h_prev
        if training and self.recurrent_dropout > 0:
            h_in = h_prev * self.get_recurrent_dropout_mask(h_prev)
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        units = self.units
        kernel = self.recurrent_kernel_for(training)
        if self.reset_after:
            u = ops.matmul(h_in, kernel)
            bias = self.recurrent_bias()
            if bias is not None:
                u = u + bias
            u_z, u_r, u_h = ops.split(u, 3, axis=-1)
            z = self.recurrent_activation(x_z + u_z)
            r = self.recurrent_activation(x_r + u_r)
            g = self.activation(x_h + r * u_h)
        else:
            u_z, u_r = ops.split(ops.matmul(h_in, kernel[:, : 2 * units]), 2, axis=-1)
            z = self.recurrent_activation(x_z + u_z)
            r = self.recurrent_activation(x_r + u_r)
            g = self.activation(x_h + ops.matmul(r * h_in, kernel[:, 2 * units :]))
        h = z * h_prev + (1 - z) * g
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
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            **weight_arguments_config(self),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "recurrent_weight_dropout": self.recurrent_weight_dropout,
            "reset_after": self.reset_after,
            "seed": self.seed,
        }
