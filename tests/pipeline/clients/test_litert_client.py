"""The reference client's plain-Python tokenization equals pipeline.data.text's TensorFlow tokenization, and its seeded
sampler equals tf.random.stateless_categorical."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.clients.litert_client import LiteRTExportError, Tokenizer, export_folder, stateless_categorical
from pipeline.data.text import (
    build_char_vocabulary,
    build_word_vocabulary,
    decode_chars,
    encode_chars,
    encode_words,
    lookup_table,
    ngram_table,
    standardize,
)
from pipeline.export.litert import tokenization_rules

HAND_PICKED = [
    "", " ", "A wonderful film!", "Dull, dull... DULL?!", "it's  a\tfine\nfilm\r\n", "x" * 40,
    " ".join(f"word{i}" for i in range(30)),  # longer than sequence_length
    "great<br />film<br>and<br/>plot<BR>end<br\t/>x<br\v>y<br \n />z", "(brackets) [square] {curly} ~tilde~ `tick`",
    "ΣΑΣ ΌΣΟΣ Σ ΑΣ. ΑΣ' σ΄Σ ΑΣ\u0301 Α\u0301Σ", "İstanbul ISTANBUL ıi", "STRASSE Straße ẞ", "ǅemal ǄEMAL ǆ",
    "Ⱟ Ꟁ 𐕰 Ა Ꭰ 𐐀 Ⅻ Ⓐ", "naïve CAFÉ Ñandú ÅNGSTRÖM", "Привет МИР", "Բարեւ", "日本語 テキスト", "🎬🍿 GREAT 👍",
    "no\u00a0break\u2003em\x1cfs\x85nel\u200bzw", "vertical\vtab\fform", "nul\x00INSIDE", "\x00LEADING",
    "tail NUL\x00", "a\u0130b", "combining e\u0301 E\u0301",
]  # fmt: skip
INVALID_UTF8 = [b"\xff caf\xe9 \xc3", b"\xed\xa0\x80 surrogate", b"\xf0\x9f\x98 cut", b"ok \xe2\x82\xac \x80\x80"]
POOL = list("abcXYZ  \t\n.,!?'-<>/") + ["<br>", "<BR/>", "Σ", "σ", "ς", "İ", "ẞ", "\u0301", "🎬", "\x00", "\xa0",
                                         "\u2003", "\v", "Ⱟ", "É", "ǅ", "ᾈ", "Ω"]  # fmt: skip


def varied_texts(n=300, seed=0):
    rng = np.random.default_rng(seed)
    generated = ["".join(rng.choice(POOL, size=rng.integers(0, 30))) for _ in range(n)]
    return HAND_PICKED + generated + INVALID_UTF8


def as_bytes(texts):
    return [t if isinstance(t, bytes) else t.encode("utf-8") for t in texts]


def tokenizer_for(vocab):
    return Tokenizer(vocab.level, vocab.tokens, vocab.standardize, vocab.sequence_length, tokenization_rules(vocab))


@pytest.mark.parametrize("mode", ["lower_and_strip_punctuation", "lower", "strip_punctuation", "none"])
def test_word_tokenization_equals_tensorflow(mode):
    texts = varied_texts()
    data = tf.constant(as_bytes(texts))
    vocab = build_word_vocabulary([data], max_tokens=400, standardize_mode=mode, sequence_length=12)
    tokenizer = tokenizer_for(vocab)
    assert [tokenizer.standardize(t) for t in texts] == [s.decode("utf-8") for s in standardize(data, mode).numpy()]
    expected = encode_words(data, vocab, lookup_table(vocab)).numpy()
    np.testing.assert_array_equal(tokenizer.encode_words(texts), expected)
    # Batches are padded to their own longest text, as in the SavedModel.
    for start in (0, 7, 100):
        batch = texts[start : start + 5]
        expected = encode_words(tf.constant(as_bytes(batch)), vocab, lookup_table(vocab)).numpy()
        np.testing.assert_array_equal(tokenizer.encode_words(batch), expected)
    assert tokenizer.encode_words([]).shape == (0, 1)


def test_char_tokenization_equals_tensorflow():
    texts = varied_texts(n=100, seed=1)
    vocab = build_char_vocabulary([tf.constant(as_bytes(texts[: len(texts) // 2]))], min_count=2)
    tokenizer = tokenizer_for(vocab)
    table = lookup_table(vocab)
    expected = encode_chars(tf.constant(as_bytes(texts)), table).to_list()
    assert [tokenizer.encode_chars(t) for t in texts] == expected
    assert 0 in {i for row in expected for i in row}, "the texts hold characters outside the vocabulary"
    decoded = decode_chars(tf.ragged.constant(expected, dtype=tf.int32), vocab).numpy()
    assert [tokenizer.decode_chars(row) for row in expected] == [d.decode("utf-8") for d in decoded]


def test_seeded_sampler_equals_tensorflow_stateless_categorical():
    rng = np.random.default_rng(0)
    for trial in range(200):
        logits = (rng.normal(size=int(rng.integers(2, 90))) * rng.uniform(0.1, 6)).astype(np.float32)
        if trial % 3 == 0:
            logits[0] = -1e9  # the excluded out-of-vocabulary entry, as the SavedModel masks it
        seed = (int(rng.integers(-(2**63), 2**63 - 1)), int(rng.integers(0, 1000)))
        expected = tf.random.stateless_categorical(logits[None], 1, seed=tf.constant(seed, tf.int64))[0, 0]
        assert stateless_categorical(logits, seed) == int(expected), (trial, seed)


def test_a_folder_without_an_export_is_refused(tmp_path):
    with pytest.raises(LiteRTExportError, match="not a LiteRT export"):
        export_folder(tmp_path)


def test_subword_tokenization_equals_tensorflow():
    texts = varied_texts()
    data = tf.constant(as_bytes(texts))
    # Few n-gram slots, so that long words are cut as training cuts them.
    vocab = build_word_vocabulary(
        [data[:100]],
        max_tokens=200,
        standardize_mode="lower_and_strip_punctuation",
        sequence_length=12,
        ngram_sizes=(2, 3, 4),
        max_ngrams=300,
        ngrams_per_word=5,
    )
    assert len(vocab.ngrams) == 300
    tokenizer = Tokenizer(
        vocab.level, vocab.tokens, vocab.standardize, vocab.sequence_length, tokenization_rules(vocab), vocab.ngrams
    )
    expected = encode_words(data, vocab, lookup_table(vocab), ngram_table(vocab)).numpy()
    assert expected.shape[2] == 6 and (expected[..., 5] > 0).any() and (expected[:, :, 0] == 1).any()
    np.testing.assert_array_equal(tokenizer.encode_words(texts), expected)
    for start in (0, 7, 100):
        batch = tf.constant(as_bytes(texts[start : start + 5]))
        expected = encode_words(batch, vocab, lookup_table(vocab), ngram_table(vocab)).numpy()
        np.testing.assert_array_equal(tokenizer.encode_words(texts[start : start + 5]), expected)
    assert tokenizer.encode_words([]).shape == (0, 1, 6)


def test_the_clients_copies_of_the_serving_limits_are_the_pipelines():
    # litert_client runs on devices without rnnpipe, so it keeps its own copies of the values it needs.
    from pipeline import sampling
    from pipeline.clients import litert_client

    assert litert_client.MIN_TEMPERATURE == sampling.MIN_TEMPERATURE
    assert litert_client.DEFAULT_MAX_LENGTH == sampling.DEFAULT_MAX_LENGTH
