"""The long short-term memory cell."""

import keras
from keras import initializers, ops

from custom_layers._validation import (
    check_implementation,
    check_rate,
    check_units,
    get_activation,
    set_weight_arguments,
    weight_arguments_config,
)
from custom_layers._weight_dropout import RecurrentWeightDropout

_LAYER_NORM_EPSILON = 1e-5


def _layer_norm(z, gamma):
    mean = ops.mean(z, axis=-1, keepdims=True)
    variance = ops.var(z, axis=-1, keepdims=True)
    return (z - mean) * ops.rsqrt(variance + _LAYER_NORM_EPSILON) * gamma


@keras.saving.register_keras_serializable(package="custom_layers")
class LSTMCell(keras.layers.Layer, RecurrentWeightDropout):
    """One step of a long short-term memory network (Hochreiter & Schmidhuber 1997, with a forget gate).

        z_t = x_t W + h_{t-1} U + b                       split into 4 blocks of `units`: (z_i, z_f, z_c, z_o)
        i_t = sigmoid(z_i)        f_t = sigmoid(z_f)        o_t = sigmoid(z_o)
        g_t = tanh(z_c)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    W = `kernel` (input_dim, 4 units), U = `recurrent_kernel` (units, 4 units), b = `bias` (4 units,), gate order
    (i, f, c, o): the shapes, names and layout of `keras.layers.LSTMCell`, so weights copy either way. "sigmoid"
    and "tanh" above are `recurrent_activation` and `activation`.

    Options beyond the Keras cell, both off by default:

    - `peephole=True` (Gers & Schmidhuber 2000): the gates also see the cell state,
          i_t = sigmoid(z_i + p_i * c_{t-1}),  f_t = sigmoid(z_f + p_f * c_{t-1}),  o_t = sigmoid(z_o + p_o * c_t)
      with diagonal weights `input_gate_peephole_weights`, `forget_gate_peephole_weights`,
      `output_gate_peephole_weights` (units,).
    - `layer_norm=True` (Ba et al. 2016): the input and recurrent contributions to the gate pre-activations are
      layer-normalized separately over their 4 units features, each with a gain,
          z_t = LN(x_t W) * gamma_x + LN(h_{t-1} U) * gamma_h + b,   LN(a) = (a - mean(a)) / sqrt(var(a) + 1e-5)
      with gains `input_gamma`, `recurrent_gamma` (4 units,) initialised to 1; b plays the role of the shift.

    Dropout (training only) multiplies x_t by a mask and h_{t-1} by another, each drawn once per sequence and
    shared by the four gates (Gal & Ghahramani 2016).

    DropConnect (training only; Wan et al. 2013, as in Merity et al. 2017's AWD-LSTM): with
    `recurrent_weight_dropout` = p > 0 the step uses, in place of U,
        U~ = U * M / (1 - p),   M ~ Bernoulli(1 - p) of U's shape, drawn once per sequence batch (E[U~] = U)
    The per-step computation is unchanged, so the layer keeps its fused kernel (`recurrent_dropout` does not).

    Per-step API: `call(x_t, states)` is `step(project_inputs(x_t), states)` after the input dropout;
    `project_inputs` takes any leading dimensions, so a caller can project a whole sequence, or an embedding table
    once, and step the recurrence on the result.

    Args:
        units: positive int, dimensionality of h and c.
        activation: activation for the candidate and the output (default "tanh").
        recurrent_activation: activation for the gates (default "sigmoid").
        use_bias: whether to add b.
        kernel_initializer, recurrent_initializer, bias_initializer: initializers for W, U, b.
        unit_forget_bias: initialise the forget-gate bias to 1 (Jozefowicz et al. 2015); needs use_bias.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: regularizers for W, U, b.
        kernel_constraint, recurrent_constraint, bias_constraint: constraints for W, U, b.
        dropout: fraction in [0, 1) of the inputs to drop.
        recurrent_dropout: fraction in [0, 1) of h_{t-1} to drop.
        recurrent_weight_dropout: fraction in [0, 1) of the recurrent kernel's entries to drop (DropConnect).
        seed: random seed for the dropout masks.
        peephole: add peephole connections.
        layer_norm: layer-normalize the gate pre-activations.
        implementation: accepted for `keras.layers.LSTMCell` compatibility, 1 or 2; the arithmetic is the same
            either way (Keras' 1 splits the matmuls per gate and draws a dropout mask per gate; here there is one
            product and one mask per sequence).
        **kwargs: base `keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        inputs: (batch, input_dim) tensor, x_t.
        states: [h_{t-1}, c_{t-1}], two (batch, units) tensors.
        training: whether dropout is applied.

    Returns `(h_t, [h_t, c_t])`.

    Example:

    >>> cell = LSTMCell(8)
    >>> h, (h, c) = cell(np.zeros((2, 5), "float32"), cell.get_initial_state(batch_size=2))
    >>> h.shape, c.shape
    ((2, 8), (2, 8))
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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        recurrent_weight_dropout=0.0,
        seed=None,
        peephole=False,
        layer_norm=False,
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
        self.unit_forget_bias = bool(unit_forget_bias)
        self.dropout = check_rate("dropout", dropout)
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        self.recurrent_weight_dropout = check_rate("recurrent_weight_dropout", recurrent_weight_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self.implementation = check_implementation(implementation)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        units = self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 4 * units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(units, 4 * units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(4 * units,),
                name="bias",
                initializer=self._forget_bias_initializer if self.unit_forget_bias else self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        if self.peephole:
            self.input_gate_peephole_weights = self.add_weight(
                shape=(units,), name="input_gate_peephole_weights", initializer="glorot_uniform"
            )
            self.forget_gate_peephole_weights = self.add_weight(
                shape=(units,), name="forget_gate_peephole_weights", initializer="glorot_uniform"
            )
            self.output_gate_peephole_weights = self.add_weight(
                shape=(units,), name="output_gate_peephole_weights", initializer="glorot_uniform"
            )
        if self.layer_norm:
            self.input_gamma = self.add_weight(shape=(4 * units,), name="input_gamma", initializer="ones")
            self.recurrent_gamma = self.add_weight(shape=(4 * units,), name="recurrent_gamma", initializer="ones")

    def _forget_bias_initializer(self, _, *args, **kwargs):
        units = self.units
        return ops.concatenate(
            [
                self.bias_initializer((units,), *args, **kwargs),
                initializers.get("ones")((units,), *args, **kwargs),
                self.bias_initializer((2 * units,), *args, **kwargs),
            ]
        )

    def project_inputs(self, inputs):
        """The input's contribution to the gate pre-activations: x W + b (LN(x W) * gamma_x + b with layer_norm).

        Any leading dimensions, (..., input_dim) -> (..., 4 units): one timestep, a whole sequence, or an embedding
        table (vocab, dim), whose projected rows then serve as a lookup table for `step`. No dropout: `call`
        applies it before projecting.
        """
        z = ops.matmul(inputs, self.kernel)
        if self.layer_norm:
            z = _layer_norm(z, self.input_gamma)
        if self.use_bias:
            z = z + self.bias
        return z

    def step(self, projected, states, training=False):
        """One timestep after the input projection: `projected` = `project_inputs(x_t)`, (batch, 4 units).

        Applies the recurrent dropout (when training), the recurrent product, the gates and the state update.
        Returns `(h_t, [h_t, c_t])`.
        """
        h_prev, c_prev = states[0], states[1]
        h_in = h_prev
        if training and self.recurrent_dropout > 0:
            h_in = h_prev * self.get_recurrent_dropout_mask(h_prev)
        z_h = ops.matmul(h_in, self.recurrent_kernel_for(training))
        if self.layer_norm:
            z_h = _layer_norm(z_h, self.recurrent_gamma)
        z_i, z_f, z_c, z_o = ops.split(projected + z_h, 4, axis=-1)

        if self.peephole:
            z_i = z_i + self.input_gate_peephole_weights * c_prev
            z_f = z_f + self.forget_gate_peephole_weights * c_prev
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_prev + i * self.activation(z_c)
        if self.peephole:
            z_o = z_o + self.output_gate_peephole_weights * c
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]

    def call(self, inputs, states, training=False):
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        return self.step(self.project_inputs(inputs), states, training=training)

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, units), dtype=self.compute_dtype) for units in self.state_size]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            **weight_arguments_config(self),
            "unit_forget_bias": self.unit_forget_bias,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "recurrent_weight_dropout": self.recurrent_weight_dropout,
            "seed": self.seed,
            "peephole": self.peephole,
            "layer_norm": self.layer_norm,
        }
