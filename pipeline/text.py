"""Text to token ids and back, with TensorFlow ops only.

The same functions run in the tf.data input pipeline and inside the exported SavedModel, so serving tokenizes exactly
as training did and needs no Python. Input bytes that are not valid UTF-8 are replaced by U+FFFD first: a SavedModel
must not fail on whatever a client sends.

Vocabularies (index = id):
  word level: ["", "[UNK]", most frequent word, ...]: 0 pads, 1 is any word not in the vocabulary.
  char level: ["[UNK]", most frequent character, ...]: 0 is any character not in the vocabulary.
Ties in frequency are broken by the token itself, so a vocabulary depends only on the data and the settings.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pipeline import artifacts

PAD = ""
OOV = "[UNK]"
# Keras' TextVectorization default punctuation set; HTML line breaks (IMDB is full of them) become spaces first.
_PUNCTUATION = r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']'
_HTML_BREAK = r"<br\s*/?>"


@dataclass(frozen=True)
class Vocabulary:
    level: str  # "word" or "char"
    tokens: tuple[str, ...]
    standardize: str = "none"
    sequence_length: int = 0  # word level: words kept per text (the rest is cut)

    def __post_init__(self):
        if self.level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', got {self.level!r}")

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def oov_id(self) -> int:
        return 1 if self.level == "word" else 0

    def save(self, path: str | os.PathLike) -> None:
        artifacts.write_json(path, dataclasses.asdict(self) | {"tokens": list(self.tokens)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        data = artifacts.read_json(path)
        return cls(**{**data, "tokens": tuple(data["tokens"])})


def clean_utf8(texts: tf.Tensor) -> tf.Tensor:
    return tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)


def standardize(texts: tf.Tensor, mode: str) -> tf.Tensor:
    texts = clean_utf8(texts)
    if mode in ("lower_and_strip_punctuation", "lower"):
        texts = tf.strings.lower(texts, encoding="utf-8")
    if mode in ("lower_and_strip_punctuation", "strip_punctuation"):
        texts = tf.strings.regex_replace(texts, _HTML_BREAK, " ")
        texts = tf.strings.regex_replace(texts, _PUNCTUATION, "")
    return texts


def split_words(texts: tf.Tensor, mode: str) -> tf.RaggedTensor:
    return tf.strings.split(standardize(texts, mode))


def split_chars(texts: tf.Tensor) -> tf.RaggedTensor:
    return tf.strings.unicode_split(clean_utf8(texts), "UTF-8")


def build_word_vocabulary(
    batches: Iterable[tf.Tensor], max_tokens: int, standardize_mode: str, sequence_length: int, min_count: int = 1
) -> Vocabulary:
    """The most frequent words in `batches` (string tensors) seen at least `min_count` times, at most
    `max_tokens - 2` of them, after PAD and OOV."""
    counts: collections.Counter[bytes] = collections.Counter()
    for texts in batches:
        counts.update(split_words(texts, standardize_mode).flat_values.numpy().tolist())
    ranked = sorted((item for item in counts.items() if item[1] >= min_count), key=lambda item: (-item[1], item[0]))
    words = tuple(word.decode("utf-8") for word, _ in ranked[: max(max_tokens - 2, 0)])
    return Vocabulary("word", (PAD, OOV) + words, standardize_mode, sequence_length)


def build_char_vocabulary(batches: Iterable[tf.Tensor], min_count: int = 1) -> Vocabulary:
    """Every character seen at least `min_count` times in `batches` (string tensors), after OOV."""
    counts = np.zeros(0x110000, dtype=np.int64)
    for texts in batches:
        codepoints = tf.strings.unicode_decode(clean_utf8(texts), "UTF-8").flat_values.numpy()
        counts += np.bincount(codepoints, minlength=counts.size)
    seen = np.flatnonzero(counts >= min_count)
    ranked = sorted(seen.tolist(), key=lambda cp: (-counts[cp], cp))
    return Vocabulary("char", (OOV,) + tuple(chr(cp) for cp in ranked))


def lookup_table(vocab: Vocabulary) -> tf.lookup.StaticHashTable:
    """token -> id; unknown tokens map to the vocabulary's OOV id."""
    first_token = vocab.oov_id + 1
    keys = tf.constant(vocab.tokens[first_token:], dtype=tf.string)
    values = tf.range(first_token, vocab.size, dtype=tf.int64)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=vocab.oov_id)


def encode_words(texts: tf.Tensor, vocab: Vocabulary, table: tf.lookup.StaticHashTable) -> tf.Tensor:
    """[batch] strings -> [batch, 1 <= width <= sequence_length] int32 ids, right-padded with 0.

    At least one column, so that a batch of empty texts is still a (fully masked) sequence."""
    words = split_words(texts, vocab.standardize)[:, : vocab.sequence_length]
    ids = tf.cast(tf.ragged.map_flat_values(table.lookup, words).to_tensor(default_value=0), tf.int32)
    return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])


def encode_chars(texts: tf.Tensor, table: tf.lookup.StaticHashTable) -> tf.RaggedTensor:
    """[batch] strings -> ragged [batch, (chars)] int32 ids."""
    return tf.cast(tf.ragged.map_flat_values(table.lookup, split_chars(texts)), tf.int32)


def decode_chars(ids: tf.Tensor | tf.RaggedTensor, vocab: Vocabulary) -> tf.Tensor:
    """[batch, (length)] ids, dense or ragged -> [batch] strings (OOV decodes to U+FFFD)."""
    chars = tf.constant(("\ufffd",) + vocab.tokens[1:])
    return tf.strings.reduce_join(tf.gather(chars, ids), axis=-1)
