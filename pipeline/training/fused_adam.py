"""Keras' Adam, with the step of an embedding table compiled into one pass over it.

Adam moves every row of a table every step (its m and v decay everywhere, and each row moves along its m), so an
embedding's sparse gradient (`tf.IndexedSlices`) updates the table whole. Keras' Adam does that with about a dozen
element-wise operations, each a pass over the table; here the gradient is summed into the table's shape and the
step's arithmetic is one XLA-compiled pass, for step t and table-shaped G:

    m <- m + (1 - beta_1) (G - m),    v <- v + (1 - beta_2) (G2 - v),
    w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon).

G sums the gradient rows of each table row. G2 sums their squares, as Keras' Adam does when it squares an
`IndexedSlices` before summing its repeated rows (a row looked up k times in a batch gets the sum of k squares,
not the square of the sum): the same numbers as Keras' Adam, to float rounding, so a model trains as it would
with it. For a sub-word table of ~45,000 rows x 200, Keras' passes were about as long as the rest of the step
(docs/recipes.md). Dense gradients take Keras' own step.

`rate_scales` multiplies the learning rate of some variables by a factor held in a variable, which a callback may
change between steps without retracing the step (discriminative fine-tuning and gradual unfreezing, Howard & Ruder
2018: pipeline.training.callbacks.FineTuning).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pipeline.training import _keras_private


@keras.saving.register_keras_serializable(package="rnnpipe")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (Kingma & Ba 2015) whose steps on sparse gradients are one compiled pass (module
    docstring). TensorFlow backend only, as the pipeline is.

    Args:
        learning_rate, **kwargs: as for `keras.optimizers.Adam` (amsgrad is not supported).
        rate_scales: [(model variables, a scalar float variable), ...]: the learning rate of those variables is
            multiplied by the scalar's current value (0 holds them still). A training setting: not saved.

    Example:
        model.compile(optimizer=FusedAdam(5e-4, clipnorm=1.0), loss=...)
    """

    def __init__(self, learning_rate=0.001, name="fused_adam", rate_scales=None, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("FusedAdam does not support amsgrad=True")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        # Outside Keras' attribute tracking, which would count the scales as the optimizer's own variables.
        self.__dict__["_rate_scales"] = list(rate_scales or [])

    def update_step(self, gradient, variable, learning_rate):
        scale = self._rate_scale(variable)
        if scale is not None:
            learning_rate = learning_rate * tf.cast(scale, learning_rate.dtype)
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        lr = tf.cast(learning_rate, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        values = tf.cast(gradient.values, dtype)
        rows = tf.shape(variable, out_type=gradient.indices.dtype)[0]
        g = tf.math.unsorted_segment_sum(values, gradient.indices, rows)
        g2 = tf.math.unsorted_segment_sum(tf.square(values), gradient.indices, rows)
        self._compiled_step(variable)(g, g2, alpha, beta_1, beta_2, tf.cast(self.epsilon, dtype))

    def _rate_scale(self, variable):
        """The scale of `variable` (the backend's variable update_step receives), or None."""
        if not self._rate_scales:
            return None
        if "_scale_of_index" not in self.__dict__:  # the optimizer is built by now: its index maps both kinds
            self.__dict__["_scale_of_index"] = {
                _keras_private.variable_index(self, v): scale
                for variables, scale in self._rate_scales
                for v in variables
            }
        return self._scale_of_index.get(_keras_private.variable_index(self, variable))

    def _compiled_step(self, variable):
        """The table's step as one XLA-compiled function over its variables, made once per table: it holds them
        (a function given variables as arguments would keep the first table's after it was deleted)."""
        # Kept outside Keras' attribute tracking, which would try to track the functions' variables as the
        # optimizer's own.
        steps = self.__dict__.setdefault("_compiled_steps", {})
        if id(variable) not in steps:
            m, v = _keras_private.adam_moment_variables(self, variable)

            @tf.function(jit_compile=True)
            def step(g, g2, alpha, beta_1, beta_2, epsilon):
                m.assign(m + (g - m) * (1 - beta_1))
                v.assign(v + (g2 - v) * (1 - beta_2))
                variable.assign_sub(m * alpha / (tf.sqrt(v) + epsilon))

            steps[id(variable)] = step
        return steps[id(variable)]


def adam(
    learning_rate: float, clipnorm: float | None, subwords: bool, rate_scales=None, weight_decay: float = 0.0
) -> keras.optimizers.Adam:
    """The training stages' Adam: FusedAdam for a model with a sub-word table (tens of thousands of rows, whose
    step in Keras' Adam costs about as much as the rest of the step) or with `rate_scales`; Keras' Adam otherwise,
    bit for bit the runs docs/recipes.md records for words-only models. `weight_decay` > 0 is AdamW's decoupled
    decay (Loshchilov & Hutter 2019), which Keras' optimizers apply before each step, to sparse tables too. It pulls
    weights toward 0, the prior of weights initialized at random: biases are left out of it, as AdamW leaves them (an
    LSTM's forget-gate bias starts at 1 on purpose), and so are pretrained word vectors (WordVectorEmbedding's
    `trained_vectors`), whose prior is their pretrained values."""
    decay = {"weight_decay": weight_decay} if weight_decay else {}
    if subwords or rate_scales:
        optimizer = FusedAdam(learning_rate, clipnorm=clipnorm, rate_scales=rate_scales, **decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm, **decay)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["bias", "trained_vectors"])
    return optimizer
