"""The LiteRT signatures of a next-character model (converted by pipeline.export.litert), over the recurrent state
packed as one float32 [batch, state_size] (each layer's states in order, `StateLayout`; zeros to start):

    "step":         char_id int32 [batch], state                       ->  logits, probabilities [batch, vocab],
                                                                           state (after that character)
    "read_prompt":  char_ids int32 [batch, time] (right-padded), lengths int32 [batch] (>= 1), state
                                                                       ->  the same, after each row's last character

"step" calls each layer's cell once; "read_prompt" is one loop of those steps, carrying only the state, so it needs
no per-timestep buffers and converts for every cell the step does.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from pipeline.data.text import Vocabulary, check_vocabulary_level
from pipeline.sampling import EMPTY_PROMPT, MIN_TEMPERATURE
from pipeline.tasks.next_char.serving import StateLayout


class NextCharSignatures:
    """The "step" and "read_prompt" signatures over the trained embedding, cells and head (layer names as in
    `pipeline.training.model`: "embedding", "rnn_0" ... "rnn_{n-1}", "head")."""

    def __init__(self, model: keras.Model, vocab: Vocabulary, labels: Sequence[str] = ()):
        check_vocabulary_level(vocab, "char", "next-character model")
        self.model = model
        self.embedding = model.get_layer("embedding")
        self.head = model.get_layer("head")
        layers = []
        while _has_layer(model, f"rnn_{len(layers)}"):
            layers.append(model.get_layer(f"rnn_{len(layers)}"))
        if not layers or any(isinstance(layer, keras.layers.Bidirectional) for layer in layers):
            raise ValueError("a next_char model needs unidirectional recurrent layers rnn_0, rnn_1, ...")
        self.cells = [layer.cell for layer in layers]
        self.layout = StateLayout(self.cells)
        self.state_size = self.layout.width
        self.units = int(_as_list(self.cells[-1].output_size)[0])

    def endpoints(self) -> dict:
        state = tf.TensorSpec([None, self.state_size], tf.float32, name="state")
        return {
            "step": (self.step, [tf.TensorSpec([None], tf.int32, name="char_id"), state]),
            "read_prompt": (self.read_prompt, [tf.TensorSpec([None, None], tf.int32, name="char_ids"),
                                               tf.TensorSpec([None], tf.int32, name="lengths"), state]),
        }  # fmt: skip

    def _cells(self, char_id, state):
        """One character through the stack: (the last layer's output, the packed new state)."""
        x = self.embedding(char_id)
        new_states = []
        for cell, states in zip(self.cells, self.layout.unpack(state)):
            x, states = cell(x, states, training=False)
            new_states.append(_as_list(states))
        return x, self.layout.pack(new_states)

    def _outputs(self, x, state):
        logits = self.head(x)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1), "state": state}

    def step(self, char_id, state):
        return self._outputs(*self._cells(char_id, state))

    def read_prompt(self, char_ids, lengths, state):
        def body(t, state, last):
            x, new_state = self._cells(tf.gather(char_ids, t, axis=1), state)
            keep = (t < lengths)[:, tf.newaxis]  # a row whose prompt has ended keeps its state from here on
            return t + 1, tf.where(keep, new_state, state), tf.where(keep, x, last)

        last = tf.zeros([tf.shape(char_ids)[0], self.units], state.dtype)
        _, state, last = tf.while_loop(lambda t, *_: t < tf.shape(char_ids)[1], body, (tf.constant(0), state, last))
        return self._outputs(last, state)

    def description(self) -> dict:
        return {
            "state": {"size": self.state_size, "initial": "zeros", "layout": self.layout.describe()},
            "generation": {
                "empty_prompt": EMPTY_PROMPT,
                "never_sample": [0],
                "sampling": "the never_sample entries' logits set to -inf, all divided by max(temperature, "
                f"{MIN_TEMPERATURE}), cut to top_k and the top_p nucleus as the SavedModel's 'sample' signature "
                "does; with a seed, character t is tf.random.stateless_categorical(those logits, 1, seed=[seed, t]) "
                "(pipeline/clients/litert_client.py reimplements it)",
            },
        }

    def keras_reference(self, inputs: dict) -> dict:
        """What both signatures must give from the zero state, from the Keras model's own forward pass (the
        recurrent layers' fused kernels): the logits at the first character and at each row's last one."""
        char_ids, lengths = inputs["read_prompt"]["char_ids"], inputs["read_prompt"]["lengths"]
        logits = self.model(char_ids, training=False).numpy()
        first, last = logits[:, 0], logits[np.arange(len(lengths)), lengths - 1]
        return {
            "step": {"logits": first, "probabilities": tf.nn.softmax(first, axis=-1).numpy()},
            "read_prompt": {"logits": last, "probabilities": tf.nn.softmax(last, axis=-1).numpy()},
        }

    def sample_inputs(self, vocab: Vocabulary) -> dict:
        rng = np.random.default_rng(0)
        char_ids = rng.integers(0, vocab.size, size=(3, 9), dtype=np.int32)
        state = np.zeros((3, self.state_size), np.float32)
        lengths = np.array([9, 4, 1], np.int32)
        return {
            "step": {"char_id": char_ids[:, 0], "state": state},
            "read_prompt": {"char_ids": char_ids, "lengths": lengths, "state": state},
        }


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]
