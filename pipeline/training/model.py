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
from typing import Any

import keras
import numpy as np

import custom_layers
from pipeline.config import CELL_OPTIONS, ModelConfig
from pipeline.training import adversarial, fused_adam  # noqa: F401  register AdversarialModel and FusedAdam, for load_checkpoint
from pipeline.training.word_lm import WordLanguageModels


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
class DebiasedBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization whose moving statistics start at zero and are divided by 1 - momentum^t after t updates,
    as Adam debiases its moments (Kingma & Ba 2015):

        m_0 = 0,   m_t = momentum * m_{t-1} + (1 - momentum) * batch mean,   prediction's mean = m_t / (1 - momentum^t)

    and the same for the variance. Training is Keras' `BatchNormalization` unchanged; at prediction the statistics
    are the weighted mean of the batches seen, where Keras' start at mean 0 and variance 1 and keep momentum^t of
    those: a third of them after 100 steps at momentum 0.99, all of training on a data set of a few hundred texts.
    Before any update (t = 0) prediction uses mean 0 and variance 1, as Keras' layer does.

    Args and call arguments: those of `keras.layers.BatchNormalization` (its moving-statistics initializers are
    fixed to zeros).

    Example:
        norm = DebiasedBatchNormalization(momentum=0.99)
        norm(np.full((4, 2), 3.0), training=True)  # one update
        norm(np.full((4, 2), 3.0))  # zeros: the moving mean reads 3 at prediction, where Keras' would read 0.03
    """

    def __init__(self, **kwargs):
        kwargs.update(moving_mean_initializer="zeros", moving_variance_initializer="zeros")
        super().__init__(**kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.update_count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="update_count")

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable:
            self.update_count.assign_add(1.0)
            return super().call(inputs, training=True, mask=mask)
        ops = keras.ops
        count = ops.convert_to_tensor(self.update_count)
        seen = count > 0
        debias = ops.where(seen, 1.0 - ops.power(self.momentum, count), 1.0)
        mean = ops.where(seen, self.moving_mean / debias, ops.zeros_like(self.moving_mean))
        variance = ops.where(seen, self.moving_variance / debias, ops.ones_like(self.moving_variance))
        return ops.batch_normalization(inputs, mean, variance, axis=self.axis, offset=self.beta, scale=self.gamma,
                                       epsilon=self.epsilon)  # fmt: skip

    def get_config(self):
        config = super().get_config()
        for key in ("moving_mean_initializer", "moving_variance_initializer"):
            config.pop(key, None)
        return config


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


@keras.saving.register_keras_serializable(package="rnnpipe")
class WordVectorEmbedding(keras.layers.Layer):
    """A word's pretrained vector beside its learned embedding (`pipeline.data.text.with_vectors` makes the ids):

        v(word) = [ P[w] ; 1 / |S| * sum_{i in S} E[r(i)] ]

    w is the word's id and S its non-zero ids (its own, then its n-grams' with sub-words). P holds a row per
    vocabulary word: the file's vector, or zeros for a word the file lacks. Its rows for the words seen in training
    (ids below `trained_words`) are frozen, or trained with `fine_tune`; the rows after them, words only the vectors
    file has, are always frozen: nothing in training moves them, so an unseen word keeps the file's vector.
    E is learned, with rows for the training words and the n-grams only; r(i) maps a vectors-only word to the OOV
    row 1 (such a word is read there as any unknown word is, through its n-grams) and an n-gram id down past the
    vectors-only words. 0 is padding (masked) or an empty n-gram slot.

    Args:
        input_dim: the id range: the vocabulary's words, then its n-grams (`Vocabulary.embedding_rows`).
        output_dim: the learned part's size; the output has `vector_dim` + `output_dim` features.
        words: the vocabulary's words (`Vocabulary.size`), the rows of P.
        trained_words: ids below it are words seen in training (`Vocabulary.trained_words`, >= 2).
        vector_dim: the pretrained vectors' size.
        fine_tune: train P's rows for the training words.
        vectors: optional float [words, vector_dim], P's initial value (not part of the config: a saved model
            carries P in its weights).
        embeddings_initializer: E's initializer.

    Call arguments:
        inputs: int [batch, time] word ids, or [batch, time, ids per word] with sub-words.

    Example:
        x = WordVectorEmbedding(vocab.embedding_rows, 200, vocab.size, vocab.trained_words, vocab.vector_dim,
                                vectors=table, name="embedding")(keras.Input((None, vocab.word_width)))
    """

    def __init__(self, input_dim, output_dim, words, trained_words, vector_dim, fine_tune=False, vectors=None,
                 embeddings_initializer="uniform", **kwargs):  # fmt: skip
        if not 2 <= trained_words <= words <= input_dim:
            raise ValueError(f"need 2 <= trained_words <= words <= input_dim, got trained_words={trained_words}, "
                             f"words={words}, input_dim={input_dim}")  # fmt: skip
        for name, value in (("output_dim", output_dim), ("vector_dim", vector_dim)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={value}")
        if vectors is not None and tuple(vectors.shape) != (words, vector_dim):
            raise ValueError(f"vectors must have shape ({words}, {vector_dim}), got {tuple(vectors.shape)}")
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.words, self.trained_words, self.vector_dim = int(words), int(trained_words), int(vector_dim)
        self.fine_tune = bool(fine_tune)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self._initial_vectors = vectors
        self.supports_masking = True

    def build(self, input_shape):
        learned_rows = self.input_dim - (self.words - self.trained_words)
        self.embeddings = self.add_weight(shape=(learned_rows, self.output_dim), name="embeddings",
                                          initializer=self.embeddings_initializer)  # fmt: skip
        initial = self._initial_vectors
        for name, rows, trainable in (("trained_vectors", slice(0, self.trained_words), self.fine_tune),
                                      ("unseen_vectors", slice(self.trained_words, self.words), False)):  # fmt: skip
            count = rows.stop - rows.start
            value = "zeros" if initial is None else keras.initializers.Constant(initial[rows])
            weight = self.add_weight(shape=(count, self.vector_dim), name=name, initializer=value, trainable=trainable)
            setattr(self, name, weight)
        self._initial_vectors = None  # the weights hold it now

    def call(self, inputs):
        ops = keras.ops
        ids = ops.cast(inputs, "int32")
        if len(ids.shape) == 2:
            ids = ops.expand_dims(ids, -1)
        unseen = self.words - self.trained_words
        learned = ops.where(ids < self.trained_words, ids, ops.where(ids < self.words, 1, ids - unseen))
        present = ops.cast(ops.expand_dims(ops.not_equal(ids, 0), -1), self.embeddings.dtype)
        rows = ops.take(self.embeddings, learned, axis=0)
        mean = ops.sum(rows * present, axis=2) / ops.maximum(ops.sum(present, axis=2), 1.0)
        table = ops.concatenate([self.trained_vectors, self.unseen_vectors], axis=0) if unseen else self.trained_vectors
        pretrained = ops.take(table, ops.clip(ids[..., 0], 0, self.words - 1), axis=0)
        return ops.cast(ops.concatenate([pretrained, mean], axis=-1), self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        ids = inputs if len(inputs.shape) == 2 else inputs[..., 0]
        return keras.ops.not_equal(ids, 0)

    def compute_output_shape(self, input_shape):
        time_shape = input_shape[:2]
        return (*time_shape, self.vector_dim + self.output_dim)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "words": self.words,
            "trained_words": self.trained_words,
            "vector_dim": self.vector_dim,
            "fine_tune": self.fine_tune,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }


def load_checkpoint(path) -> keras.Model:
    """A `.keras` checkpoint of a run (best.keras, a member's, a backup). Importing this module registers every
    class one can hold: our recurrent layers, the pooling, sub-word and ensemble layers above, `AdversarialModel`,
    which is what a model trained with adversarial perturbations is saved as, and the optimizer `FusedAdam`."""
    return keras.saving.load_model(path)


def checkpoint_weights(trained: keras.Model, model: keras.Model) -> list:
    """`trained`'s weights in the order `model.set_weights` takes them, for a model built by this version from the
    same config.

    Checkpoints written before the normalized head was debiased hold Keras' `BatchNormalization`, which has no
    update count and predicts with its moving statistics as they are. A count of 1e6 reproduces that exactly in
    `DebiasedBatchNormalization` (momentum^count underflows, the debiasing divides by 1), so such a run directory
    still exports and joins its ensemble. Any other difference is left to `set_weights` to refuse."""
    weights = trained.get_weights()
    counts = sum(v.name == "update_count" for v in model.weights)
    if (
        not counts
        or len(weights) != len(model.weights) - counts
        or any(v.name == "update_count" for v in trained.weights)
    ):
        return weights
    values = iter(weights)
    return [np.asarray(1e6, "float32") if v.name == "update_count" else next(values) for v in model.weights]


@dataclasses.dataclass(frozen=True)
class Vectors:
    """What `build_classifier` needs for pretrained vectors: the vocabulary's words, those seen in training, the
    vectors' size, and optionally the table itself (float [words, dim]; None: zeros, for a model whose weights are
    loaded next)."""

    words: int
    trained_words: int
    dim: int
    table: Any = None


def build_classifier(
    config: ModelConfig,
    vocab_size: int,
    num_classes: int,
    seed: int = 0,
    jit_compile: bool = True,
    name: str = "",
    word_width: int = 1,
    vectors: Vectors | None = None,
) -> keras.Model:
    """[batch, time] word ids (0 pads and is masked) -> [batch, num_classes] logits; with `word_width` > 1,
    [batch, time, word_width] ids per word (a word and its n-grams, `SubwordEmbedding`), `vocab_size` then
    counting the n-grams' rows too. With `vectors` the words also get their pretrained vectors
    (`WordVectorEmbedding`).

    The text vector is the last layer's final state (`pooling = "last"`) or the masked max / mean of its outputs;
    with `feature_norm`, batch-normalized before the head's dropout, as ULMFiT's head does.
    `jit_compile=False` keeps the recurrent kernels free of XLA, for SavedModels served by TF Serving's CPU build
    (which does not compile XLA clusters by default); the weights are the same either way. With `config.ensemble`
    = K > 1 the model holds K members built with seeds seed, seed + 1, ..., named "member_k", and outputs their
    `EnsembleAverage`."""
    shape = (None,) if word_width == 1 else (None, word_width)
    if config.ensemble > 1:
        tokens = keras.Input(shape=shape, dtype="int32", name="tokens")
        single = dataclasses.replace(config, ensemble=1)
        members = [
            build_classifier(single, vocab_size, num_classes, seed + k, jit_compile, f"member_{k}", word_width, vectors)
            for k in range(config.ensemble)
        ]
        logits = EnsembleAverage(name="ensemble")([member(tokens) for member in members])
        return keras.Model(tokens, logits, name=name or "sentiment")
    tokens = keras.Input(shape=shape, dtype="int32", name="tokens")
    x = _word_embedding(config, vocab_size, word_width, vectors)(tokens)
    pooled = config.pooling != "last"
    x = _recurrent_stack(x, config, sequences_out=pooled, seed=seed, jit_compile=jit_compile)
    if pooled:
        x = MaskedGlobalPooling1D(config.pooling, name="pooling")(x)
    if config.feature_norm:
        x = DebiasedBatchNormalization(name="feature_norm")(x)
    x = keras.layers.Dropout(config.output_dropout, seed=seed, name="output_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(tokens, logits, name=name or "sentiment")


def _word_embedding(config: ModelConfig, vocab_size: int, word_width: int, vectors: Vectors | None):
    if vectors is not None:
        return WordVectorEmbedding(
            vocab_size,
            config.embedding_dim,
            vectors.words,
            vectors.trained_words,
            vectors.dim,
            fine_tune=config.fine_tune_vectors,
            vectors=vectors.table,
            name="embedding",
        )
    if word_width == 1:
        return keras.layers.Embedding(vocab_size, config.embedding_dim, mask_zero=True, name="embedding")
    return SubwordEmbedding(vocab_size, config.embedding_dim, name="embedding")


# The layers a classifier shares with its pretraining language models (build_word_language_models): same names,
# same weights' shapes, so that the weights move from one to the other by name.
ENCODER_LAYERS = ("embedding", "rnn_")


def layer_groups(model: keras.Model) -> list[list]:
    """A classifier's trainable variables in groups from the top, as ULMFiT fine-tunes them (Howard & Ruder 2018):
    everything above the encoder (pooling, head), then each recurrent layer from the last to the first, then the
    embedding. Groups without trainable variables (a frozen layer) are left out."""
    rnns = sorted((layer for layer in model.layers if layer.name.startswith("rnn_")),
                  key=lambda layer: int(layer.name.removeprefix("rnn_")), reverse=True)  # fmt: skip
    encoder = [*rnns, *(layer for layer in model.layers if layer.name == "embedding")]
    top = [layer for layer in model.layers if not layer.name.startswith(ENCODER_LAYERS)]
    groups = [[v for layer in top for v in layer.trainable_variables]]
    groups += [list(layer.trainable_variables) for layer in encoder]
    return [group for group in groups if group]


def build_word_language_models(
    config: ModelConfig,
    vocab_size: int,
    lm_words: int,
    seed: int = 0,
    jit_compile: bool = True,
    word_width: int = 1,
    vectors: Vectors | None = None,
    samples: int = 0,
    activation_penalty: float = 0.0,
) -> WordLanguageModels:
    """A classifier's encoder (`build_classifier`'s embedding and recurrent layers, by the same names) under
    next-word heads over `lm_words` words (pipeline.training.word_lm.WordLanguageModels; `samples` > 0 trains them
    with a sampled softmax; `activation_penalty`, AWD-LSTM's activation regularization). Its `logits` take [batch,
    time(, word_width)] ids to the forward head's logits (the word after each position; id 0 after the last) and,
    for a bidirectional encoder, the backward head's (the word before; id 0 before the first), the backward
    direction's outputs read at the positions they end at. Each direction sees only its own side of the text (one
    bidirectional layer: its forward and backward halves are separate recurrences)."""
    tokens = keras.Input(shape=(None,) if word_width == 1 else (None, word_width), dtype="int32", name="tokens")
    x = _word_embedding(config, vocab_size, word_width, vectors)(tokens)
    x = _recurrent_stack(x, config, sequences_out=True, seed=seed, jit_compile=jit_compile)
    x = keras.layers.Dropout(config.output_dropout, seed=seed, name="output_dropout")(x)
    states = [x[..., : config.units], x[..., config.units :]] if config.bidirectional else [x]
    heads = [keras.layers.Dense(lm_words, name=name) for name in ("lm_forward", "lm_backward")[: len(states)]]
    return WordLanguageModels(tokens, states if config.bidirectional else x, heads, samples=samples, seed=seed,
                              activation_penalty=activation_penalty, name="word_lm")  # fmt: skip


def copy_encoder(source: keras.Model, target: keras.Model) -> None:
    """The encoder layers' weights (ENCODER_LAYERS) of `source` into `target`; a ValueError naming the first layer
    whose weights differ in shape."""
    for layer in target.layers:
        if not layer.name.startswith(ENCODER_LAYERS):
            continue
        weights = source.get_layer(layer.name).get_weights()
        for mine, theirs in zip(layer.get_weights(), weights):
            if mine.shape != theirs.shape:
                raise ValueError(f"layer {layer.name}: pretrained weights of shape {theirs.shape}, the model's "
                                 f"{mine.shape}")  # fmt: skip
        layer.set_weights(weights)


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
