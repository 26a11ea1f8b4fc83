"""The vectors reader on small files of every format, and on every kind of bad file."""

import gzip
import re

import numpy as np
import pytest

from pipeline.data import vectors
from pipeline.errors import DataError

WORDS = {"the": [0.1, 0.2, 0.3], "film": [1.0, -1.0, 0.5], "Paris": [2.0, 0.0, -2.0], "good": [0.0, 1.5, 0.25]}


def glove_text(words=WORDS) -> bytes:
    return "".join(f"{w} {' '.join(repr(v) for v in vec)}\n" for w, vec in words.items()).encode()


def vec_text(words=WORDS) -> bytes:
    # fastText's .vec: a header, and a space after the last value
    body = "".join(f"{w} {' '.join(repr(v) for v in vec)} \n" for w, vec in words.items())
    return f"{len(words)} 3\n{body}".encode()


def word2vec_binary(words=WORDS) -> bytes:
    out = f"{len(words)} 3\n".encode()
    for w, vec in words.items():
        out += w.encode() + b" " + np.asarray(vec, "<f4").tobytes() + b"\n"
    return out


@pytest.mark.parametrize(
    "content, fmt",
    [(glove_text(), "glove"), (vec_text(), "word2vec_text"), (word2vec_binary(), "word2vec_binary")],
    ids=["glove", "vec", "binary"],
)
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_each_format_reads_the_same_vectors(tmp_path, content, fmt, compressed):
    path = tmp_path / ("v.gz" if compressed else "v.txt")
    path.write_bytes(gzip.compress(content) if compressed else content)
    assert vectors.sniff(path) == (fmt, 3, compressed)
    found = vectors.read(path, ["film", "missing", "the"])
    assert found.format == fmt and found.dim == 3 and found.words_read == 4
    np.testing.assert_allclose(found.vectors, [WORDS["film"], [0, 0, 0], WORDS["the"]], rtol=1e-6)
    assert found.exact.tolist() == [True, False, True] and not found.lowered.any()


def test_exact_form_first_then_lower_cased(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(glove_text({"Good": [9.0, 9.0, 9.0], "paris": [1.0, 1.0, 1.0], "good": [0.0, 1.5, 0.25],
                                 "Paris": [2.0, 0.0, -2.0]}))  # fmt: skip
    found = vectors.read(path, ["good", "paris", "Paris", "PARIS"])
    np.testing.assert_allclose(found.vectors, [[0, 1.5, 0.25], [1, 1, 1], [2, 0, -2], [1, 1, 1]])
    assert found.exact.tolist() == [True, True, True, False]
    assert found.lowered.tolist() == [False, False, False, True]


def test_extra_words_are_the_first_others_as_the_tokenizer_makes_them(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(glove_text({",": [0, 0, 1], "the": [1, 0, 0], "Rome": [5, 5, 5], "cat": [0, 1, 0],
                                 "rome": [6, 6, 6], "dog": [2, 2, 2], "emu": [3, 3, 3]}))  # fmt: skip

    def lower_words_only(batch):
        return [w.lower() if w.isalpha() else None for w in batch]

    found = vectors.read(path, ["the"], extra=3, normalize=lower_words_only)
    # "," is no word, "the" is the vocabulary's, "Rome" is replaced by the exact "rome"; the limit keeps 3
    assert found.extra_words == ("rome", "cat", "dog")
    np.testing.assert_allclose(found.extra_vectors, [[6, 6, 6], [0, 1, 0], [2, 2, 2]])
    assert vectors.read(path, ["the"], extra=0).extra_words == ()


def test_a_word_holding_spaces_is_skipped_not_misread(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"the 0.1 0.2 0.3\n. . . 0.5 0.5 0.5\nfilm 1 2 3\n")  # GloVe 840B has such lines
    found = vectors.read(path, ["the", "film"])
    assert found.skipped == 1 and found.matched.all()


def test_other_whitespace_between_values_is_read(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"the 0.1  0.2\t0.3\r\nfilm 1 2 3\n")
    np.testing.assert_allclose(vectors.read(path, ["the"]).vectors, [[0.1, 0.2, 0.3]], rtol=1e-6)


def test_progress_reaches_the_file_size(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(glove_text())
    seen = []
    vectors.read(path, ["the"], progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"the 0.1 0.2 0.3\nfilm 1 2\n", "line 2: 2 values, expected 3 (as on line 1)"),
        (b"2 3\nthe 0.1 0.2 0.3\nfilm 1 2 3 4\n", "line 3: 4 values, expected 3 (as on the header)"),
        (b"the 0.1 0.2 0.3\nfilm 1 x 3\n", "line 2: a value is not a number"),
        (b"the 0.1 nan 0.3\n", "line 1: a value is not finite"),
        (bytes(range(256)) * 8, "not a vectors file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(200), "not a vectors file"),
        (b"word another word\n", "not a vectors file"),
        (b"3 0\n", "dimension 0"),
        (b"2 3\nthe " + np.zeros(3, "<f4").tobytes() + b"\nfi", "record 2 of 2 ends early"),
        (gzip.compress(glove_text())[:40], "cannot be read"),
    ],
    ids=[
        "empty",
        "blank",
        "short-line",
        "long-line",
        "not-number",
        "nan",
        "garbage",
        "png",
        "words",
        "dim0",
        "truncated-binary",
        "truncated-gzip",
    ],  # fmt: skip
)
def test_a_bad_file_is_one_error_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.vec"
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(message)) as error:
        vectors.read(path, ["the", "film"])
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_missing_path_or_a_folder(tmp_path):
    with pytest.raises(DataError, match="no such vectors file"):
        vectors.read(tmp_path / "nope.txt", ["the"])
    with pytest.raises(DataError, match="a folder"):
        vectors.read(tmp_path, ["the"])
