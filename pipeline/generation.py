"""In-graph text generation for a next-character model: the SavedModel module of the next_char task.

Signatures:
    "serving_default":          prompt: tf.string [None], length: int32 [], temperature: float32 []
                                -> text: tf.string [None] (the continuation only, `length` characters)
    "generate_seeded":          the same plus seed: int64 [] -> reproducible sampling (stateless random ops)
    "next_char_probabilities":  text: tf.string [None] -> probabilities: float32 [None, vocab_size]

Generation is one tf.while_loop: the prompt runs through the recurrent layers once (right-padded, masked), then
the cells are stepped one character at a time carrying their state. Characters outside the vocabulary map to the
OOV id (never sampled); an empty prompt is read as "\\n" (a paragraph break). Tokenization runs in the graph with
the functions training used (pipeline.text), so serving needs no Python.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pipeline.text import Vocabulary, decode_chars, encode_chars, lookup_table

EMPTY_PROMPT = "\n"


class NextCharServing(tf.Module):
    def __init__(self, model: keras.Model, vocab: Vocabulary, num_layers: int):
        super().__init__()
        # Keras 3 layers do not expose every variable they read as a trackable attribute; the SavedModel needs all.
        self.model_variables = list(model.variables)
        self.vocab = vocab
        self.table = lookup_table(vocab)
        self.embedding = model.get_layer("embedding")
        self.head = model.get_layer("head")
        self.layers = [model.get_layer(f"rnn_{i}") for i in range(num_layers)]
        self.cells = [layer.cell for layer in self.layers]

    def signatures(self) -> dict:
        return {
            "serving_default": self.generate,
            "generate_seeded": self.generate_seeded,
            "next_char_probabilities": self.next_char_probabilities,
        }

    def warmup_requests(self) -> tuple:
        return (
            ("serving_default", {"prompt": ["ROMEO:", ""], "length": 32, "temperature": 1.0}),
            ("next_char_probabilities", {"text": ["To be, or not to be"]}),
        )

    def _read_prompt(self, prompt):
        """Logits for the character after each prompt, and the recurrent states after reading it."""
        prompt = tf.where(tf.strings.length(prompt) > 0, prompt, EMPTY_PROMPT)
        ids = encode_chars(prompt, self.table)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        x = self.embedding(ids.to_tensor(0))
        mask = tf.sequence_mask(lengths, tf.shape(x)[1])
        states = []
        for layer in self.layers:
            x, layer_states = layer.scan(x, mask=mask)
            states.append(layer_states)
        last = tf.gather(x, lengths - 1, batch_dims=1)
        return self.head(last), states

    def _sample(self, logits, temperature, seed, step):
        logits = logits / temperature
        # Never emit the out-of-vocabulary entry.
        logits = tf.concat([tf.fill([tf.shape(logits)[0], 1], -1e9), logits[:, 1:]], axis=1)
        if seed is None:
            return tf.random.categorical(logits, 1, dtype=tf.int32)[:, 0]
        return tf.random.stateless_categorical(logits, 1, seed=tf.stack([seed, tf.cast(step, tf.int64)]),
                                               dtype=tf.int32)[:, 0]  # fmt: skip

    def _step(self, ids, states, first_layer_table):
        """One character through the recurrent stack: (new last-layer output, new states).

        The first layer's input projection is a lookup in `first_layer_table`, the embedding matrix projected once
        (`cell.project_inputs`), so a character costs one small matmul per layer plus the cells' step."""
        new_states = []
        x = None
        for index, (cell, state) in enumerate(zip(self.cells, states)):
            projected = tf.gather(first_layer_table, ids) if index == 0 else cell.project_inputs(x)
            x, state = cell.step(projected, state)
            new_states.append(list(state))
        return x, new_states

    def _generate(self, prompt, length, temperature, seed=None):
        tf.debugging.assert_non_negative(length, message="length must be >= 0")
        tf.debugging.assert_positive(temperature, message="temperature must be > 0")
        logits, states = self._read_prompt(prompt)
        batch = tf.shape(prompt)[0]
        table = self.cells[0].project_inputs(self.embedding.embeddings)

        def step(t, logits, states, out):
            ids = self._sample(logits, temperature, seed, t)
            x, states = self._step(ids, states, table)
            return t + 1, self.head(x), states, out.write(t, ids)

        _, _, _, out = tf.while_loop(
            lambda t, *_: t < length,
            step,
            (tf.constant(0), logits, states, tf.TensorArray(tf.int32, size=length, element_shape=[None])),
        )
        ids = tf.reshape(tf.transpose(out.stack()), [batch, length])
        return {"text": decode_chars(ids, self.vocab)}

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="prompt"),
        tf.TensorSpec([], tf.int32, name="length"),
        tf.TensorSpec([], tf.float32, name="temperature"),
    ])  # fmt: skip
    def generate(self, prompt, length, temperature):
        return self._generate(prompt, length, temperature)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="prompt"),
        tf.TensorSpec([], tf.int32, name="length"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int64, name="seed"),
    ])  # fmt: skip
    def generate_seeded(self, prompt, length, temperature, seed):
        return self._generate(prompt, length, temperature, seed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def next_char_probabilities(self, text):
        logits, _ = self._read_prompt(text)
        return {"probabilities": tf.nn.softmax(logits, axis=-1)}

