import numpy as np
import tensorflow as tf

from pipeline import text


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
