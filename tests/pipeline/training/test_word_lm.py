"""The sampled softmax: its proposal, the loss against the formula on the same draws and against the full softmax
with many draws, and the language models that train with it and score with the full softmax."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.config import ModelConfig
from pipeline.training import fused_adam
from pipeline.training.model import build_word_language_models
from pipeline.training.word_lm import log_expected_count, log_uniform_candidates, sampled_softmax_loss

CONFIG = ModelConfig(embedding_dim=16, units=12, bidirectional=True, dropout=0.0, output_dropout=0.0)
FULL = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")


def _q(classes):
    return np.exp(keras.ops.convert_to_numpy(log_expected_count(np.arange(classes), 1, classes)))


def test_the_proposal_is_log_uniform():
    q = _q(50)
    np.testing.assert_allclose(q.sum(), 1.0, rtol=1e-5)
    assert np.all(np.diff(q) < 0)  # the frequent (low) ids are proposed most
    ids, log_count = log_uniform_candidates(200_000, 50, seed=3)
    ids = keras.ops.convert_to_numpy(ids)
    np.testing.assert_allclose(np.bincount(ids, minlength=50) / ids.size, q, atol=0.003)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(log_count), np.log(200_000 * q[ids]), rtol=1e-5)


def test_the_loss_is_the_formula_on_the_drawn_samples():
    rng = np.random.default_rng(0)
    classes, samples, units = 30, 7, 5
    kernel = rng.normal(size=(units, classes)).astype("float32")
    bias = rng.normal(size=classes).astype("float32")
    hidden = rng.normal(size=(2, 4, units)).astype("float32")
    targets = rng.integers(0, classes, size=(2, 4)).astype("int32")
    loss = keras.ops.convert_to_numpy(sampled_softmax_loss(targets, hidden, kernel, bias, samples, seed=11))
    drawn = keras.ops.convert_to_numpy(log_uniform_candidates(samples, classes, seed=11)[0])
    scores = hidden @ kernel + bias
    corrected = scores - np.log(samples * _q(classes))
    expected = np.zeros(targets.shape)
    for index in np.ndindex(targets.shape):
        target = targets[index]
        terms = [corrected[index][target], *(corrected[index][s] for s in drawn)]
        expected[index] = np.logaddexp.reduce(terms) - scores[index][target]
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)


def test_with_many_samples_the_loss_approaches_the_full_cross_entropy():
    """The corrected logits make the samples an importance-sampling estimate of the partition function: with
    enough of them the sampled loss is the full one. Uncorrected, it would be off by about log(samples)."""
    rng = np.random.default_rng(1)
    classes, units = 40, 6
    kernel = rng.normal(size=(units, classes)).astype("float32")
    bias = rng.normal(size=classes).astype("float32")
    hidden = rng.normal(size=(3, 5, units)).astype("float32")
    targets = rng.integers(0, classes, size=(3, 5)).astype("int32")
    full = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(targets, hidden @ kernel + bias,
                                                                                 from_logits=True))  # fmt: skip
    sampled = keras.ops.convert_to_numpy(sampled_softmax_loss(targets, hidden, kernel, bias, 200_000, seed=5))
    np.testing.assert_allclose(sampled, full, atol=0.05)


def test_samples_equal_to_the_target_count_like_any_other():
    """With one word every sample is the target: log((k + 1) / k), which goes to the cross-entropy, 0."""
    loss = sampled_softmax_loss(np.zeros((2, 3), "int32"), np.ones((2, 3, 4), "float32"),
                                np.ones((4, 1), "float32"), np.zeros(1, "float32"), 5, seed=0)  # fmt: skip
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), np.log(6 / 5), rtol=1e-6)


def _counting_data(words=24, batch=16, length=10):
    """Texts that count upward: the next word is always the one after, the previous the one before."""
    start = np.random.default_rng(2).integers(1, words - length, size=(batch, 1))
    ids = (start + np.arange(length)).astype("int32")
    forward = np.pad(ids[:, 1:], [[0, 0], [0, 1]])
    backward = np.pad(ids[:, :-1], [[0, 0], [1, 0]])
    return ids, [forward, backward], [np.ones(ids.shape, "float32")] * 2


def test_the_models_train_sampled_and_score_with_the_full_softmax():
    x, y, w = _counting_data()
    model = build_word_language_models(CONFIG, 24, 24, seed=1, samples=8)
    assert model.samples == 8
    model.compile(optimizer=fused_adam.adam(3e-2, None, False))
    before = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)["loss"]
    history = model.fit(x, y, sample_weight=w, epochs=60, verbose=0)
    after = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)["loss"]
    full = sum(float(FULL(t, logits, s)) for t, logits, s in zip(y, model.logits(x), w))
    np.testing.assert_allclose(after, full, rtol=1e-5)  # evaluation is the full softmax's loss
    # Chance is log(24) per direction; both learned to count (a perplexity near 2 each).
    assert before > 2 * np.log(24) - 0.5 and after < 1.5, (before, after)
    assert history.history["loss"][-1] < history.history["loss"][0] - 2


def test_without_sample_weights_both_heads_train():
    x, y, _ = _counting_data()
    for samples in (0, 6):
        model = build_word_language_models(CONFIG, 24, 24, seed=1, samples=samples)
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x, y, model(x, training=True), None, training=True)
        gradients = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None for g in gradients), samples


def test_samples_from_the_vocabulary_up_train_the_full_softmax():
    assert build_word_language_models(CONFIG, 24, 24, samples=24).samples == 0
    with pytest.raises(ValueError, match="samples=-1"):
        build_word_language_models(CONFIG, 24, 24, samples=-1)


def test_weights_files_are_those_of_the_models_with_the_heads_in_the_graph(tmp_path):
    """Run directories pretrained before the sampled softmax hold the heads as layers of the graph: their weights
    files load into these models, and these models' files into those."""
    x, _, _ = _counting_data()
    model = build_word_language_models(CONFIG, 24, 24, seed=1, samples=6)
    in_graph = keras.Model(model.inputs, [head(state) for head, state in zip(model.heads, model.outputs)])
    path = str(tmp_path / "lm.weights.h5")
    in_graph.save_weights(path)
    other = build_word_language_models(CONFIG, 24, 24, seed=2)
    other.load_weights(path)
    for mine, theirs in zip(model.logits(x), other.logits(x)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs))
    other.save_weights(path)
    in_graph.load_weights(path)


