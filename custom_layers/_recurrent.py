"""What `LSTM` and `SimpleRNN` share: a `keras.layers.RNN` over one of our cells, with a sequence-level fast path."""

import keras
from keras import ops


def forward_to_cell(*names):
    """Class decorator: read-only properties that expose the cell's constructor arguments on the layer."""

    def decorate(cls):
        for name in names:
            setattr(cls, name, property(lambda self, name=name: getattr(self.cell, name)))
        return cls

    return decorate


class FusedRNN(keras.layers.RNN):
    """A `keras.layers.RNN` that runs the whole sequence in one fused kernel when it can.

    Subclasses implement `_can_fuse(training)` and `_fused(x, initial_state, mask, training)`; everything the fused kernel
    does not cover (other backends, `unroll`, options it does not implement) runs the cell step by step, with the
    same equations and weights.
    """

    def __init__(self, cell, fused=True, jit_compile=True, **kwargs):
        super().__init__(cell, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.fused = bool(fused)
        self.jit_compile = bool(jit_compile)

    def _fused_backend_ok(self):
        return self.fused and not self.unroll and keras.backend.backend() == "tensorflow"

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not self._can_fuse(training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if training and self.cell.dropout > 0:
            # The same mask as the cell would draw: one per sequence, shared by all timesteps.
            step_mask = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(step_mask, 1)
        if self.go_backwards:
            sequences = ops.flip(sequences, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)
        outputs, *states = self._fused(sequences, list(initial_state), mask, training=bool(training))
        return outputs[:, -1], outputs, states

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = {
            key: value
            for key, value in self.cell.get_config().items()
            if key not in ("name", "trainable", "dtype")
        }
        return {
            **config,
            **cell_config,
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
            "fused": self.fused,
            "jit_compile": self.jit_compile,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
