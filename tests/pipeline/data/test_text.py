import numpy as np
import tensorflow as tf

from pipeline.data import text


def batches(*texts):
    return [tf.constant(list(texts))]


def test_word_vocabulary_is_ranked_by_count_then_token_and_capped():
    vocab = text.build_word_vocabulary(
        batches("b a c a", "B, c! d<br />e", "a"),
        max_tokens=5,
        standardize_mode="lower_and_strip_punctuation",
        sequence_length=3,
    )
    # counts: a 3, b 2, c 2, d 1, e 1 -> ties alphabetical; 5 = pad + OOV + 3 words
    assert vocab.tokens == ("", "[UNK]", "a", "b", "c")
    assert vocab.size == 5 and vocab.oov_id == 1


def test_encode_words_truncates_pads_and_maps_unknown_to_oov():
    vocab = text.build_word_vocabulary(batches("a b c"), 10, "lower_and_strip_punctuation", 3)
    ids = text.encode_words(tf.constant(["C a zzz b", "", "A."]), vocab, text.lookup_table(vocab))
    a, b, c = (vocab.tokens.index(w) for w in "abc")
    np.testing.assert_array_equal(ids.numpy(), [[c, a, 1], [0, 0, 0], [a, 0, 0]])
    assert ids.dtype == tf.int32


def test_char_vocabulary_and_round_trip_with_unknown_and_invalid_bytes():
    vocab = text.build_char_vocabulary(batches("abca\n", "é"))
    assert vocab.tokens[:3] == ("[UNK]", "a", "\n")  # 'a' twice, then by code point
    table = text.lookup_table(vocab)
    ids = text.encode_chars(tf.constant(["cab", "z😀", b"\xff"]), table)
    assert ids.to_list()[0] == [vocab.tokens.index(ch) for ch in "cab"]
    assert ids.to_list()[1] == [0, 0] and ids.to_list()[2] == [0]  # unknown, and U+FFFD from invalid UTF-8
    decoded = text.decode_chars(ids, vocab).numpy()
    assert decoded[0].decode() == "cab" and decoded[1].decode() == "\ufffd\ufffd"


def test_min_char_count_drops_rare_characters():
    vocab = text.build_char_vocabulary(batches("aab"), min_count=2)
    assert vocab.tokens == ("[UNK]", "a")


def test_vocabulary_save_load(tmp_path):
    vocab = text.build_word_vocabulary(batches("x y\u2028z"), 10, "none", 7)
    vocab.save(tmp_path / "v.json")
    assert text.Vocabulary.load(tmp_path / "v.json") == vocab


def test_encoders_run_inside_a_graph():
    vocab = text.build_char_vocabulary(batches("hello"))
    table = text.lookup_table(vocab)
    fn = tf.function(lambda s: text.decode_chars(text.encode_chars(s, table), vocab))
    assert fn(tf.constant(["hole"])).numpy()[0] == b"hole"


def test_subword_vocabulary_keeps_ngrams_of_at_least_two_training_words():
    # "rated" and "rates" occur once each, below min_count: they are not words of the vocabulary, but their
    # n-grams are n-grams of it when shared.
    vocab = text.build_word_vocabulary(batches("rat rat rated rates"), 10, "none", 8, min_count=2,
                                       ngram_sizes=(3, 4), max_ngrams=100, ngrams_per_word=4)  # fmt: skip
    assert vocab.tokens == ("", "[UNK]", "rat")
    # <ra rat <rat (all three words), ate rate (rated, rates); by spread, then alphabetically
    assert vocab.ngrams == ("<ra", "<rat", "rat", "ate", "rate")
    assert vocab.embedding_rows == 8 and vocab.word_width == 5
    assert text.word_ngrams("rat", (3, 4)) == ["<ra", "rat", "at>", "<rat", "rat>"]
    capped = text.build_word_vocabulary(batches("rat rated rates"), 10, "none", 8, 1, (3, 4), 2, 4)
    assert capped.ngrams == ("<ra", "<rat")


def test_encode_words_with_subwords_gives_each_word_its_known_ngrams():
    vocab = text.build_word_vocabulary(batches("rat rat rated rates"), 10, "none", 2, 2, (3, 4), 100, 2)
    ids = text.encode_words(tf.constant(["rat rated zzz", "", "rates"]), vocab, text.lookup_table(vocab),
                            text.ngram_table(vocab))  # fmt: skip
    gram = {g: vocab.size + i for i, g in enumerate(vocab.ngrams)}
    # Words cut at sequence_length 2; per word its id, then its first two known n-grams (unknown ones skipped);
    # an unknown word with no known n-gram is the OOV id alone.
    np.testing.assert_array_equal(ids.numpy(), [
        [[2, gram["<ra"], gram["rat"]], [1, gram["<ra"], gram["rat"]]],
        [[0, 0, 0], [0, 0, 0]],
        [[1, gram["<ra"], gram["rat"]], [0, 0, 0]],
    ])  # fmt: skip
    only_unknown = text.encode_words(tf.constant(["zzz"]), vocab, text.lookup_table(vocab), text.ngram_table(vocab))
    np.testing.assert_array_equal(only_unknown.numpy(), [[[1, 0, 0]]])
    empty = text.encode_words(tf.constant(["", ""]), vocab, text.lookup_table(vocab), text.ngram_table(vocab))
    assert empty.shape == (2, 1, 3)


def test_subword_vocabulary_save_load(tmp_path):
    vocab = text.build_word_vocabulary(batches("rat rat rated rates"), 10, "none", 8, 1, (3, 4), 100, 4)
    vocab.save(tmp_path / "v.json")
    assert text.Vocabulary.load(tmp_path / "v.json") == vocab


def test_ngrams_come_from_a_words_first_characters_only():
    long_word = "ab" * 100_000
    vocab = text.build_word_vocabulary(batches("abab abba " + long_word), 10, "none", 4, 1, (3,), 100, 200)
    head = text.word_ngrams(long_word, (3,))
    assert len(head) == text.MAX_NGRAM_WORD_CHARS and head[-1] == "ab>"
    ids = text.encode_words(tf.constant([long_word]), vocab, text.lookup_table(vocab), text.ngram_table(vocab))
    gram = {g: vocab.size + i for i, g in enumerate(vocab.ngrams)}
    expected = [gram[g] for g in head if g in gram]
    row = ids.numpy()[0, 0]
    assert row[1 : 1 + len(expected)].tolist() == expected and not row[1 + len(expected) :].any()


def test_an_inference_pass_holds_at_most_inference_words():
    def vocab(sequence_length):
        return text.Vocabulary("word", (text.PAD, text.OOV, "a"), "none", sequence_length)

    most = text.INFERENCE_WORDS // 256
    assert text.inference_batch(vocab(256)) == most  # the export's passes
    assert text.inference_batch(vocab(256), batch_size=most // 2) == most // 2  # evaluate.batch_size, below
    assert text.inference_batch(vocab(1024), batch_size=most) == most // 4  # long texts: fewer a pass
    assert text.inference_batch(vocab(text.INFERENCE_WORDS * 2), batch_size=8) == 1  # never none
