"""tf.data input pipelines: raw text in, (token ids, targets) batches out, tokenized inside tf.data.

sentiment: words -> ids with `pipeline.data.text.encode_words` (the function the SavedModel uses too) in a parallel map,
cached after tokenization, shuffled with the run's seed, then padded batches; with `bucketing`, examples of similar
length are batched together (less padding, fewer wasted recurrent steps). With `word_dropout` > 0 (training
only) each word of an example is deleted with that probability, anew at every pass (an example keeps at least one
word); the draws come from the seed, so a run is reproducible.
next_char: the character ids of the split's text, streamed, cut into non-overlapping windows of
`sequence_length + 1` characters; input = window[:-1], target = window[1:].
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipeline.data.text import Vocabulary, encode_chars, encode_words, lookup_table, ngram_table

AUTOTUNE = tf.data.AUTOTUNE
# Upper edges of the length buckets (words); beyond the last, one bucket up to sequence_length.
BUCKET_BOUNDARIES = (16, 32, 64, 96, 128, 192, 256, 384)


def sentiment_dataset(
    examples: tf.data.Dataset,
    vocab: Vocabulary,
    labels: tuple[str, ...],
    batch_size: int,
    *,
    shuffle_buffer: int = 0,
    seed: int = 0,
    bucketing: bool = False,
    word_dropout: float = 0.0,
) -> tf.data.Dataset:
    encode_text = _text_encoder(vocab)
    classes = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(labels), tf.range(len(labels), dtype=tf.int64)), -1
    )

    def encode(example):
        return encode_text(example["text"]), tf.cast(classes.lookup(example["label"]), tf.int32)

    ds = examples.map(encode, num_parallel_calls=AUTOTUNE).cache()
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if word_dropout:
        ds = _drop_words(ds, word_dropout, seed)
    shape = [None] if vocab.word_width == 1 else [None, vocab.word_width]
    if bucketing:
        boundaries = [b for b in BUCKET_BOUNDARIES if b < vocab.sequence_length]
        ds = ds.bucket_by_sequence_length(
            lambda ids, label: tf.shape(ids)[0],
            bucket_boundaries=[b + 1 for b in boundaries],
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padded_shapes=(shape, []),
        )
    else:
        ds = ds.padded_batch(batch_size, padded_shapes=(shape, []))
    return _prefetched(ds)


def word_lm_dataset(
    texts: tf.data.Dataset,
    vocab: Vocabulary,
    batch_size: int,
    lm_words: int,
    *,
    bidirectional: bool,
    shuffle_buffer: int = 0,
    seed: int = 0,
    max_positions: int = 0,
) -> tf.data.Dataset:
    """Texts -> (ids, targets, weights) batches for next-word language models (build_word_language_models): per
    position the next word (forward; id 0 after the last) and, `bidirectional`, the previous one (id 0 before the
    first), weighted 1 where a word is. Words at or beyond `lm_words` are predicted as the out-of-vocabulary id.
    `max_positions` (0: no bound) caps a batch's texts x padded length, below `batch_size` texts where texts are
    long: a full softmax over the batch holds that many rows of logits."""
    ds = texts.map(_text_encoder(vocab), num_parallel_calls=AUTOTUNE).cache()
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    shape = [None] if vocab.word_width == 1 else [None, vocab.word_width]
    boundaries = [b for b in BUCKET_BOUNDARIES if b < vocab.sequence_length]
    longest = [*boundaries, vocab.sequence_length]  # of each bucket
    sizes = [max(1, min(batch_size, max_positions // n)) if max_positions else batch_size for n in longest]
    ds = ds.bucket_by_sequence_length(lambda ids: tf.shape(ids)[0], bucket_boundaries=[b + 1 for b in boundaries],
                                      bucket_batch_sizes=sizes, padded_shapes=shape)  # fmt: skip

    def targets(ids):
        word = ids if vocab.word_width == 1 else ids[..., 0]
        word = tf.where(word < lm_words, word, tf.fill(tf.shape(word), vocab.oov_id))
        weight = tf.cast(word > 0, tf.float32)
        forward = tf.pad(word[:, 1:], [[0, 0], [0, 1]])
        if not bidirectional:
            return ids, forward, weight
        backward = tf.pad(word[:, :-1], [[0, 0], [1, 0]])
        return ids, (forward, backward), (weight, weight)

    return _prefetched(ds.map(targets, num_parallel_calls=AUTOTUNE))


def with_unlabelled(labelled: tf.data.Dataset, texts: list[str], vocab: Vocabulary, batch_size: int,
                    seed: int = 0) -> tf.data.Dataset:  # fmt: skip
    """Each (ids, label) batch of `labelled` as ((ids, unlabelled ids), label): a batch of `texts` beside it, drawn
    shuffled and repeated, for the terms of the loss that need no label (virtual adversarial training)."""
    encode = _text_encoder(vocab)
    shape = [None] if vocab.word_width == 1 else [None, vocab.word_width]
    unlabelled = (tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string))
                  .map(encode, num_parallel_calls=AUTOTUNE).cache()
                  .shuffle(min(len(texts), 100_000), seed=seed, reshuffle_each_iteration=True).repeat()
                  .padded_batch(batch_size, padded_shapes=shape))  # fmt: skip
    return _prefetched(tf.data.Dataset.zip(labelled, unlabelled).map(lambda batch, more: ((batch[0], more), batch[1])))


def _text_encoder(vocab: Vocabulary):
    """One text (a scalar string) -> its ids, as encode_words gives them."""
    words, ngrams = lookup_table(vocab), ngram_table(vocab)

    def encode(text):
        return encode_words(tf.expand_dims(text, 0), vocab, words, ngrams)[0]

    return encode


def class_counts(examples: tf.data.Dataset, labels: tuple[str, ...]) -> np.ndarray:
    """Examples per class (index = class id) of labelled `examples`."""
    index = {label.encode("utf-8"): k for k, label in enumerate(labels)}
    counts = np.zeros(len(labels), np.int64)
    for batch in examples.map(lambda x: x["label"]).batch(4096).as_numpy_iterator():
        np.add.at(counts, [index[label] for label in batch.tolist()], 1)
    return counts


def _drop_words(ds: tf.data.Dataset, rate: float, seed: int) -> tf.data.Dataset:
    # One stateless draw per example, keyed by a seeded random stream: reproducible under a parallel map, and
    # different at every pass because the shuffle hands each position a different example.
    def drop(example, key):
        ids, label = example
        keep = tf.random.stateless_uniform(tf.shape(ids)[:1], seed=tf.stack([key, tf.constant(seed, tf.int64)])) >= rate
        kept = tf.boolean_mask(ids, keep)
        return tf.cond(tf.size(kept) > 0, lambda: kept, lambda: ids[:1]), label

    return tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed))).map(drop, num_parallel_calls=AUTOTUNE)


def char_ids(chunks: tf.data.Dataset, vocab: Vocabulary) -> tf.data.Dataset:
    """A split's text (string chunks) -> a stream of int32 character ids."""
    table = lookup_table(vocab)
    return chunks.map(lambda chunk: encode_chars(tf.expand_dims(chunk, 0), table)[0]).unbatch()


