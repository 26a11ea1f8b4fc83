"""In-graph text generation for a next-character model: the SavedModel module of the next_char task.

Signatures (every input is required; the scalar ones apply to the whole batch, which is why TF Serving's REST API
takes them in the columnar "inputs" form):

    "serving_default":          prompt: string [-1], length: int32 [], temperature: float32 []  -> text: string [-1]
    "generate_seeded":          the same and seed: int64 []                                       -> text
    "next_char_probabilities":  text: string [-1]                          -> probabilities: float32 [-1, vocab_size]
    "sample":                   prompt, length, temperature, top_k: int32 [], top_p: float32 [], seed: int64 []
                                -> text
    "read_prompt":              prompt                                                     -> state: float32 [-1, D]
    "sample_from_state":        state: float32 [-1, D], length, temperature, top_k, top_p, seed -> text, state

`text` is the continuation only: `length` characters per example.

Sampling: the next character's logits are divided by `temperature` (at least MIN_TEMPERATURE); `top_k` > 0 keeps
the k most probable characters (0: all of them); `top_p` < 1 then keeps the smallest set of the most probable
characters whose probability, renormalized after top_k, reaches top_p (nucleus sampling; 1.0: all); the draw is from
what is kept. The OOV entry is never sampled. `seed` >= 0 makes the text reproducible: the draw for the t-th
character sampled since the prompt uses the stateless key (seed, t). `seed` = -1 (UNSEEDED) draws a fresh seed for
each call from an op seeded by the operating system's entropy, so unseeded calls differ even in two processes that
load the same export, whatever global seed it was traced under; `serving_default` samples that way.
`generate_seeded` is `sample` with top_k = 0, top_p = 1 and any int64 seed.

State: `read_prompt` returns the recurrent state after reading each prompt and `sample_from_state` continues from
it, returning the state after its text. A state row holds D = (sum of every layer's state sizes) + 1 floats:

    [layer 0's states in its cell's order (LSTM: h, c; SimpleRNN, GRU: h), layer 1's states, ..., position]

each state `model.units` wide. `position` counts the characters sampled since the prompt was read (modulo
POSITION_PERIOD, below which float32 holds every integer exactly); it keys the seeded draws, so 200 characters in one
call equal 100 and then 100 more from the returned state, with the same seed. The rows of one batch continue
together: a call's draws are keyed by the batch's largest position, and row i of a batch always takes row i's share
of the random stream, so a text is reproduced by the same rows, in the same order.

Limits, checked before any other work, each failing the request with an InvalidArgumentError that names it:
0 <= length <= max_length (`export.max_length`), at most MAX_PROMPTS prompts (or states), MAX_PROMPT_CHARS
characters per prompt and MAX_GENERATED characters generated (prompts x length), temperature finite and > 0,
top_k >= 0, 0 < top_p <= 1, seed >= -1, and a state of D finite floats whose last one is a position.

The prompts run through the recurrent layers once (right-padded, masked, `layer.scan`; READ_CHARS characters a pass,
so that a request's memory is bounded whatever its prompts), then one tf.while_loop steps
the cells a character at a time (`cell.project_inputs` / `cell.step`). Characters outside the vocabulary map to the
OOV id; an empty prompt is read as "\\n" (a paragraph break). Tokenization runs in the graph with the functions
training used (pipeline.data.text), so serving needs no Python.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from pipeline.data.text import Vocabulary, decode_chars, encode_chars, lookup_table
from pipeline.sampling import (
    DEFAULT_MAX_LENGTH,
    EMPTY_PROMPT,
    MAX_GENERATED,
    MAX_MAX_LENGTH,
    MAX_PROMPT_CHARS,
    MAX_PROMPTS,
    MIN_TEMPERATURE,
    READ_CHARS,
    UNSEEDED,
)
from pipeline.tasks.base import in_passes

POSITION_PERIOD = MAX_MAX_LENGTH
_INT64_MAX = 2**63 - 1
# The character vocabulary's out-of-vocabulary id (pipeline.data.text), never sampled.
_OOV = 0

_PROMPT = tf.TensorSpec([None], tf.string, name="prompt")
_LENGTH = tf.TensorSpec([], tf.int32, name="length")
_TEMPERATURE = tf.TensorSpec([], tf.float32, name="temperature")
_TOP_K = tf.TensorSpec([], tf.int32, name="top_k")
_TOP_P = tf.TensorSpec([], tf.float32, name="top_p")
_SEED = tf.TensorSpec([], tf.int64, name="seed")


class NextCharServing(tf.Module):
    def __init__(self, model: keras.Model, vocab: Vocabulary, num_layers: int, max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__()
        if not 0 < max_length <= POSITION_PERIOD:
            raise ValueError(f"max_length must be in [1, {POSITION_PERIOD}], got {max_length}")
        # Keras 3 layers do not expose every variable they read as a trackable attribute; the SavedModel needs all.
        self.model_variables = list(model.variables)
        self.vocab = vocab
        self.table = lookup_table(vocab)
        self.embedding = model.get_layer("embedding")
        self.head = model.get_layer("head")
        self.layers = [model.get_layer(f"rnn_{i}") for i in range(num_layers)]
        self.cells = [layer.cell for layer in self.layers]
        self.layout = StateLayout(self.cells)
        self.state_width = self.layout.width + 1  # and the position
        self._max_length = int(max_length)
        # For Python clients of the export (the CLI checks a request against them before sending it).
        self.max_length = tf.Variable(self._max_length, trainable=False, dtype=tf.int32, name="max_length")
        self.max_prompt_chars = tf.Variable(MAX_PROMPT_CHARS, trainable=False, dtype=tf.int32, name="max_prompt_chars")
        for cell in self.cells:
            _check_output_is_first_state(cell)
        state = tf.TensorSpec([None, self.state_width], tf.float32, name="state")
        self.sample_from_state = tf.function(
            self._sample_from_state, input_signature=[state, _LENGTH, _TEMPERATURE, _TOP_K, _TOP_P, _SEED]
        )

    def signatures(self) -> dict:
        return {
            "serving_default": self.generate,
            "generate_seeded": self.generate_seeded,
            "next_char_probabilities": self.next_char_probabilities,
            "sample": self.sample,
            "read_prompt": self.read_prompt,
            "sample_from_state": self.sample_from_state,
        }

    def warmup_requests(self) -> tuple:
        controls = {"length": 32, "temperature": 0.8, "top_k": 20, "top_p": np.float32(0.95), "seed": np.int64(1)}
        return (
            ("serving_default", {"prompt": ["ROMEO:", ""], "length": 32, "temperature": 1.0}),
            ("next_char_probabilities", {"text": ["To be, or not to be"]}),
            ("sample", {"prompt": ["ROMEO:", ""], **controls}),
            ("read_prompt", {"prompt": ["ROMEO:"]}),
            ("sample_from_state", {"state": np.zeros((1, self.state_width), np.float32), **controls}),
        )

    @tf.function(input_signature=[_PROMPT, _LENGTH, _TEMPERATURE])
    def generate(self, prompt, length, temperature):
        return {"text": self._sample(prompt, length, temperature, 0, 1.0, UNSEEDED)}

    @tf.function(input_signature=[_PROMPT, _LENGTH, _TEMPERATURE, _SEED])
    def generate_seeded(self, prompt, length, temperature, seed):
        return {"text": self._sample(prompt, length, temperature, 0, 1.0, seed, any_seed=True)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def next_char_probabilities(self, text):
        states, _ = self._read(text)
        return {"probabilities": tf.nn.softmax(self._logits(states), axis=-1)}

    @tf.function(input_signature=[_PROMPT, _LENGTH, _TEMPERATURE, _TOP_K, _TOP_P, _SEED])
    def sample(self, prompt, length, temperature, top_k, top_p, seed):
        return {"text": self._sample(prompt, length, temperature, top_k, top_p, seed)}

    @tf.function(input_signature=[_PROMPT])
    def read_prompt(self, prompt):
        return {"state": self._pack(*self._read(prompt))}

    def _sample_from_state(self, state, length, temperature, top_k, top_p, seed):
        checks = self._control_checks(length, temperature, top_k, top_p, seed) + self._state_checks(state)
        state, length = _after([*checks, _generated_check(state, length)], state, length)
        states, position = self._unpack(state)
        text, (states, position) = self._continue(states, position, length, temperature, top_k, top_p,
                                                  self._resolve_seed(seed))  # fmt: skip
        return {"text": text, "state": self._pack(states, position)}

    def _sample(self, prompt, length, temperature, top_k, top_p, seed, any_seed=False):
        """The text sampled after each prompt. `any_seed`: every int64 is a seed (generate_seeded), no UNSEEDED."""
        top_k, top_p, seed = (tf.convert_to_tensor(top_k, tf.int32), tf.convert_to_tensor(top_p, tf.float32),
                              tf.convert_to_tensor(seed, tf.int64))  # fmt: skip
        checks = self._control_checks(length, temperature, top_k, top_p, None if any_seed else seed)
        prompt, length = _after([*checks, _generated_check(prompt, length)], prompt, length)
        states, position = self._read(prompt)
        seed = seed if any_seed else self._resolve_seed(seed)
        text, _ = self._continue(states, position, length, temperature, top_k, top_p, seed)
        return text

    # Checks: each an Assert that every later op waits for, so a bad request fails before any work.

    def _control_checks(self, length, temperature, top_k, top_p, seed=None) -> list:
        checks = [
            tf.debugging.Assert((length >= 0) & (length <= self._max_length),
                                [f"length must be in [0, {self._max_length}] (this export's max_length), got", length]),
            tf.debugging.Assert(tf.math.is_finite(temperature) & (temperature > 0),
                                ["temperature must be finite and > 0, got", temperature]),
            tf.debugging.Assert(top_k >= 0, ["top_k must be >= 0 (0: no top-k cut), got", top_k]),
            tf.debugging.Assert((top_p > 0) & (top_p <= 1),
                                ["top_p must be in (0, 1] (1: no nucleus cut), got", top_p]),
        ]  # fmt: skip
        if seed is not None:
            checks.append(tf.debugging.Assert(seed >= UNSEEDED, [f"seed must be >= 0, or {UNSEEDED} for a fresh "
                                                                 "seed per call, got", seed]))  # fmt: skip
        return checks

    def _state_checks(self, state) -> list:
        position = state[:, -1]
        return [
            self._batch_check(state, "states"),
            tf.debugging.Assert(tf.shape(state)[1] == self.state_width,
                                [f"state must have {self.state_width} columns (read_prompt's output), got",
                                 tf.shape(state)[1]]),
            tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(state)), ["state holds a NaN or an infinity"]),
            tf.debugging.Assert(tf.reduce_all((position >= 0) & (position < POSITION_PERIOD)
                                              & (position == tf.math.floor(position))),
                                [f"the state's last column must be a position, an integer in [0, {POSITION_PERIOD})"]),
        ]  # fmt: skip

    # Reading prompts, packing states.

    def _read(self, prompt):
        """Each prompt through the recurrent layers: (states per layer, positions (zeros)). Read in passes of at most
        READ_CHARS characters (padded), as many prompts a pass as the longest allows."""
        (prompt,) = _after([self._batch_check(prompt, "prompts")], prompt)  # before they are encoded
        prompt = tf.where(tf.strings.length(prompt) > 0, prompt, EMPTY_PROMPT)
        ids = encode_chars(prompt, self.table)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        longest = tf.reduce_max(tf.concat([lengths, [0]], axis=0))
        too_long = tf.debugging.Assert(
            longest <= MAX_PROMPT_CHARS, [f"a prompt may have at most {MAX_PROMPT_CHARS} characters, got", longest]
        )
        (ids,) = _after([too_long], ids)

        def one_pass(start, stop):
            part = ids[start:stop]
            x = self.embedding(part.to_tensor(0))
            mask = tf.sequence_mask(part.row_lengths(), tf.shape(x)[1])
            states = []
            for layer in self.layers:
                x, layer_states = layer.scan(x, mask=mask)
                states.append(list(layer_states))
            return self.layout.pack(states)

        size = tf.maximum(1, READ_CHARS // tf.maximum(longest, 1))
        packed = in_passes(tf.shape(lengths)[0], size, one_pass, self.layout.width)
        return self.layout.unpack(packed), tf.zeros_like(lengths, tf.int64)

    def _batch_check(self, rows, what: str):
        count = tf.shape(rows)[0]
        return tf.debugging.Assert(
            count <= MAX_PROMPTS, [f"a request may hold at most {MAX_PROMPTS} {what}, got", count]
        )

    def _pack(self, states, position):
        return tf.concat([self.layout.pack(states), tf.cast(position, tf.float32)[:, None]], axis=1)

    def _unpack(self, packed):
        return self.layout.unpack(packed[:, :-1]), tf.cast(packed[:, -1], tf.int64)

    def _logits(self, states):
        """Next-character logits from the states: every cell's output is its first state (checked at init)."""
        return self.head(states[-1][0])

    # Sampling.

    def _resolve_seed(self, seed):
        """`seed`, or for UNSEEDED a fresh one. seed = seed2 = 0 is how TensorFlow's stateful random kernels are
        told to seed themselves from the OS; the public tf.random ops never pass it when a global seed is set."""
        fresh = tf.raw_ops.RandomUniformInt(shape=tf.constant([], tf.int32), minval=tf.constant(0, tf.int64),
                                            maxval=tf.constant(_INT64_MAX, tf.int64), seed=0, seed2=0)  # fmt: skip
        return tf.where(seed == UNSEEDED, fresh, seed)

    def _continue(self, states, position, length, temperature, top_k, top_p, seed):
        """`length` characters sampled from `states`: (text [batch], (new states, new positions))."""
        table = self.cells[0].project_inputs(self.embedding.embeddings)
        start = tf.reduce_max(tf.concat([position, tf.constant([0], tf.int64)], axis=0))
        controls = _Controls.of(self.vocab.size, temperature, top_k, top_p)

        def step(t, states, out):
            counter = (start + tf.cast(t, tf.int64)) % POSITION_PERIOD
            ids = _draw(self._logits(states), controls, tf.stack([seed, counter]))
            return t + 1, self._step(ids, states, table), out.write(t, ids)

        _, states, out = tf.while_loop(
            lambda t, *_: t < length,
            step,
            (tf.constant(0), states, tf.TensorArray(tf.int32, size=length, element_shape=[None])),
        )
        batch = tf.shape(position)[0]
        # An empty TensorArray cannot be stacked without a fully known element shape.
        ids = tf.cond(length > 0, lambda: tf.transpose(out.stack()), lambda: tf.zeros([batch, 0], tf.int32))
        position = (position + tf.cast(length, tf.int64)) % POSITION_PERIOD
        return decode_chars(ids, self.vocab), (states, position)

    def _step(self, ids, states, first_layer_table):
        """One character through the recurrent stack: the new states.

        The first layer's input projection is a lookup in `first_layer_table`, the embedding matrix projected once
        (`cell.project_inputs`), so a character costs one small matmul per layer plus the cells' step."""
        new_states = []
        x = None
        for index, (cell, state) in enumerate(zip(self.cells, states)):
            projected = tf.gather(first_layer_table, ids) if index == 0 else cell.project_inputs(x)
            x, state = cell.step(projected, state)
            new_states.append(list(state))
        return new_states


