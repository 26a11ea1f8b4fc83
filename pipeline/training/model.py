"""The models the pipeline trains: embedding -> our recurrent layers -> dense head, built from `ModelConfig`.

    build_classifier(config, vocab_size, num_classes)  [batch, time] word ids (0 pads, masked) -> [batch, classes]
        (with sub-words, `word_width` > 1: [batch, time, word_width] ids per word, pipeline.data.text.encode_words)
    build_language_model(config, vocab_size)           [batch, time] char ids -> [batch, time, vocab] next-char logits

Both output logits. Layer names are part of the contract with export and evaluation: "embedding", "rnn_0" ...
"rnn_{n-1}", "pooling" (classifiers that pool), "output_dropout", "head".

A classifier ensemble (`model.ensemble` = K > 1) is one model holding K such networks as sub-models "member_0" ...
"member_{K-1}", joined by `EnsembleAverage`: its output is log(mean_k softmax(logits_k)), so softmax of it is the
members' mean class probability and everything downstream (evaluation, export, serving) treats it as logits.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import keras

import custom_layers
from pipeline.config import CELL_OPTIONS, ModelConfig
from pipeline.training import adversarial, fused_adam  # noqa: F401  register AdversarialModel and FusedAdam, for load_checkpoint


@keras.saving.register_keras_serializable(package="rnnpipe")
class MaskedGlobalPooling1D(keras.layers.Layer):
    """Maximum or mean over the timesteps the mask keeps, and 0 for an all-padding sequence (Keras' global pooling
    layers ignore the mask for max and divide by zero for the mean of an empty text)."""

    def __init__(self, mode: str = "max", **kwargs):
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got mode={mode!r}")
        super().__init__(**kwargs)
        self.mode = mode
        self.supports_masking = True

    def call(self, x, mask=None):
        ops = keras.ops
        keep = ops.ones_like(x[..., :1], dtype="bool") if mask is None else ops.expand_dims(mask, -1)
        count = ops.sum(ops.cast(keep, x.dtype), axis=1)
        if self.mode == "max":
            pooled = ops.max(ops.where(keep, x, ops.full_like(x, -1e9)), axis=1)
        else:
            pooled = ops.sum(ops.where(keep, x, ops.zeros_like(x)), axis=1) / ops.maximum(count, 1.0)
        return ops.where(count > 0, pooled, ops.zeros_like(pooled))

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="rnnpipe")
class EnsembleAverage(keras.layers.Layer):
    """Joins the logits of K classifiers into log(1/K * sum_k softmax(logits_k)), computed as
    logsumexp_k(log_softmax(logits_k)) - log K so that confident members do not overflow.

    The result is a valid logit vector (softmax leaves it unchanged up to rounding): averaging probabilities, not
    logits, is the usual ensemble rule and keeps each member's calibration.

    Call arguments:
        logits: a list of K >= 1 tensors of shape [batch, classes].
    """

    def call(self, logits):
        ops = keras.ops
        log_probabilities = ops.stack([ops.log_softmax(x, axis=-1) for x in logits], axis=0)
        return ops.logsumexp(log_probabilities, axis=0) - math.log(len(logits))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="rnnpipe")
class SubwordEmbedding(keras.layers.Embedding):
    """A word's vector as the mean of the embeddings of its ids (Bojanowski et al. 2017): the word's own and those
    of its character n-grams (`pipeline.data.text.encode_words` with sub-words).

        v(word) = 1 / |S| * sum_{i in S} E[i],    S = the word's non-zero ids

    0 is an empty slot; a word whose first id is 0 is padding and is masked. An out-of-vocabulary word (first id
    the OOV id) is mostly its n-grams.

    Args:
        input_dim, output_dim and the rest: as for `keras.layers.Embedding` (`mask_zero` is always on).

    Call arguments:
        inputs: int [batch, time, ids per word].

    Example:
        x = SubwordEmbedding(vocab.embedding_rows, 200, name="embedding")(keras.Input((None, vocab.word_width)))
    """

    def __init__(self, input_dim, output_dim, **kwargs):
        kwargs["mask_zero"] = True
        super().__init__(input_dim, output_dim, **kwargs)

    def call(self, inputs):
        ops = keras.ops
        inputs = ops.cast(inputs, "int32")
        vectors = ops.take(self.embeddings, inputs, axis=0)
        present = ops.cast(ops.expand_dims(ops.not_equal(inputs, 0), -1), vectors.dtype)
        mean = ops.sum(vectors * present, axis=2) / ops.maximum(ops.sum(present, axis=2), 1.0)
        return ops.cast(mean, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        return keras.ops.not_equal(inputs[..., 0], 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)


def load_checkpoint(path) -> keras.Model:
    """A `.keras` checkpoint of a run (best.keras, a member's, a backup). Importing this module registers every
    class one can hold: our recurrent layers, the pooling, sub-word and ensemble layers above, `AdversarialModel`,
    which is what a model trained with adversarial perturbations is saved as, and the optimizer `FusedAdam`."""
    return keras.saving.load_model(path)


def build_classifier(
    config: ModelConfig,
    vocab_size: int,
    num_classes: int,
    seed: int = 0,
    jit_compile: bool = True,
    name: str = "",
    word_width: int = 1,
) -> keras.Model:
    """[batch, time] word ids (0 pads and is masked) -> [batch, num_classes] logits; with `word_width` > 1,
    [batch, time, word_width] ids per word (a word and its n-grams, `SubwordEmbedding`), `vocab_size` then
    counting the n-grams' rows too.

    The text vector is the last layer's final state (`pooling = "last"`) or the masked max / mean of its outputs.
    `jit_compile=False` keeps the recurrent kernels free of XLA, for SavedModels served by TF Serving's CPU build
    (which does not compile XLA clusters by default); the weights are the same either way. With `config.ensemble`
    = K > 1 the model holds K members built with seeds seed, seed + 1, ..., named "member_k", and outputs their
    `EnsembleAverage`."""
    shape = (None,) if word_width == 1 else (None, word_width)
    if config.ensemble > 1:
        tokens = keras.Input(shape=shape, dtype="int32", name="tokens")
        single = dataclasses.replace(config, ensemble=1)
        members = [
            build_classifier(single, vocab_size, num_classes, seed + k, jit_compile, f"member_{k}", word_width)
            for k in range(config.ensemble)
        ]
        logits = EnsembleAverage(name="ensemble")([member(tokens) for member in members])
        return keras.Model(tokens, logits, name=name or "sentiment")
    tokens = keras.Input(shape=shape, dtype="int32", name="tokens")
    if word_width == 1:
        x = keras.layers.Embedding(vocab_size, config.embedding_dim, mask_zero=True, name="embedding")(tokens)
    else:
        x = SubwordEmbedding(vocab_size, config.embedding_dim, name="embedding")(tokens)
    pooled = config.pooling != "last"
    x = _recurrent_stack(x, config, sequences_out=pooled, seed=seed, jit_compile=jit_compile)
    if pooled:
        x = MaskedGlobalPooling1D(config.pooling, name="pooling")(x)
    x = keras.layers.Dropout(config.output_dropout, seed=seed, name="output_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(tokens, logits, name=name or "sentiment")


def build_language_model(
    config: ModelConfig, vocab_size: int, seed: int = 0, jit_compile: bool = True, stateful_batch: int = 0
) -> keras.Model:
    """[batch, time] character ids -> [batch, time, vocab_size] logits of the next character.

    `stateful_batch > 0` builds a stateful copy for that fixed batch size, which carries the recurrent state from
    one call to the next (evaluation of long texts window by window)."""
    shape = {"batch_shape": (stateful_batch, None)} if stateful_batch else {"shape": (None,)}
    tokens = keras.Input(**shape, dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab_size, config.embedding_dim, name="embedding")(tokens)
    x = _recurrent_stack(x, config, sequences_out=True, seed=seed, jit_compile=jit_compile,
                         stateful=bool(stateful_batch))  # fmt: skip
    x = keras.layers.Dropout(config.output_dropout, seed=seed, name="output_dropout")(x)
    logits = keras.layers.Dense(vocab_size, name="head")(x)
    return keras.Model(tokens, logits, name="next_char")


def _recurrent_stack(x, config: ModelConfig, *, sequences_out: bool, seed: int, jit_compile: bool,
                     stateful: bool = False):  # fmt: skip
    for i in range(config.layers):
        layer = rnn_layer(
            config,
            return_sequences=sequences_out or i < config.layers - 1,
            seed=seed + i,
            name=f"rnn_{i}",
            jit_compile=jit_compile,
            stateful=stateful,
        )
        if config.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"rnn_{i}")
        x = layer(x)
    return x


def rnn_layer(
    config: ModelConfig,
    *,
    return_sequences: bool,
    seed: int,
    name: str,
    jit_compile: bool = True,
    stateful: bool = False,
) -> keras.layers.Layer:
    """One recurrent layer of `config.cell` from `custom_layers.LAYERS`. Options only some cells have (peephole,
    layer norm) are passed when they are on; the config has checked that this cell accepts them."""
    layer_class = custom_layers.LAYERS[config.cell]
    accepted = inspect.signature(layer_class).parameters
    options = {option: True for option in CELL_OPTIONS if getattr(config, option) and option in accepted}
    return layer_class(
        units=config.units,
        dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout,
        recurrent_weight_dropout=config.recurrent_weight_dropout,
        return_sequences=return_sequences,
        seed=seed,
        name=name,
        jit_compile=jit_compile,
        stateful=stateful,
        **options,
    )
