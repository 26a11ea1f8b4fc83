"""What the layers share: a `keras.layers.RNN` over one of our cells, with a sequence-level fast path and `scan`."""

import keras
from keras import ops

from custom_layers._keras_private import backend_rnn


def forward_to_cell(*names):
    """Class decorator: read-only properties that expose the cell's constructor arguments on the layer."""

    def decorate(cls):
        for name in names:
            setattr(cls, name, property(lambda self, name=name: getattr(self.cell, name)))
        return cls

    return decorate


class FusedRNN(keras.layers.RNN):
    """A `keras.layers.RNN` that runs the whole sequence in one fused kernel when it can.

    Subclasses implement `can_fuse(training)` and `_fused(x, initial_state, mask, training)`; everything the fused
    kernel does not cover (other backends, `unroll`, options it does not implement) steps the cell, with the same
    equations and weights.
    """

    def __init__(self, cell, fused=True, jit_compile=True, use_cudnn=None, **kwargs):
        super().__init__(cell, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.fused = bool(fused)
        self.jit_compile = bool(jit_compile)
        if use_cudnn is not None:
            # Only the layers whose built-in has it (LSTM, GRU) pass it: like Keras, the attribute exists for them
            # alone, and like Keras it is not part of the config.
            if use_cudnn not in ("auto", True, False):
                raise ValueError(f"`use_cudnn` must be 'auto', True or False, got use_cudnn={use_cudnn!r}.")
            self.use_cudnn = use_cudnn

    def _fused_backend_ok(self):
        return self.fused and not self.unroll and keras.backend.backend() == "tensorflow"

    def can_fuse(self, training=False):
        """Whether the recurrence runs in the fused TensorFlow kernel (`True`) or steps the cell (`False`)."""
        raise NotImplementedError

    def _recurrence(self, sequences, initial_state, mask, training, all_outputs):
        """(last output, outputs, final states): the fused kernel when `can_fuse`, the cell loop otherwise.

        With all_outputs=False the cell loop may skip keeping the outputs (they are then the last one only)."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not self.can_fuse(training):
            return self._cell_loop(sequences, list(initial_state), mask, training, all_outputs)
        if training and self.cell.dropout > 0:
            # The same mask as the cell would draw: one per sequence, shared by all timesteps.
            step_mask = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(step_mask, 1)
        if self.go_backwards:
            sequences = ops.flip(sequences, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)
        outputs, *states = self._fused(sequences, list(initial_state), mask, training=bool(training))
        return outputs[:, -1], outputs, states

    def _cell_loop(self, sequences, initial_state, mask, training, all_outputs):
        # As keras.layers.RNN.inner_loop, with the choice of keeping every output.
        def step(inputs, states):
            if keras.backend.backend() == "torch" and self.stateful:
                # A stateful layer's states are variables; torch's autograd needs copies, not in-place updates.
                states = [ops.copy(state) for state in states]
            output, new_states = self.cell(inputs, states, training=training)
            return output, list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]

        return backend_rnn(
            step,
            sequences,
            initial_state,
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=all_outputs,
        )

    def _check_use_cudnn(self):
        if getattr(self, "use_cudnn", None) is True:
            # What the built-in does when it cannot use cuDNN; these layers never can.
            raise ValueError(
                f"use_cudnn=True: {type(self).__name__} has no cuDNN kernel; pass use_cudnn='auto' or False "
                "(the fused kernel when `can_fuse`, else the cell loop)."
            )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        self._check_use_cudnn()
        return self._recurrence(sequences, initial_state, mask, training, all_outputs=self.return_sequences)

    def _as_compute_dtype(self, sequences):
        # Integer or boolean inputs (the built-ins accept them: their cell's matmul promotes) become floats here, so
        # that the fused kernel's matmuls see one dtype.
        sequences = ops.convert_to_tensor(sequences)
        if keras.backend.standardize_dtype(sequences.dtype) != self.compute_dtype:
            sequences = ops.cast(sequences, self.compute_dtype)
        return sequences

    def call(self, sequences, initial_state=None, mask=None, training=False):
        sequences = self._as_compute_dtype(sequences)
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def scan(self, sequences, initial_state=None, mask=None, training=False):
        """Runs the recurrence over `sequences` and returns every output and the final states.

        Whatever `return_sequences`, `return_state` and `stateful` say, and without reading or updating the states
        a stateful layer keeps: for callers that need the sequence and the states of one call (e.g. reading a
        prompt before generating from its final states). The fused kernel runs when `can_fuse(training)`.

        Args:
            sequences: (batch, time, features) tensor.
            initial_state: optional list of (batch, units) tensors (the cell's `state_size`); zeros if None.
            mask: optional (batch, time) boolean mask, False at padded steps.
            training: whether dropout is applied.

        Returns:
            `(outputs, final_states)`: outputs (batch, time, units), in processing order (reversed with
            `go_backwards`, as the layer returns them); final_states a list as the cell's `states`.
        """
        sequences = self._as_compute_dtype(sequences)
        if not self.cell.built:
            self.cell.build((sequences.shape[0], *sequences.shape[2:]))
            self.cell.built = True
        if initial_state is None:
            initial_state = self.get_initial_state(ops.shape(sequences)[0])
        elif not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        initial_state = [ops.convert_to_tensor(state, dtype=self.cell.compute_dtype) for state in initial_state]
        if mask is not None:
            mask = ops.cast(mask, "bool")
        training = bool(training)
        self._check_use_cudnn()
        # Draw the per-sequence dropout masks before the loop and clear them after it, as keras.layers.RNN does
        # (the JAX backend's loop must not create state).
        self.cell.get_dropout_mask(sequences[:, 0, :])
        self.cell.get_recurrent_dropout_mask(initial_state[0])
        try:
            _, outputs, states = self._recurrence(sequences, initial_state, mask, training, all_outputs=True)
        finally:
            self.cell.reset_dropout_mask()
            self.cell.reset_recurrent_dropout_mask()
        return ops.cast(outputs, self.compute_dtype), [ops.cast(state, self.compute_dtype) for state in states]

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = {
            key: value for key, value in self.cell.get_config().items() if key not in ("name", "trainable", "dtype")
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
