"""tokenize with pretrained word vectors: the vocabulary and table it writes, what it reports, freshness, bad files;
and (slow) a model trained with them, whose exports give a word never seen in training its pretrained vector."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf

from pipeline import tasks
from pipeline.config import load_config
from pipeline.data.text import Vocabulary
from pipeline.errors import ConfigError, DataError, RunDirError
from pipeline.run.rundir import RunDir
from pipeline.stages import export, tokenize, train
from tests.pipeline.helpers import FILLER, NEGATIVE, POSITIVE, plain_text, sentiment_csv, write_config

# "zebra" and "Marvellous" never occur in the training data; "," is no word the tokenizer makes; "clumsy" is a
# training word the file lacks.
FILE_WORDS = [",", "the", "zebra", "Marvellous", *FILLER[1:], *POSITIVE, *NEGATIVE[:-1]]


def vectors_file(path, words=FILE_WORDS, dim=4):
    rng = np.random.default_rng(0)
    table = {word: rng.normal(size=dim).round(4) for word in words}
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in table.items()), encoding="utf-8")
    return path, table


def config_for(tmp_path, vectors="", **sections):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    tokenize_keys = {"pretrained_vectors": str(vectors)} if vectors else {}
    sections["tokenize"] = {**tokenize_keys, **sections.get("tokenize", {})}
    return load_config(write_config(tmp_path / "s.toml", "sentiment", data, **sections), [])


def test_vectors_give_the_vocabulary_its_table_and_the_files_other_words(tmp_path):
    path, table = vectors_file(tmp_path / "v.txt")
    config = config_for(tmp_path, path)
    result = tokenize.run(config, tmp_path / "run")
    rd = RunDir(tmp_path / "run")
    vocab = Vocabulary.load(rd.vocabulary)
    assert vocab.vector_dim == 4 and vocab.vector_words == 2
    assert vocab.tokens[vocab.trained_words :] == ("zebra", "marvellous")  # as the tokenizer makes them
    assert set(vocab.tokens[2 : vocab.trained_words]) == set(FILLER + POSITIVE + NEGATIVE)
    rows = np.load(rd.vectors)
    assert rows.shape == (vocab.size, 4) and not rows[:2].any()  # PAD and OOV
    for i, word in enumerate(vocab.tokens[2:], start=2):
        expected = table.get(word, table.get(word.capitalize(), np.zeros(4)))
        np.testing.assert_allclose(rows[i], expected, rtol=1e-6, err_msg=word)
    report = json.loads(rd.vectors_report.read_text())
    words = len(FILLER + POSITIVE + NEGATIVE)
    assert (report["words"], report["words_with_vectors"], report["vector_words"]) == (words, words - 1, 2)
    train_texts = [x["text"].decode() for x in tasks.get("sentiment").load_splits(config).train.as_numpy_iterator()]
    assert report["tokens"] == sum(len(text.split()) for text in train_texts)
    assert report["tokens"] - report["tokens_with_vectors"] == sum(text.split().count("clumsy") for text in train_texts)
    assert re.search(rf"vectors: 96\.\d% of {words} training words .* 2 more words for prediction time",
                     result.summary())  # fmt: skip
    assert "vectors:" in tokenize.run(config_for(tmp_path, path), tmp_path / "run").summary()  # kept, reported


def test_the_vector_words_bound_and_vectors_in_the_sub_word_vocabulary(tmp_path):
    path, _ = vectors_file(tmp_path / "v.txt")
    config = config_for(tmp_path, path, tokenize={"vector_words": 1, "max_ngram": 4})
    vocab = tokenize.run(config, tmp_path / "run").vocabulary
    assert vocab.vector_words == 1 and vocab.tokens[-1] == "zebra" and vocab.ngrams
    assert vocab.embedding_rows == vocab.size + len(vocab.ngrams)


def test_a_changed_vectors_file_outdates_tokenize_and_dropping_the_key_removes_the_table(tmp_path):
    path, _ = vectors_file(tmp_path / "v.txt")
    tokenize.run(config_for(tmp_path, path), tmp_path / "run")
    vectors_file(path, FILE_WORDS[:-2])
    with pytest.raises(RunDirError, match="vectors file .*v.txt changed"):
        tokenize.run(config_for(tmp_path, path), tmp_path / "run")
    tokenize.run(config_for(tmp_path), tmp_path / "run", overwrite=True)
    rd = RunDir(tmp_path / "run")
    assert not rd.vectors.exists() and not rd.vectors_report.exists()
    assert Vocabulary.load(rd.vocabulary).vector_dim == 0


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"the 1 2\nfilm 1\n", "line 2: 1 values, expected 2"), (bytes(range(256)) * 40, "not a vectors")],
)
def test_a_bad_vectors_file_stops_tokenize_and_writes_nothing(tmp_path, content, message):
    (tmp_path / "v.txt").write_bytes(content)
    with pytest.raises(DataError, match=message):
        tokenize.run(config_for(tmp_path, tmp_path / "v.txt"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_missing_vectors_file_is_refused_before_any_work(tmp_path):
    with pytest.raises(DataError, match="tokenize.pretrained_vectors: .*nope.txt does not exist"):
        tokenize.run(config_for(tmp_path, tmp_path / "nope.txt"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_next_char_refuses_vectors(tmp_path):
    data = {"train": str(plain_text(tmp_path / "corpus.txt"))}
    path = write_config(tmp_path / "c.toml", "next_char", data, tokenize={"pretrained_vectors": "v.txt"})
    with pytest.raises(ConfigError, match="tokenize.pretrained_vectors: next_char reads characters"):
        load_config(path, [])


@pytest.mark.slow
@pytest.mark.parametrize("max_ngram", [0, 4], ids=["words", "sub-words"])
def test_exports_give_a_word_unseen_in_training_its_pretrained_vector(tmp_path, max_ngram):
    from pipeline.clients.litert_client import LiteRTModel
    from pipeline.training.model import load_checkpoint

    path, table = vectors_file(tmp_path / "v.txt")
    formats = {"formats": ["saved_model", "litert"]}
    # Uncalibrated: the served probabilities are the checkpoint's softmax (calibration: stages/test_cv.py).
    config = config_for(tmp_path, path, tokenize={"max_ngram": max_ngram}, export=formats,
                        model={"fine_tune_vectors": True}, train={"calibration": "none"})  # fmt: skip
    run_dir = tmp_path / "run"
    vocab = tokenize.run(config, run_dir).vocabulary
    train.run(config, run_dir)
    exported = export.run(config, run_dir).path
    keras_model = load_checkpoint(RunDir(run_dir).best_model)
    zebra = vocab.tokens.index("zebra")
    embedding = keras_model.get_layer("embedding")
    ids = np.array([[zebra] + [0] * (vocab.word_width - 1)]).reshape(1, 1, -1).squeeze(-1 if max_ngram == 0 else ())
    np.testing.assert_allclose(np.asarray(embedding(ids))[0, 0, :4], table["zebra"], rtol=1e-6)

    texts = ["zebra", "qqqq", "a wonderful zebra film"]
    served = tf.saved_model.load(str(exported)).signatures["serving_default"](text=tf.constant(texts))
    probabilities = served["probabilities"].numpy()
    assert not np.allclose(probabilities[0], probabilities[1], atol=1e-4)  # the vector is what tells them apart
    from pipeline.data.text import encode_words, lookup_table, ngram_table

    encoded = encode_words(tf.constant(texts[:1]), vocab, lookup_table(vocab), ngram_table(vocab))
    assert int(tf.reshape(encoded, [-1])[0]) == zebra
    reference = tf.nn.softmax(keras_model(encoded, training=False)).numpy()
    np.testing.assert_allclose(probabilities[:1], reference, atol=1e-5)
    litert = LiteRTModel(exported / "litert").probabilities(texts)
    np.testing.assert_allclose(litert, probabilities, atol=1e-5)


def test_tokenize_says_how_many_training_texts_the_sequence_length_cuts(tmp_path):
    path = tmp_path / "train.csv"
    # Words per text 1..40, four times over; runs of spaces are not words.
    rows = [f"{'  '.join(['good'] * n)}  ,{'pos' if n % 2 else 'neg'}" for n in range(1, 41)] * 4
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    data = {"train": str(path), "validation_fraction": 0.25, "test_fraction": 0.1}
    config = load_config(write_config(tmp_path / "c.toml", "sentiment", data, tokenize={"sequence_length": 30}))
    result = tokenize.run(config, tmp_path / "run")
    train_texts = [x["text"].decode() for x in tasks.get("sentiment").load_splits(config).train.as_numpy_iterator()]
    held = sorted(len(text.split()) for text in train_texts)
    cut = sum(n > 30 for n in held)
    assert 0 < cut < len(held) and set(held) <= set(range(1, 41))
    p95 = held[int(np.ceil(0.95 * (len(held) - 1)))]
    assert result.summary().endswith(f"; {cut / len(held):.1%} of the training texts ({cut:,}) are cut at "
                                     f"tokenize.sequence_length = 30 words (95% have at most {p95}, the longest "
                                     f"{held[-1]})")  # fmt: skip
    uncut = load_config(write_config(tmp_path / "d.toml", "sentiment", data, tokenize={"sequence_length": 40}))
    assert "are cut" not in tokenize.run(uncut, tmp_path / "run2").summary()
