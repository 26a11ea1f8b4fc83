"""Pretraining on unlabelled texts: the readers, the language models' targets, the stage, train starting from it,
the aclImdb layout and TFDS's unsupervised split (mock data), and what is refused; tiny data made here."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from pipeline import tasks
from pipeline.cli import main
from pipeline.config import config_from_dict, load_config
from pipeline.data.files import read_unlabelled
from pipeline.data.inputs import word_lm_dataset
from pipeline.data.text import Vocabulary
from pipeline.errors import DataError, RunDirError
from pipeline.run import artifacts, freshness
from pipeline.run.rundir import RunDir
from pipeline.stages import evaluate, export, pretrain, tokenize, train
from pipeline.training import callbacks
from pipeline.training.model import load_checkpoint
from tests.pipeline.helpers import FILLER, sentiment_csv, write_config

UNSEEN = ["marvellous", "dreadful"]  # words only the unlabelled texts hold


def few_labels(tmp_path: Path, **sections) -> Path:
    """80 labelled texts; 300 more as unlabelled, with words the labelled ones never use."""
    lines = sentiment_csv(tmp_path / "all.csv", n=380).read_text().splitlines()
    (tmp_path / "train.csv").write_text("\n".join(lines[:81]) + "\n")
    texts = [line.rsplit(",", 1)[0] + f" {UNSEEN[i % 2]}" for i, line in enumerate(lines[81:])]
    (tmp_path / "unlabelled.txt").write_text("\n".join(texts) + "\n")
    data = {"train": str(tmp_path / "train.csv"), "test_fraction": 0.2,
            "unlabelled": str(tmp_path / "unlabelled.txt")}  # fmt: skip
    sections = {"model": {"bidirectional": True, "pooling": "max"}, "pretrain": {"epochs": 2}, **sections}
    return write_config(tmp_path / "s.toml", "sentiment", data, **sections)


def test_unlabelled_texts_are_read_from_lines_tables_and_folders(tmp_path):
    (tmp_path / "lines.txt").write_text("one text\n\n  two texts  \nthree\n")
    (tmp_path / "table.csv").write_text('review,stars\n"a, b",5\nc,1\n')
    unsup = tmp_path / "aclImdb" / "train" / "unsup"
    unsup.mkdir(parents=True)
    for i in range(3):
        (unsup / f"{i}_0.txt").write_text(f"review {i}<br />more\n")

    def read(spec, **data):
        return read_unlabelled(config_from_dict({"task": "sentiment", "data": {"train": "x", "unlabelled": spec,
                                                                               **data}}).data)  # fmt: skip

    assert read(str(tmp_path / "lines.txt")) == ["one text", "two texts", "three"]
    assert read(str(tmp_path / "table.csv"), text_column="review") == ["a, b", "c"]
    assert read(str(unsup)) == ["review 0<br />more", "review 1<br />more", "review 2<br />more"]
    assert read(str(tmp_path / "*.txt")) == ["one text", "two texts", "three"]
    assert read(str(unsup), max_unlabelled=2) == ["review 0<br />more", "review 1<br />more"]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="data.unlabelled: .*empty.txt holds no texts"):
        read(str(tmp_path / "empty.txt"))
    with pytest.raises(DataError, match="data.unlabelled: .*table.csv has no column 'text'"):
        read(str(tmp_path / "table.csv"))


def test_the_language_models_predict_the_next_and_the_previous_word():
    vocab = Vocabulary("word", ("", "[UNK]", "a", "b", "c"), standardize="lower", sequence_length=10)
    texts = tf.data.Dataset.from_tensor_slices(["a b c", "c a"])
    ids, (forward, backward), (weight, _) = next(iter(word_lm_dataset(texts, vocab, 2, lm_words=4,
                                                                      bidirectional=True)))  # fmt: skip
    rows = {tuple(r[r > 0]): i for i, r in enumerate(ids.numpy())}
    first, second = rows[(2, 3, 4)], rows[(4, 2)]
    assert forward.numpy()[first].tolist() == [3, 1, 0]  # c is beyond lm_words: the out-of-vocabulary id
    assert backward.numpy()[first].tolist() == [0, 2, 3]
    assert forward.numpy()[second].tolist()[:2] == [2, 0] and backward.numpy()[second].tolist()[:2] == [0, 1]
    assert weight.numpy()[second].tolist() == [1, 1, 0]


def test_held_out_batches_hold_at_most_max_positions_where_texts_are_long():
    vocab = Vocabulary("word", ("", "[UNK]", "a", "b"), standardize="lower", sequence_length=40)
    texts = ["a b " * 20] * 10 + ["a b"] * 10  # 40 words (the last bucket), 2 words (the first)
    ds = word_lm_dataset(tf.data.Dataset.from_tensor_slices(texts), vocab, 8, lm_words=4, bidirectional=False,
                         max_positions=100)  # fmt: skip
    shapes = sorted(tuple(ids.shape) for ids, _, _ in ds)
    # A bucket's batches are bounded by its longest text: 100 // 40 = 2 texts of 40 words, 100 // 16 = 6 of 2.
    assert shapes == [(2, 40)] * 5 + [(4, 2), (6, 2)]
    unbounded = word_lm_dataset(tf.data.Dataset.from_tensor_slices(texts), vocab, 8, lm_words=4, bidirectional=False)
    assert sorted(tuple(ids.shape) for ids, _, _ in unbounded) == [(2, 2), (2, 40), (8, 2), (8, 40)]


def test_pretraining_then_training_from_it(tmp_path):
    config = load_config(few_labels(tmp_path, train={"fine_tune": "frozen", "epochs": 1}),
                         ["export.formats=saved_model,litert"])  # fmt: skip
    run_dir = tmp_path / "run"
    vocab = tokenize.run(config, run_dir).vocabulary
    assert set(UNSEEN) <= set(vocab.tokens)  # the unlabelled texts' words are the vocabulary's too
    result = pretrain.run(config, run_dir)
    state = json.loads((run_dir / "pretrain" / "state.json").read_text())
    assert (
        state["status"] in ("completed", "early_stopped") and state["texts"] + state["held_out"] == 300 + 58
    )  # unlabelled, and the training split
    assert set(state["perplexity"]) == {"forward", "backward"}
    assert 1 < state["perplexity"]["forward"] < vocab.trained_words
    assert "held-out perplexity (18 texts): forward" in result.summary()
    assert (run_dir / "pretrain" / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The history's held-out loss per word, at the epoch kept, is the perplexities' (their geometric mean).
    kept = min(artifacts.read_history(run_dir / "pretrain" / "history.csv"), key=lambda row: float(row["val_loss"]))
    np.testing.assert_allclose(
        np.exp(float(kept["val_word_loss"]) / 2),
        np.sqrt(state["perplexity"]["forward"] * state["perplexity"]["backward"]),
        rtol=1e-4,
    )
    assert pretrain.run(config, run_dir).skipped

    train.run(config, run_dir)
    lm = pretrain.build_lm(config, RunDir(run_dir), vocab)
    lm.load_weights(run_dir / "pretrain" / "encoder.weights.h5")
    classifier = load_checkpoint(run_dir / "checkpoints" / "best.keras")
    for name in ("embedding", "rnn_0"):  # frozen: as pretrained
        for mine, pretrained in zip(classifier.get_layer(name).get_weights(), lm.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, pretrained)
    evaluate.run(config, run_dir)
    exported = export.run(config, run_dir).path
    served = tf.saved_model.load(exported).signatures["serving_default"]
    assert served(text=tf.constant(["great film marvellous"]))["probabilities"].shape == (1, 2)
    assert (Path(exported) / "litert" / "model.tflite").stat().st_size > 0  # the same model: it converts as ever


def test_gradual_unfreezing_trains_the_head_alone_in_the_first_epoch(tmp_path):
    """ULMFiT's schedule through train (adversarial training on, as in the recipe): after one epoch of "gradual" the
    encoder is still as pretrained and the head has moved; the second epoch moves the recurrent layer, not yet the
    embedding (the third group)."""
    import keras

    config = load_config(few_labels(tmp_path, train={"fine_tune": "gradual", "discriminative_lr": 2.6, "epochs": 2,
                                                     "adversarial_epsilon": 0.5, "patience": 0}))  # fmt: skip
    run_dir = tmp_path / "run"
    vocab = tokenize.run(config, run_dir).vocabulary
    pretrain.run(config, run_dir)
    lm = pretrain.build_lm(config, RunDir(run_dir), vocab)
    lm.load_weights(run_dir / "pretrain" / "encoder.weights.h5")
    names = ("head", "rnn_0", "embedding")
    seen = []

    class Weights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append({name: self.model.get_layer(name).get_weights() for name in names})

    train.run(config, run_dir, callbacks=[Weights()])

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b))

    pretrained = {name: lm.get_layer(name).get_weights() for name in ("rnn_0", "embedding")}
    assert same(seen[0]["rnn_0"], pretrained["rnn_0"]) and same(seen[0]["embedding"], pretrained["embedding"])
    assert not same(seen[1]["head"], seen[0]["head"]) and not same(seen[1]["rnn_0"], seen[0]["rnn_0"])
    assert same(seen[1]["embedding"], pretrained["embedding"])


def test_a_model_that_does_not_fit_the_pretrained_encoder_is_refused(tmp_path):
    path = few_labels(tmp_path)
    config = load_config(path)
    run_dir = tmp_path / "run"
    tokenize.run(config, run_dir)
    pretrain.run(config, run_dir)
    other = load_config(path, ["model.units=12"])
    result = CliRunner().invoke(main, ["train", str(path), "--run-dir", str(run_dir), "--set", "model.units=12"])
    assert result.exit_code != 0
    assert result.output.strip() == (f"error: pretrain in {run_dir} is not up to date with this config (model.units: "
                                     f"8 -> 12): run `rnnpipe pretrain` first, or use it as it is: --set "
                                     f"model.units=8")  # fmt: skip
    # An encoder of another size put in its place (copied from another run directory) is refused too.
    elsewhere = tmp_path / "other"
    tokenize.run(other, elsewhere)
    pretrain.run(other, elsewhere)
    shutil.copy(elsewhere / "pretrain" / "encoder.weights.h5", run_dir / "pretrain" / "encoder.weights.h5")
    with pytest.raises(RunDirError, match=r"the pretrained encoder .* does not fit this model \(.*\); run `rnnpipe "):
        train.run(config, run_dir)


def test_a_sampled_softmax_pretrains_and_the_perplexity_is_the_full_softmaxs(tmp_path):
    # Without the recipe's regularizers, so that ten epochs of a tiny vocabulary show what the sampled softmax learns.
    path = few_labels(tmp_path, pretrain={"epochs": 10, "softmax_samples": 8, "learning_rate": 1e-2,
                                          "weight_decay": 0.0, "activation_penalty": 0.0})  # fmt: skip
    config = load_config(path)
    run_dir = tmp_path / "run"
    vocab = tokenize.run(config, run_dir).vocabulary
    assert vocab.trained_words > 8  # so that the heads do sample
    result = pretrain.run(config, run_dir)
    lm = pretrain.build_lm(config, RunDir(run_dir), vocab)
    assert lm.samples == 8
    lm.load_weights(run_dir / "pretrain" / "encoder.weights.h5")
    texts = tasks.get("sentiment").unlabelled(config, tasks.get("sentiment").load_splits(config))
    # The perplexity reported is that of the full softmax, as for a model trained with it.
    ds = word_lm_dataset(tf.data.Dataset.from_tensor_slices(texts), vocab, 64, vocab.trained_words, bidirectional=True)
    full = pretrain._perplexity(lm, ds, bidirectional=True)
    # A word's loss does not depend on the batch it comes in: the sums are per word, whatever the batch.
    one_by_one = word_lm_dataset(tf.data.Dataset.from_tensor_slices(texts), vocab, 64, vocab.trained_words,
                                 bidirectional=True, max_positions=1)  # fmt: skip
    assert pretrain._perplexity(lm, one_by_one, bidirectional=True) == pytest.approx(full, rel=1e-5)
    assert 1 < result.perplexity["forward"] < 0.75 * vocab.trained_words  # learned: uniform is trained_words
    assert full["forward"] == pytest.approx(result.perplexity["forward"], rel=0.3)  # all texts against held-out
    # Another number of samples is another pretraining.
    changed = load_config(path, ["pretrain.softmax_samples=0"])
    rd = RunDir(run_dir)
    assert freshness.inputs(rd, "pretrain", changed) != freshness.inputs(rd, "pretrain", config)


def test_pretrain_and_train_report_progress_where_the_output_is_not_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(callbacks, "PROGRESS_SECONDS", 1e-9)  # a line after every step
    path, run_dir = str(few_labels(tmp_path, train={"epochs": 1})), str(tmp_path / "run")
    output = {}
    for stage in ("tokenize", "pretrain", "train"):
        result = CliRunner().invoke(main, [stage, path, "--run-dir", run_dir])
        assert result.exit_code == 0, result.output
        output[stage] = result.output
    # Bucketed batches: the first epoch's steps are estimated, the second's known, with the time left.
    assert re.search(r"pretrain: epoch 1/2, step 1 of about \d+, loss \d.*; \d+s so far", output["pretrain"])
    assert re.search(r"pretrain: epoch 2/2, step 1/\d+, loss \d.*, at most about \d+s to go", output["pretrain"])
    # The training split over the batch size: 58 texts (80 less the test and validation splits) in batches of 16.
    assert re.search(r"train: epoch 1/1, step 1 of about 4, loss \d.*; \d+s so far, at most about", output["train"])


def test_the_hint_for_a_long_pretraining_names_what_shortens_it(tmp_path):
    def hint(*overrides):
        return pretrain._progress(print, load_config(few_labels(tmp_path), list(overrides)).pretrain, 0.0, 100).hint

    assert "pretrain.max_seconds" in hint() and "pretrain.softmax_samples=1024" in hint()
    assert "pretrain.max_seconds" in hint("pretrain.softmax_samples=64") and "softmax" not in hint(
        "pretrain.softmax_samples=64")  # fmt: skip
    assert hint("pretrain.max_seconds=600") == ""  # a budget the user chose bounds it already


def test_one_pretraining_serves_an_ensemble_and_any_pooling(tmp_path):
    path = few_labels(tmp_path)
    run_dir = RunDir(tmp_path / "run")
    inputs = freshness.inputs(run_dir, "pretrain", load_config(path))
    for override in ("model.ensemble=3", "model.pooling=mean"):
        assert freshness.inputs(run_dir, "pretrain", load_config(path, [override])) == inputs
    assert freshness.inputs(run_dir, "pretrain", load_config(path, ["model.units=12"])) != inputs


def test_without_unlabelled_texts_train_reads_tokenize_as_before(tmp_path):
    path = write_config(tmp_path / "s.toml", "sentiment", {"train": str(sentiment_csv(tmp_path / "t.csv"))})
    config = load_config(path)
    assert not config.pretrains
    assert "stage tokenize" in freshness.inputs(RunDir(tmp_path / "run"), "train", config)
    result = CliRunner().invoke(main, ["pretrain", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.output.strip() == ("error: pretrain: no unlabelled texts; set data.unlabelled (local files) or "
                                     "data.unlabelled_split (TFDS)")  # fmt: skip


def test_without_pretraining_the_unlabelled_texts_serve_the_vocabulary_and_virtual_adversarial_training(tmp_path):
    """pretrain.epochs = 0: train reads tokenize's results, starts from scratch, and takes its virtual adversarial
    term on unlabelled batches; `rnnpipe pretrain` says there is nothing to do."""
    config = load_config(few_labels(tmp_path, pretrain={"epochs": 0},
                                    train={"epochs": 1, "virtual_adversarial_epsilon": 1.0}))  # fmt: skip
    run_dir = tmp_path / "run"
    assert not config.pretrains and "stage tokenize" in freshness.inputs(RunDir(run_dir), "train", config)
    assert set(UNSEEN) <= set(tokenize.run(config, run_dir).vocabulary.tokens)
    task = tasks.get("sentiment")
    batch = next(iter(task.training_dataset(config, task.load_splits(config), Vocabulary.load(run_dir /
                                            "vocabulary.json"), ["neg", "pos"], seed=0)))  # fmt: skip
    assert isinstance(batch[0], tuple) and len(batch[0]) == 2  # each step also takes a batch of unlabelled texts
    result = train.run(config, run_dir)
    assert result.epochs == 1 and not (run_dir / "pretrain").exists()
    refused = CliRunner().invoke(main, ["pretrain", str(tmp_path / "s.toml"), "--run-dir", str(run_dir),
                                        "--set", "pretrain.epochs=0"])  # fmt: skip
    assert refused.exit_code != 0 and refused.output.startswith("error: pretrain: pretrain.epochs is 0, so there")


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.unlabelled=/nowhere.txt", "error: data.unlabelled: /nowhere.txt does not exist"),
        ("data.unlabelled_split=unsupervised", "error: data.unlabelled_split: a TFDS split; local files are named"),
        ("model.layers=2", "error: model.layers: 2 bidirectional layers cannot be pretrained as language models"),
        ("data.max_unlabelled=0", "error: data.max_unlabelled: must be > 0, got 0"),
        ("train.fine_tune=thawed", "error: train.fine_tune: must be one of plain, frozen, gradual; got 'thawed'"),
        ("train.discriminative_lr=0.5", "error: train.discriminative_lr: must be from 1 to 100, got 0.5"),
    ],  # fmt: skip
)
def test_bad_pretraining_settings_are_one_line(tmp_path, override, message):
    result = CliRunner().invoke(main, ["pretrain", str(few_labels(tmp_path)), "--run-dir", str(tmp_path / "r"),
                                       "--set", override])  # fmt: skip
    assert result.exit_code != 0 and result.output.strip().startswith(message), result.output
    assert not (tmp_path / "r").exists()


def test_the_aclimdb_layout_with_its_unsup_folder(tmp_path):
    root = tmp_path / "aclImdb" / "train"
    for label, words in (("pos", ["great", "superb"]), ("neg", ["awful", "dull"])):
        (root / label).mkdir(parents=True)
        for i in range(30):
            (root / label / f"{i}_9.txt").write_text(f"the {FILLER[i % 10]} was {words[i % 2]}")
    (root / "unsup").mkdir()
    for i in range(40):
        (root / "unsup" / f"{i}_0.txt").write_text(f"a {FILLER[i % 10]} story, {UNSEEN[i % 2]}<br />")
    data = {"train": str(root), "format": "class_dirs", "test_fraction": 0.2, "unlabelled": str(root / "unsup")}
    config = load_config(write_config(tmp_path / "imdb.toml", "sentiment", data, pretrain={"epochs": 1}))
    run_dir = tmp_path / "run"
    vocab = tokenize.run(config, run_dir).vocabulary
    assert set(UNSEEN) <= set(vocab.tokens)
    result = pretrain.run(config, run_dir)
    assert result.texts + result.held_out == 40 + 43  # unsup/, and the training split (60 less 12 test, 5 validation)
    assert train.run(config, run_dir).status in ("completed", "early_stopped")


def test_tfds_imdb_reviews_unsupervised_split_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    data = {"source": "tfds", "name": "imdb_reviews", "data_dir": str(tmp_path / "tfds"),
            "unlabelled_split": "unsupervised", "max_unlabelled": 25}  # fmt: skip
    config = load_config(write_config(tmp_path / "imdb.toml", "sentiment", data, pretrain={"epochs": 1}))
    run_dir = tmp_path / "run"
    with tfds.testing.mock_data(num_examples=20):
        tokenize.run(config, run_dir)
        result = pretrain.run(config, run_dir)
        trained = len(list(tasks.get("sentiment").load_splits(config).train))
        assert result.texts + result.held_out == 20 + trained  # the unsupervised split's 20 mock texts, and train
        assert train.run(config, run_dir).status in ("completed", "early_stopped")
    # A model trained on TFDS is scored on local files too: aclImdb's test/ folder, a sub-folder per class.
    for label in ("pos", "neg"):
        (tmp_path / "aclImdb" / "test" / label).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "aclImdb" / "test" / label / f"{i}_7.txt").write_text(f"the {FILLER[i]} was {label}")
    scored = evaluate.run(config, run_dir, data=str(tmp_path / "aclImdb" / "test"))
    assert scored.metrics["examples"] == 6 and scored.path == run_dir / "evaluations" / "test"


def test_next_char_refuses_unlabelled_texts(tmp_path):
    path = write_config(tmp_path / "c.toml", "next_char", {"train": "x.txt", "unlabelled": "u.txt"})
    with pytest.raises(Exception, match="data.unlabelled: next_char learns from plain text already"):
        load_config(path)
