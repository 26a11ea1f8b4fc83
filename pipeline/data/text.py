"""Text to token ids and back, with TensorFlow ops only.

The same functions run in the tf.data input pipeline and inside the exported SavedModel, so serving tokenizes exactly
as training did and needs no Python. Input bytes that are not valid UTF-8 are replaced by U+FFFD first: a SavedModel
must not fail on whatever a client sends.

Vocabularies (index = id):
  word level: ["", "[UNK]", most frequent word, ...]: 0 pads, 1 is any word not in the vocabulary.
  char level: ["[UNK]", most frequent character, ...]: 0 is any character not in the vocabulary.
Ties in frequency are broken by the token itself, so a vocabulary depends only on the data and the settings.

Sub-words (word level, `ngram_sizes` not empty; Bojanowski et al. 2017, "Enriching Word Vectors with Subword
Information"): each word is also read as the character n-grams of "<" + word + ">" of the given sizes, shortest
first, left to right (of a word's first MAX_NGRAM_WORD_CHARS characters). The vocabulary keeps the n-grams found
in at least MIN_NGRAM_WORDS distinct training words (one found in a single word says nothing that word's own
vector cannot), most widespread first; n-gram k has id len(tokens) + k. A word is encoded as [word id, ids of its
known n-grams, 0 ...] with `ngrams_per_word` n-gram slots, so an out-of-vocabulary word still has a vector made of
the n-grams it shares with training words.

Pretrained word vectors (`with_vectors`): the vocabulary's words get the vectors a file has for them, and the
file's most frequent other words (at most a bound, read as the tokenizer would make them) join the vocabulary
after the training words, with `vector_words` counting them: a word never seen in training still has its
pretrained vector at prediction time. Validation and test texts play no part in which words those are.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pipeline.data import vectors
from pipeline.run import artifacts

PAD = ""
OOV = "[UNK]"
# Keras' TextVectorization default punctuation set; HTML line breaks (IMDB is full of them) become spaces first.
_PUNCTUATION = r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']'
_HTML_BREAK = r"<br\s*/?>"
# Around a word before its n-grams are taken, so that prefixes and suffixes differ from the inside of words.
WORD_START, WORD_END = "<", ">"
MIN_NGRAM_WORDS = 2
# n-grams are taken from a word's first 64 characters: a bound on the work one word (a client's 1 MB "word")
# costs the SavedModel; real words are far shorter, and only ngrams_per_word of their n-grams are read.
MAX_NGRAM_WORD_CHARS = 64
# Words one inference pass over a batch of texts holds at most (evaluate, and the SavedModel, which splits a request
# into passes): a batch's memory grows with its texts x their words x a word's sub-words, and a client chooses the
# number of texts.
INFERENCE_WORDS = 2**16


@dataclass(frozen=True)
class Vocabulary:
    level: str  # "word" or "char"
    tokens: tuple[str, ...]
    standardize: str = "none"
    sequence_length: int = 0  # word level: words kept per text (the rest is cut)
    ngrams: tuple[str, ...] = ()  # word level: character n-grams (module docstring), id = size + index
    ngram_sizes: tuple[int, ...] = ()
    ngrams_per_word: int = 0
    vector_words: int = 0  # the last tokens: words of the vectors file not seen in training (`with_vectors`)
    vector_dim: int = 0  # the pretrained vectors' size (0: none)

    def __post_init__(self):
        if self.level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', got {self.level!r}")
        if self.ngrams and (self.level != "word" or not self.ngram_sizes or self.ngrams_per_word < 1):
            raise ValueError("n-grams need a word-level vocabulary with ngram_sizes and ngrams_per_word >= 1")
        if self.vector_words and not self.vector_dim or not 0 <= self.vector_words <= len(self.tokens) - 2:
            raise ValueError(f"vector_words={self.vector_words} needs vector_dim > 0 and at most the tokens after "
                             f"PAD and OOV")  # fmt: skip

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def embedding_rows(self) -> int:
        """Rows of the embedding table: the tokens, then the n-grams."""
        return len(self.tokens) + len(self.ngrams)

    @property
    def trained_words(self) -> int:
        """Tokens seen in training (PAD and OOV included): ids below it; the vectors-only words follow."""
        return len(self.tokens) - self.vector_words

    @property
    def word_width(self) -> int:
        """Ids per word in an encoded text: 1 (the word), or 1 + ngrams_per_word with sub-words."""
        return 1 + self.ngrams_per_word if self.ngrams else 1

    @property
    def oov_id(self) -> int:
        return 1 if self.level == "word" else 0

    def save(self, path: str | os.PathLike) -> None:
        fields = dataclasses.asdict(self)
        artifacts.write_json(path, fields | {key: list(fields[key]) for key in ("tokens", "ngrams", "ngram_sizes")})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        data = artifacts.read_json(path)
        return cls(**data | {key: tuple(data.get(key, ())) for key in ("tokens", "ngrams", "ngram_sizes")})


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
    batches: Iterable[tf.Tensor],
    max_tokens: int,
    standardize_mode: str,
    sequence_length: int,
    min_count: int = 1,
    ngram_sizes: Sequence[int] = (),
    max_ngrams: int = 0,
    ngrams_per_word: int = 0,
) -> Vocabulary:
    """The most frequent words in `batches` (string tensors) seen at least `min_count` times, at most
    `max_tokens - 2` of them, after PAD and OOV; with `ngram_sizes`, also at most `max_ngrams` character n-grams
    of those sizes (module docstring) taken from every training word, rare ones included."""
    counts = count_words(batches, standardize_mode)
    ranked = sorted((item for item in counts.items() if item[1] >= min_count), key=lambda item: (-item[1], item[0]))
    words = tuple(word.decode("utf-8") for word, _ in ranked[: max(max_tokens - 2, 0)])
    if not ngram_sizes:
        return Vocabulary("word", (PAD, OOV) + words, standardize_mode, sequence_length)
    spread: collections.Counter[str] = collections.Counter()
    for word in counts:
        spread.update(set(word_ngrams(word.decode("utf-8"), ngram_sizes)))
    common = sorted((item for item in spread.items() if item[1] >= MIN_NGRAM_WORDS), key=lambda i: (-i[1], i[0]))
    ngrams = tuple(gram for gram, _ in common[:max_ngrams])
    return Vocabulary("word", (PAD, OOV) + words, standardize_mode, sequence_length, ngrams, tuple(ngram_sizes),
                      ngrams_per_word)  # fmt: skip


def count_words(batches: Iterable[tf.Tensor], standardize_mode: str) -> collections.Counter[bytes]:
    """How often each word (UTF-8 bytes, as the tokenizer makes it) occurs in `batches` (string tensors)."""
    counts: collections.Counter[bytes] = collections.Counter()
    for texts in batches:
        counts.update(split_words(texts, standardize_mode).flat_values.numpy().tolist())
    return counts


def words_per_text(batches: Iterable[tf.Tensor], standardize_mode: str) -> np.ndarray:
    """How many words the tokenizer makes of each text of `batches` (string tensors), in order."""
    lengths = [split_words(texts, standardize_mode).row_lengths().numpy() for texts in batches]
    return np.concatenate(lengths) if lengths else np.zeros(0, np.int64)


@dataclass(frozen=True)
class LengthReport:
    """How many training texts `tokenize.sequence_length` cuts (encode_words keeps a text's first words)."""

    texts: int
    cut: int  # texts with more words than sequence_length
    sequence_length: int
    p95: int  # words of the 95th-percentile text
    longest: int

    @classmethod
    def of(cls, lengths: np.ndarray, sequence_length: int) -> LengthReport:
        if not lengths.size:
            return cls(0, 0, sequence_length, 0, 0)
        return cls(int(lengths.size), int((lengths > sequence_length).sum()), sequence_length,
                   int(np.percentile(lengths, 95, method="higher")), int(lengths.max()))  # fmt: skip

    def summary(self) -> str:
        """One clause for tokenize's line when texts are cut, else ""."""
        if not self.cut:
            return ""
        return (f"{self.cut / self.texts:.1%} of the training texts ({self.cut:,}) are cut at "
                f"tokenize.sequence_length = {self.sequence_length} words (95% have at most {self.p95:,}, the longest "
                f"{self.longest:,})")  # fmt: skip


def as_single_words(words: Sequence[str], standardize_mode: str) -> list[str | None]:
    """What the tokenizer makes of each of `words`: the one word it becomes, or None (several words, or none)."""
    split = split_words(tf.constant(list(words), dtype=tf.string), standardize_mode)
    lengths = split.row_lengths().numpy()
    first = split[:, :1].flat_values.numpy()
    tokens, k = [], 0
    for length in lengths:
        tokens.append(first[k].decode("utf-8") if length == 1 else None)
        k += length > 0
    return tokens


@dataclass(frozen=True)
class VectorsReport:
    """What a vectors file gave a vocabulary (written as vectors.json in the run directory)."""

    file: str
    format: str
    dim: int
    words: int  # training words of the vocabulary (PAD and OOV aside)
    words_with_vectors: int
    lowercase_matches: int  # of those, found lower-cased rather than exactly
    tokens: int  # training tokens
    tokens_with_vectors: int
    vector_words: int  # words of the file added to the vocabulary for prediction time
    table_megabytes: float  # the pretrained table an export carries (float32)
    file_words: int
    seconds: float

    @classmethod
    def load(cls, path: str | os.PathLike) -> VectorsReport:
        return cls(**artifacts.read_json(path))

    def summary(self) -> str:
        return (f"vectors: {self.words_with_vectors / max(self.words, 1):.1%} of {self.words:,} training words and "
                f"{self.tokens_with_vectors / max(self.tokens, 1):.1%} of training tokens have one "
                f"({self.dim} dimensions, {self.file_words:,} in the file); {self.vector_words:,} more words for "
                f"prediction time ({self.table_megabytes:.1f} MB table)")  # fmt: skip


def with_vectors(
    vocab: Vocabulary,
    path: str,
    extra: int,
    counts: collections.Counter[bytes],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Vocabulary, np.ndarray, VectorsReport]:
    """`vocab` with at most `extra` words of the vectors file at `path` added after its training words, the
    pretrained table (float32 [vocabulary size, dim], a row per token: zeros for PAD, OOV and words without a
    vector) and a report; `counts` are the training split's word counts (`count_words`)."""
    if vocab.level != "word" or vocab.vector_words:
        raise ValueError("with_vectors takes a word-level vocabulary without vectors")
    start = time.monotonic()
    words = vocab.tokens[2:]
    found = vectors.read(path, words, extra=extra, normalize=lambda batch: as_single_words(batch, vocab.standardize),
                         progress=progress)  # fmt: skip
    table = np.concatenate([np.zeros((2, found.dim), np.float32), found.vectors, found.extra_vectors])
    result = dataclasses.replace(vocab, tokens=vocab.tokens + found.extra_words, vector_words=len(found.extra_words),
                                 vector_dim=found.dim)  # fmt: skip
    covered = set(np.asarray(words, dtype=object)[found.matched].tolist()) | set(found.extra_words)
    total = sum(counts.values())
    in_vectors = sum(count for word, count in counts.items() if word.decode("utf-8") in covered)
    report = VectorsReport(
        file=str(path),
        format=found.format,
        dim=found.dim,
        words=len(words),
        words_with_vectors=int(found.matched.sum()),
        lowercase_matches=int(found.lowered.sum()),
        tokens=total,
        tokens_with_vectors=in_vectors,
        vector_words=len(found.extra_words),
        table_megabytes=round(table.nbytes / 1e6, 1),
        file_words=found.words_read,
        seconds=round(time.monotonic() - start, 1),
    )
    return result, table, report


def word_ngrams(word: str, sizes: Sequence[int]) -> list[str]:
    """The character n-grams of WORD_START + word (its first MAX_NGRAM_WORD_CHARS characters) + WORD_END,
    shortest first, then left to right: the order of `tf.strings.ngrams` with several widths, which
    `encode_words` uses."""
    marked = WORD_START + word[:MAX_NGRAM_WORD_CHARS] + WORD_END
    return [marked[i : i + n] for n in sizes for i in range(len(marked) - n + 1)]


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


def ngram_table(vocab: Vocabulary) -> tf.lookup.StaticHashTable | None:
    """n-gram -> id (len(tokens) + index); unknown n-grams map to 0. None for a vocabulary without n-grams."""
    if not vocab.ngrams:
        return None
    keys = tf.constant(vocab.ngrams, dtype=tf.string)
    values = tf.range(vocab.size, vocab.embedding_rows, dtype=tf.int64)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=0)