def test_the_activation_penalty_adds_the_states_mean_square_in_training_only():
    x, y, w = _counting_data()
    model = build_word_language_models(CONFIG, 24, 24, seed=1, activation_penalty=2.0)
    states = [50.0 * state for state in model(x, training=False)]  # large enough to read beside the cross-entropy
    square = sum(float(np.mean(keras.ops.convert_to_numpy(state) ** 2)) for state in states)
    for training in (True, False):
        loss = float(model.compute_loss(x, y, states, w, training=training))
        model.activation_penalty = 0.0
        base = float(model.compute_loss(x, y, states, w, training=training))
        model.activation_penalty = 2.0
        np.testing.assert_allclose(loss - base, 2.0 * square if training else 0.0, rtol=1e-4, atol=1e-5)
    assert square > 0.1
    with pytest.raises(ValueError, match="activation_penalty=-1"):
        build_word_language_models(CONFIG, 24, 24, activation_penalty=-1.0)


def test_the_word_loss_is_the_mean_over_every_word_whatever_the_batches_lengths():
    """Keras' "loss" weighs each batch by its texts; `word_loss` by its words: held out, exp(word_loss / heads) is
    the heads' perplexities' geometric mean, as pretrain reports them."""
    x, y, w = _counting_data(batch=8)
    model = build_word_language_models(CONFIG, 24, 24, seed=1, activation_penalty=1.0)
    model.compile(optimizer=fused_adam.adam(3e-2, None, False))
    model.fit(x, y, sample_weight=w, epochs=30, verbose=0)  # trained, a text's first and last words differ
    # Two batches: four texts of 3 words, then four of 10.
    w = [np.where(np.arange(10) < np.where(np.arange(8) < 4, 3, 10)[:, None], 1.0, 0.0).astype("float32")] * 2
    logs = model.evaluate(x, y, sample_weight=w, batch_size=4, verbose=0, return_dict=True)
    per_word = [keras.losses.sparse_categorical_crossentropy(t, logits, from_logits=True)
                for t, logits in zip(y, model.logits(x))]  # fmt: skip
    exact = sum(float(np.sum(keras.ops.convert_to_numpy(loss) * w[0])) for loss in per_word) / w[0].sum()
    np.testing.assert_allclose(logs["word_loss"], exact, rtol=1e-5)
    assert abs(logs["loss"] - exact) > 0.01  # the texts-weighted mean is not it here