def _generated_check(rows, length):
    generated = tf.cast(tf.shape(rows)[0], tf.int64) * tf.cast(length, tf.int64)
    message = f"a request may generate at most {MAX_GENERATED} characters (prompts x length), got"
    return tf.debugging.Assert(generated <= MAX_GENERATED, [message, generated])


def _after(checks, *tensors):
    """`tensors`, available only once every check has passed: whatever is computed from them waits for the checks
    (tf.function orders stateful ops, not a check before the ops that do not depend on it)."""
    with tf.control_dependencies(checks):
        return [tf.identity(tensor) for tensor in tensors]


class _Controls(NamedTuple):
    """The sampling controls of one call as the per-character draw uses them, computed once, before the loop."""

    temperature: tf.Tensor  # at least MIN_TEMPERATURE
    excluded: tf.Tensor  # [vocab]: -inf for the OOV entry, 0 elsewhere
    k: tf.Tensor  # top_k, or the vocabulary size for none
    in_top_k: tf.Tensor  # [vocab]: whether the entry of each rank (0: the most probable) is within top_k
    top_p: tf.Tensor  # the nucleus' mass, or inf for none, which no rounding of a sum can reach
    truncate: tf.Tensor  # whether top_k or top_p cuts anything

    @classmethod
    def of(cls, vocab_size, temperature, top_k, top_p):
        k = tf.where((top_k > 0) & (top_k < vocab_size), top_k, vocab_size)
        excluded = tf.constant([-np.inf if i == _OOV else 0.0 for i in range(vocab_size)], tf.float32)
        return cls(temperature=tf.maximum(tf.cast(temperature, tf.float32), MIN_TEMPERATURE), excluded=excluded, k=k,
                   in_top_k=tf.range(vocab_size) < k, top_p=tf.where(top_p < 1, top_p, np.inf),
                   truncate=(k < vocab_size) | (top_p < 1))  # fmt: skip


