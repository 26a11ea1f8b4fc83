"""DropConnect on the recurrent kernel (Wan et al. 2013; Merity et al. 2017's weight-dropped LSTM), shared by the cells.

While training, each recurrence uses U~ = U * M / (1 - p) in place of U, with M a Bernoulli(1 - p) mask of U's
shape drawn once per sequence batch (per call of the layer, per replica) and shared by every timestep, so that
E[U~] = U. Inference uses U. Because the per-step computation is the same product with another matrix, the fused
kernels run it unchanged (`recurrent_kernel_for`).

The mask follows Keras' dropout-mask protocol: `keras.layers.RNN` asks the cell for its recurrent dropout mask
before its time loop and resets it after; the cells draw the kernel's mask at that moment too, so the loop itself
stays stateless (as the JAX backend needs).
"""

from keras import ops, random

from custom_layers._keras_private import DropoutRNNCell


class RecurrentWeightDropout(DropoutRNNCell):
    """A cell mixin: `recurrent_weight_dropout` (a rate in [0, 1)) and the masked recurrent kernel."""

    recurrent_weight_dropout = 0.0
    _recurrent_kernel_mask = None

    def recurrent_kernel_for(self, training):
        """U, or while training with `recurrent_weight_dropout` > 0 the masked and rescaled U~ of this sequence."""
        if not training or self.recurrent_weight_dropout == 0:
            return self.recurrent_kernel
        if self._recurrent_kernel_mask is None:  # the cell called on its own, outside keras.layers.RNN
            self._draw_recurrent_kernel_mask()
        return self.recurrent_kernel * self._recurrent_kernel_mask

    def _draw_recurrent_kernel_mask(self):
        ones = ops.ones(self.recurrent_kernel.shape, dtype=self.recurrent_kernel.dtype)
        self._recurrent_kernel_mask = random.dropout(ones, rate=self.recurrent_weight_dropout, seed=self.seed_generator)

    def get_recurrent_dropout_mask(self, step_input):
        # Called by keras.layers.RNN before its time loop: the moment to draw this sequence's kernel mask too.
        if self.recurrent_weight_dropout > 0 and self._recurrent_kernel_mask is None and self.built:
            self._draw_recurrent_kernel_mask()
        return super().get_recurrent_dropout_mask(step_input)

    def reset_recurrent_dropout_mask(self):
        super().reset_recurrent_dropout_mask()
        self._recurrent_kernel_mask = None
