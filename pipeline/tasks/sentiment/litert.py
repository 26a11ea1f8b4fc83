"""The LiteRT signature of a classifier (converted by pipeline.export.litert):

"serving_default": tokens int32 [batch, time] word ids, right-padded with 0 (masked), or with sub-words
                   [batch, time, ids per word] (each word's id, then its n-grams' ids)
                   ->  probabilities float32 [batch, classes]
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from pipeline.data.text import Vocabulary, check_vocabulary_level


class SentimentSignatures:
    """The "serving_default" signature of a classifier: padded word ids -> class probabilities."""

    def __init__(self, model: keras.Model, vocab: Vocabulary, labels: Sequence[str]):
        check_vocabulary_level(vocab, "word", "classifier")
        if not labels:
            raise ValueError("a classifier's LiteRT export needs its class names (labels)")
        self.model = model
        self.labels = list(labels)
        self.word_width = vocab.word_width

    def description(self) -> dict:
        return {"class_names": self.labels}

    def endpoints(self) -> dict:
        shape = [None, None] if self.word_width == 1 else [None, None, self.word_width]
        return {"serving_default": (self.serving_default, [tf.TensorSpec(shape, tf.int32, name="tokens")])}

    def serving_default(self, tokens):
        return {"probabilities": tf.nn.softmax(self.model(tokens, training=False), axis=-1)}

    def keras_reference(self, inputs: dict) -> dict:
        tokens = inputs["serving_default"]["tokens"]
        return {"serving_default": {"probabilities": self.serving_default(tokens)["probabilities"].numpy()}}

    def sample_inputs(self, vocab: Vocabulary) -> dict:
        rng = np.random.default_rng(0)
        tokens = rng.integers(1, vocab.size, size=(3, 7), dtype=np.int32)
        if vocab.ngrams:  # each word's id, then n-gram ids with some empty slots
            grams = rng.integers(vocab.size, vocab.embedding_rows, size=(3, 7, vocab.ngrams_per_word), dtype=np.int32)
            grams[:, :, vocab.ngrams_per_word // 2 :] = 0
            tokens = np.concatenate([tokens[..., np.newaxis], grams], axis=-1)
        tokens[1, 4:] = 0  # padding, masked
        tokens[2, 1:] = 0
        return {"serving_default": {"tokens": tokens}}