def _draw(logits, controls: _Controls, key):
    """One character id per row from `logits` [batch, vocab], with the sampling controls (module docstring).

    Without a cut this is the arithmetic `generate_seeded` always had (logits / temperature, one stateless draw),
    so a seed gives the text it gave before the cuts existed (and the LiteRT client's, which mirrors it)."""
    logits = (logits + controls.excluded) / controls.temperature
    logits = tf.cond(controls.truncate, lambda: _truncated(logits, controls), lambda: logits)
    return tf.random.stateless_categorical(logits, 1, seed=key, dtype=tf.int32)[:, 0]


def _truncated(logits, controls: _Controls):
    """`logits` with -inf outside the top_k most probable entries and outside the nucleus
    of mass top_p of what top_k keeps. Entries tied with the least probable one kept are kept too."""
    ranked = tf.sort(logits, axis=1, direction="DESCENDING")
    # With top_k alone the edge is the k-th logit; only a nucleus needs the cumulative probabilities.
    edge = tf.cond(controls.top_p < np.inf, lambda: _nucleus_edge(ranked, controls),
                   lambda: tf.gather(ranked, [controls.k - 1], axis=1))  # fmt: skip
    return tf.where(logits >= edge, logits, tf.constant(-np.inf, logits.dtype))


def _nucleus_edge(ranked, controls: _Controls):
    """[batch, 1]: the least logit kept by top_k and the nucleus (`ranked`: the logits sorted, highest first)."""
    # exp of the ranked logits less their maximum: the probabilities, unnormalized (tf.nn.softmax costs several
    # times more here).
    weights = tf.exp(tf.where(controls.in_top_k, ranked - ranked[:, :1], tf.constant(-np.inf, ranked.dtype)))
    through = tf.math.cumsum(weights, axis=1)
    # An entry is in the nucleus while the mass of the more probable ones is below top_p (the first always is).
    keep = controls.in_top_k & ((through - weights) < controls.top_p * through[:, -1:])
    return tf.reduce_min(tf.where(keep, ranked, tf.constant(np.inf, ranked.dtype)), axis=1, keepdims=True)