def next_char_dataset(
    chunks: tf.data.Dataset,
    vocab: Vocabulary,
    batch_size: int,
    sequence_length: int,
    *,
    shuffle_buffer: int = 0,
    seed: int = 0,
    drop_remainder: bool = False,
    random_offset: bool = False,
) -> tf.data.Dataset:
    """A text's (input window, next-character targets) pairs of `sequence_length` characters, batched.

    With `random_offset`, every pass over the text starts its windows at a random character in [0,
    sequence_length), drawn from `seed` anew each pass, so the window boundaries move between epochs and no
    character is always the first of a window, predicted from no context.
    """
    ids = char_ids(chunks, vocab)
    if random_offset:
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
        ids = draws.flat_map(lambda draw: ids.skip(draw % sequence_length))
    windows = ids.batch(sequence_length + 1, drop_remainder=True)
    ds = windows.map(lambda w: (w[:-1], w[1:]), num_parallel_calls=AUTOTUNE)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return _prefetched(ds.batch(batch_size, drop_remainder=drop_remainder))


def _prefetched(ds: tf.data.Dataset) -> tf.data.Dataset:
    """The batches, prefetched, with tf.data's autotuning off.

    With autotuning on, deleting an iterator waits for its optimization thread, which can sit in a timed wait
    for tens of seconds (TF 2.21; seen in a native stack dump). Keras deletes the previous epoch's validation
    iterator at the start of every evaluation, so `fit` stalled there at 0% CPU, for up to a third of a
    time-budgeted run. The maps here are light and the sentiment examples are cached, so the untuned defaults lose
    nothing measurable per training step.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(AUTOTUNE).with_options(options)