def inference_batch(vocab: Vocabulary, batch_size: int | None = None) -> int:
    """Texts per inference pass: `batch_size` (None: no wish), fewer where `INFERENCE_WORDS` would be exceeded by
    texts of `vocab.sequence_length` words."""
    most = max(1, INFERENCE_WORDS // max(1, vocab.sequence_length))
    return most if batch_size is None else max(1, min(batch_size, most))


def encode_words(
    texts: tf.Tensor, vocab: Vocabulary, table: tf.lookup.StaticHashTable, ngrams: tf.lookup.StaticHashTable = None
) -> tf.Tensor:
    """[batch] strings -> [batch, 1 <= width <= sequence_length] int32 ids, right-padded with 0; with sub-words
    (`ngrams`, the vocabulary's `ngram_table`) [batch, width, vocab.word_width]: per word its id, then the ids of
    its known n-grams (the first ngrams_per_word of them), then 0s.

    At least one column, so that a batch of empty texts is still a (fully masked) sequence."""
    words = split_words(texts, vocab.standardize)[:, : vocab.sequence_length]
    ids = tf.ragged.map_flat_values(table.lookup, words)
    if not vocab.ngrams:
        ids = tf.cast(ids.to_tensor(default_value=0), tf.int32)
        return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])
    if ngrams is None:
        raise ValueError("this vocabulary has n-grams: pass its ngram_table")
    heads = tf.strings.substr(words.flat_values, 0, MAX_NGRAM_WORD_CHARS, unit="UTF8_CHAR")
    marked = tf.strings.unicode_split(tf.strings.join([WORD_START, heads, WORD_END]), "UTF-8")
    gram_ids = tf.ragged.map_flat_values(ngrams.lookup, tf.strings.ngrams(marked, list(vocab.ngram_sizes), ""))
    known = tf.ragged.boolean_mask(gram_ids, gram_ids > 0)[:, : vocab.ngrams_per_word]
    per_word = tf.concat([tf.expand_dims(ids.flat_values, 1), known], axis=1)  # [words, (1 + n-grams)]
    per_word = per_word.to_tensor(default_value=0, shape=[None, vocab.word_width])
    out = tf.RaggedTensor.from_row_splits(tf.cast(per_word, tf.int32), ids.row_splits).to_tensor(default_value=0)
    return tf.pad(out, [[0, 0], [0, tf.maximum(1 - tf.shape(out)[1], 0)], [0, 0]])


def encode_chars(texts: tf.Tensor, table: tf.lookup.StaticHashTable) -> tf.RaggedTensor:
    """[batch] strings -> ragged [batch, (chars)] int32 ids."""
    return tf.cast(tf.ragged.map_flat_values(table.lookup, split_chars(texts)), tf.int32)


def decode_chars(ids: tf.Tensor | tf.RaggedTensor, vocab: Vocabulary) -> tf.Tensor:
    """[batch, (length)] ids, dense or ragged -> [batch] strings (OOV decodes to U+FFFD)."""
    chars = tf.constant(("\ufffd",) + vocab.tokens[1:])
    return tf.strings.reduce_join(tf.gather(chars, ids), axis=-1)


def check_vocabulary_level(vocab: Vocabulary, level: str, what: str) -> None:
    if vocab.level != level:
        raise ValueError(f"a {what} needs a {level}-level vocabulary, got a {vocab.level}-level one")