class StateLayout:
    """How the states of a stack of cells pack into one float vector per example: layer 0's states in its cell's
    order (LSTM: h, c; SimpleRNN, GRU: h), then layer 1's, and so on. The SavedModel's continuation state and the
    LiteRT export's step state both use it."""

    def __init__(self, cells):
        self.sizes = [_state_sizes(cell) for cell in cells]
        self.width = sum(sum(sizes) for sizes in self.sizes)

    def pack(self, states) -> tf.Tensor:
        """[[layer 0's states], [layer 1's], ...] -> [batch, width]."""
        return tf.concat([state for layer_states in states for state in layer_states], axis=1)

    def unpack(self, packed) -> list[list[tf.Tensor]]:
        flat = tf.split(packed, [size for sizes in self.sizes for size in sizes], axis=1)
        states, start = [], 0
        for sizes in self.sizes:
            states.append(list(flat[start : start + len(sizes)]))
            start += len(sizes)
        return states

    def describe(self) -> list[dict]:
        """One {"layer", "name", "offset", "size"} per state: "h" (and "c" for a cell with two states, as LSTM's)."""
        layout, offset = [], 0
        for layer, sizes in enumerate(self.sizes):
            names = ["h", "c"] if len(sizes) == 2 else ["h"] if len(sizes) == 1 else []
            for index, size in enumerate(sizes):
                name = names[index] if names else f"state_{index}"
                layout.append({"layer": layer, "name": name, "offset": offset, "size": size})
                offset += size
        return layout


def _state_sizes(cell) -> list[int]:
    sizes = cell.state_size
    return [int(size) for size in sizes] if isinstance(sizes, (list, tuple)) else [int(sizes)]


def _check_output_is_first_state(cell) -> None:
    """The packed state holds the cells' states only; the logits are read from the last layer's first state,
    which must therefore be the cell's output (it is for LSTM, SimpleRNN and GRU: h)."""
    projected = cell.project_inputs(tf.ones([1, cell.kernel.shape[0]], cell.compute_dtype))
    states = [tf.fill([1, size], 0.5) for size in _state_sizes(cell)]
    output, new_states = cell.step(projected, states)
    if not np.array_equal(np.asarray(output), np.asarray(new_states[0])):
        raise ValueError(f"{type(cell).__name__}.step: the output is not the first state; the next_char export "
                         f"packs only the states and cannot serve this cell")  # fmt: skip
