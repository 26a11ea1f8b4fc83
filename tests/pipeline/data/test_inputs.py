"""tf.data input pipelines: word dropout and the pipelines' options (the rest is covered through training and
evaluation tests)."""

import numpy as np
import tensorflow as tf

from pipeline.data.inputs import next_char_dataset, sentiment_dataset
from pipeline.data.text import OOV, PAD, Vocabulary, build_word_vocabulary, encode_words, lookup_table, ngram_table

WORDS = tuple(f"w{i}" for i in range(40))


def _dataset(word_dropout, seed=0):
    vocab = Vocabulary("word", (PAD, OOV) + WORDS, "lower_and_strip_punctuation", 64)
    texts = [" ".join(WORDS)] * 50 + ["w7"] * 10
    examples = tf.data.Dataset.from_tensor_slices({"text": texts, "label": ["pos"] * 60})
    return sentiment_dataset(examples, vocab, ("neg", "pos"), 8, shuffle_buffer=100, seed=seed,
                             word_dropout=word_dropout)  # fmt: skip


def _epoch(ds):
    return [row[row > 0].tolist() for ids, _ in ds.as_numpy_iterator() for row in ids]


def test_word_dropout_deletes_words_in_order_and_keeps_one():
    rows = _epoch(_dataset(0.3))
    full = list(range(2, 42))
    long_rows = [r for r in rows if len(r) > 1]
    kept = np.mean([len(r) / len(full) for r in long_rows])
    assert 0.6 < kept < 0.8  # 40 words x 50 examples: the kept fraction is 0.7 +- 0.01 (one sd)
    for r in long_rows:
        assert r == sorted(r) and set(r) <= set(full)  # a subsequence: order kept, nothing inserted
    assert all(len(r) >= 1 for r in rows)  # a one-word example never becomes empty


def test_word_dropout_is_seeded_and_differs_between_epochs():
    ds = _dataset(0.3, seed=1)
    first, second = _epoch(ds), _epoch(ds)
    assert first != second
    assert _epoch(_dataset(0.3, seed=1)) == first
    assert _epoch(_dataset(0.3, seed=2)) != first
    assert all(len(r) in (1, 40) for r in _epoch(_dataset(0.0)))


def test_random_offset_moves_the_windows_each_pass_and_keeps_them_contiguous():
    vocab = Vocabulary("char", (OOV,) + tuple("abcdefghij"))
    text = "abcdefghij" * 30
    chunks = tf.data.Dataset.from_tensor_slices([text[i : i + 50] for i in range(0, len(text), 50)])

    def first_chars(seed, random_offset=True, passes=8):
        ds = next_char_dataset(chunks, vocab, 4, 10, seed=seed, random_offset=random_offset)
        firsts = []
        for _ in range(passes):
            batches = list(ds.as_numpy_iterator())
            for x, y in batches:
                assert np.array_equal(x[:, 1:], y[:, :-1]) and np.array_equal(x % 10 + 1, y)
            firsts.append(int(batches[0][0][0, 0]))
        return firsts

    # The text repeats every 10 characters, so a window's first character is its offset (id 1 is "a").
    moved = first_chars(seed=0)
    assert len(set(moved)) > 2 and all(1 <= c <= 10 for c in moved)
    assert first_chars(seed=0) == moved  # the run's seed decides the offsets
    assert first_chars(seed=1) != moved
    assert set(first_chars(seed=0, random_offset=False)) == {1}


def test_pipelines_run_without_tf_data_autotuning():
    """Deleting an autotuned iterator can wait tens of seconds for its idle optimization thread, and Keras deletes
    the last validation iterator at every evaluation (see `pipeline.data.inputs._prefetched`). Timing that here would
    be flaky, so this checks the option, and that the batches are still right."""
    vocab = Vocabulary("char", (OOV, "a", "b"))
    chunks = tf.data.Dataset.from_tensor_slices(["abab" * 25, "ba" * 51])
    datasets = {
        "sentiment": _dataset(0.0),
        "sentiment, bucketing": sentiment_dataset(
            tf.data.Dataset.from_tensor_slices({"text": ["w1 w2", "w3"], "label": ["neg", "pos"]}),
            Vocabulary("word", (PAD, OOV) + WORDS, "lower_and_strip_punctuation", 64),
            ("neg", "pos"),
            2,
            bucketing=True,
        ),
        "next_char": next_char_dataset(chunks, vocab, 2, 9, shuffle_buffer=10, seed=0),
    }
    for name, ds in datasets.items():
        assert ds.options().autotune.enabled is False, name
    x, y = next(iter(datasets["next_char"]))
    assert x.shape == (2, 9) and np.array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])
    assert sum(len(row) for row in _epoch(datasets["sentiment"])) == 50 * 40 + 10


def test_subword_batches_keep_each_word_with_its_ngrams_through_word_dropout_and_bucketing():
    vocab = build_word_vocabulary([tf.constant(["rate rated rates rat"])], 20, "none", 64, 1, (3,), 100, 4)
    table, grams = lookup_table(vocab), ngram_table(vocab)
    texts = ["rate rated rates rat " * 5] * 20 + ["rat"] * 4
    words = encode_words(tf.constant(["rate rated rates rat"]), vocab, table, grams).numpy()[0]
    examples = tf.data.Dataset.from_tensor_slices({"text": texts, "label": ["pos"] * 24})
    for options in ({"word_dropout": 0.3, "shuffle_buffer": 30}, {"bucketing": True}):
        batches = list(sentiment_dataset(examples, vocab, ("neg", "pos"), 8, **options).as_numpy_iterator())
        ids = [row[row[:, 0] > 0] for x, _ in batches for row in x]
        assert all(x.shape[2] == vocab.word_width for x, _ in batches), options
        # Every word kept arrives whole: its id and its n-grams' ids, as encode_words gives them.
        assert all(any((word == w).all() for w in words) for row in ids for word in row), options
