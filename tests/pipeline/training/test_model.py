"""The pipeline's model: padding never changes a prediction, pooling, stateful copies, serialization."""

import dataclasses

import keras
import numpy as np
import pytest

from pipeline.config import ModelConfig
from pipeline.training.model import (
    EnsembleAverage,
    MaskedGlobalPooling1D,
    SubwordEmbedding,
    Vectors,
    WordVectorEmbedding,
    build_classifier,
    build_language_model,
)


@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_sentiment_logits(pooling, bidirectional):
    config = ModelConfig(units=4, embedding_dim=3, bidirectional=bidirectional, pooling=pooling, layers=2)
    model = build_classifier(config, vocab_size=10, num_classes=3, seed=1)
    padded = np.asarray(model(np.array([[3, 4, 5, 0, 0, 0], [0, 0, 0, 0, 0, 0]])))
    np.testing.assert_allclose(padded[0], np.asarray(model(np.array([[3, 4, 5]])))[0], atol=1e-6)
    assert np.isfinite(padded).all(), "an empty text still gets finite logits"


def test_masked_pooling_by_hand():
    x = np.array([[[1.0, -5.0], [3.0, -1.0], [9.0, 9.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(MaskedGlobalPooling1D("max")(x, mask=mask), [[3.0, -1.0]])
    np.testing.assert_allclose(MaskedGlobalPooling1D("mean")(x, mask=mask), [[2.0, -3.0]])
    with pytest.raises(ValueError, match="mode='median'"):
        MaskedGlobalPooling1D("median")


def test_stateful_copy_carries_state_across_calls():
    config = ModelConfig(units=6, embedding_dim=4)
    model = build_language_model(config, vocab_size=12, seed=0)
    stateful = build_language_model(config, vocab_size=12, seed=0, stateful_batch=2)
    stateful.set_weights(model.get_weights())
    tokens = np.random.default_rng(0).integers(0, 12, size=(2, 10))
    whole = np.asarray(model(tokens))
    halves = np.concatenate([np.asarray(stateful(tokens[:, :5])), np.asarray(stateful(tokens[:, 5:]))], axis=1)
    np.testing.assert_allclose(halves, whole, atol=1e-5)


def test_pooled_model_round_trips_through_keras_file(tmp_path):
    model = build_classifier(ModelConfig(units=4, embedding_dim=3, pooling="max"), 10, 2)
    model.save(tmp_path / "m.keras")
    tokens = np.array([[1, 2, 3, 0]])
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "m.keras")(tokens), model(tokens))


def test_feature_norm_centres_the_text_vector_in_the_head_group_and_round_trips(tmp_path):
    """model.feature_norm batch-normalizes the pooled text vector (ULMFiT's head): in training each feature becomes
    (x - batch mean) / sqrt(batch variance + epsilon); it trains with the head (layer_groups' top group, never
    frozen with the encoder); padding still changes nothing; it survives a .keras file."""
    from pipeline.training.model import layer_groups

    config = ModelConfig(units=4, embedding_dim=3, pooling="max", feature_norm=True)
    model = build_classifier(config, 10, 2, seed=1)
    norm = model.get_layer("feature_norm")
    features = keras.Model(model.inputs, [model.get_layer("pooling").output, norm.output])
    tokens = np.random.default_rng(0).integers(1, 10, size=(64, 7))
    pooled, normed = (np.asarray(t) for t in features(tokens, training=True))
    expected = (pooled - pooled.mean(0)) / np.sqrt(pooled.var(0) + norm.epsilon)
    np.testing.assert_allclose(normed, expected, rtol=1e-3, atol=1e-4)
    assert "feature_norm" in {v.path.split("/")[0] for v in layer_groups(model)[0]}
    padded = np.pad(tokens[:2], ((0, 0), (0, 3)))
    np.testing.assert_allclose(np.asarray(model(padded)), np.asarray(model(tokens[:2])), atol=1e-6)
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "m.keras")(tokens), model(tokens))
    assert "feature_norm" not in {layer.name for layer in build_classifier(ModelConfig(units=4), 10, 2).layers}


def test_feature_norm_predicts_with_the_statistics_of_the_batches_seen(tmp_path):
    """DebiasedBatchNormalization: after t updates prediction normalizes with the debiased moving statistics, the
    batches' own from the first update on (Keras' layer keeps 0.99^t of mean 0 and variance 1: a third after 100
    steps); before any, mean 0 and variance 1; the count and statistics survive a .keras file."""
    from pipeline.training.model import DebiasedBatchNormalization

    rng = np.random.default_rng(0)
    batches = [rng.normal(0.05, 0.03, size=(32, 4)).astype("float32") for _ in range(3)]
    norm = DebiasedBatchNormalization(momentum=0.99)
    x = batches[0]
    np.testing.assert_allclose(np.asarray(norm(x)), x / np.sqrt(1 + norm.epsilon), rtol=1e-6)
    norm(x, training=True)
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + norm.epsilon)
    np.testing.assert_allclose(np.asarray(norm(x)), expected, rtol=1e-3, atol=1e-4)
    for batch in batches[1:]:
        norm(batch, training=True)
    weights = np.array([0.99**2, 0.99, 1.0]) / (1 + 0.99 + 0.99**2)  # the newest batch weighs most
    mean = sum(w * b.mean(0) for w, b in zip(weights, batches))
    variance = sum(w * b.var(0) for w, b in zip(weights, batches))
    np.testing.assert_allclose(np.asarray(norm(x)), (x - mean) / np.sqrt(variance + norm.epsilon), rtol=1e-3, atol=1e-4)
    model = keras.Sequential([keras.Input((4,)), norm])
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "m.keras")(x), model(x))


def test_checkpoints_from_before_the_debiased_head_load_with_their_statistics_as_they_were():
    """A classifier saved with Keras' BatchNormalization (before DebiasedBatchNormalization) has no update count:
    checkpoint_weights gives a model built today its weights and a count that makes it predict exactly as the old
    one did; weights that do not match at all are still refused."""
    from pipeline.training.model import DebiasedBatchNormalization, checkpoint_weights

    config = ModelConfig(units=4, embedding_dim=3, pooling="max", feature_norm=True)
    model = build_classifier(config, vocab_size=10, num_classes=2, seed=1)

    def as_before(layer):
        if isinstance(layer, DebiasedBatchNormalization):
            return keras.layers.BatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    old = keras.models.clone_model(model, clone_function=as_before)
    rng = np.random.default_rng(0)
    old.set_weights([rng.normal(size=w.shape).astype("float32") for w in old.get_weights()])
    norm = next(layer for layer in old.layers if isinstance(layer, keras.layers.BatchNormalization))
    norm.moving_variance.assign(np.abs(norm.moving_variance.numpy()) + 0.5)
    assert len(old.weights) == len(model.weights) - 1

    model.set_weights(checkpoint_weights(old, model))
    x = np.array([[3, 4, 5, 0], [1, 2, 0, 0]])
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(old(x)), rtol=1e-6, atol=1e-6)
    same = checkpoint_weights(model, model)  # a count of its own is kept
    assert all(np.array_equal(a, b) for a, b in zip(same, model.get_weights(), strict=True))
    other = build_classifier(dataclasses.replace(config, units=5), vocab_size=10, num_classes=2, seed=1)
    with pytest.raises(ValueError):
        model.set_weights(checkpoint_weights(other, model))


def test_ensemble_average_is_the_log_of_the_mean_probability():
    rng = np.random.default_rng(0)
    logits = [rng.normal(scale=s, size=(5, 3)).astype("float32") for s in (1.0, 10.0, 100.0)]
    out = np.asarray(EnsembleAverage()([keras.ops.convert_to_tensor(x) for x in logits]))
    mean_probability = np.mean([np.asarray(keras.ops.softmax(x)) for x in logits], axis=0)
    np.testing.assert_allclose(np.exp(out), mean_probability, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(out)), mean_probability, rtol=1e-5, atol=1e-7)


def test_ensemble_model_holds_independent_members(tmp_path):
    config = ModelConfig(units=4, embedding_dim=3, pooling="max", bidirectional=True, ensemble=3)
    model = build_classifier(config, 10, 2, seed=1)
    members = [model.get_layer(f"member_{k}") for k in range(3)]
    single = build_classifier(ModelConfig(units=4, embedding_dim=3, pooling="max", bidirectional=True), 10, 2)
    assert len(model.get_weights()) == 3 * len(single.get_weights())
    assert not np.allclose(members[0].get_layer("embedding").get_weights()[0],
                           members[1].get_layer("embedding").get_weights()[0])  # fmt: skip
    tokens = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    mean_probability = np.mean([np.asarray(keras.ops.softmax(m(tokens))) for m in members], axis=0)
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(model(tokens))), mean_probability, rtol=1e-5)
    model.save(tmp_path / "e.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "e.keras")(tokens), model(tokens), rtol=1e-6)


def test_subword_embedding_is_the_mean_of_a_words_ids_and_masks_padding():
    layer = SubwordEmbedding(6, 2)
    ids = np.array([[[2, 4, 5], [1, 3, 0], [0, 0, 0]]])
    out = np.asarray(layer(ids))
    table = np.asarray(layer.embeddings)
    np.testing.assert_allclose(out[0, 0], table[[2, 4, 5]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(out[0, 1], table[[1, 3]].mean(0), rtol=1e-6)  # empty slots do not count
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(ids)), [[True, True, False]])


def test_subword_classifier_ignores_padding_and_round_trips_through_keras_file(tmp_path):
    config = ModelConfig(units=4, embedding_dim=3, pooling="max", bidirectional=True)
    model = build_classifier(config, vocab_size=12, num_classes=2, seed=1, word_width=3)
    words = np.array([[[2, 7, 8], [1, 9, 0], [3, 0, 0]]])
    padded = np.concatenate([words, np.zeros((1, 2, 3), np.int64)], axis=1)
    np.testing.assert_allclose(np.asarray(model(padded)), np.asarray(model(words)), atol=1e-6)
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "m.keras")(padded), model(padded))
    ensemble = build_classifier(dataclasses.replace(config, ensemble=2), 12, 2, seed=1, word_width=3)
    assert ensemble(padded).shape == (1, 2)


# A vocabulary of 6 words (PAD, OOV, 2 seen in training, 2 only in the vectors file), then 3 n-grams: ids 6, 7, 8.
VECTORS = np.arange(12, dtype=np.float32).reshape(6, 2) + 1.0


def test_word_vector_embedding_puts_the_pretrained_vector_beside_the_learned_mean():
    layer = WordVectorEmbedding(9, 3, words=6, trained_words=4, vector_dim=2, vectors=VECTORS)
    ids = np.array([[[2, 6, 7], [5, 8, 0], [1, 0, 0], [0, 0, 0]]])
    out = np.asarray(layer(ids))
    learned = np.asarray(layer.embeddings)  # rows: PAD, OOV, 2 training words, then the 3 n-grams
    assert learned.shape == (7, 3) and out.shape == (1, 4, 5)
    np.testing.assert_allclose(out[0, 0], np.r_[VECTORS[2], learned[[2, 4, 5]].mean(0)], rtol=1e-6)
    # a vectors-only word: the file's vector, and the learned part reads it as OOV plus its n-grams
    np.testing.assert_allclose(out[0, 1], np.r_[VECTORS[5], learned[[1, 6]].mean(0)], rtol=1e-6)
    np.testing.assert_allclose(out[0, 2], np.r_[0.0, 0.0, learned[1]] + np.r_[VECTORS[1], 0, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(ids)), [[True, True, True, False]])
    words_only = WordVectorEmbedding(6, 3, words=6, trained_words=4, vector_dim=2, vectors=VECTORS)
    np.testing.assert_allclose(np.asarray(words_only(np.array([[4]])))[0, 0, :2], VECTORS[4])


@pytest.mark.parametrize("fine_tune", [False, True])
def test_pretrained_rows_of_unseen_words_never_train_and_seen_ones_only_when_fine_tuned(fine_tune):
    config = ModelConfig(units=4, embedding_dim=3, pooling="max", fine_tune_vectors=fine_tune)
    model = build_classifier(config, 9, 2, seed=1, word_width=3, vectors=Vectors(6, 4, 2, VECTORS))
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss=keras.losses.SparseCategoricalCrossentropy(True))
    ids = np.array([[[2, 6, 0], [5, 7, 0]], [[3, 8, 0], [4, 0, 0]]])
    model.fit(ids, np.array([0, 1]), epochs=2, verbose=0)
    layer = model.get_layer("embedding")
    np.testing.assert_array_equal(np.asarray(layer.unseen_vectors), VECTORS[4:])
    assert np.array_equal(np.asarray(layer.trained_vectors), VECTORS[:4]) != fine_tune
    assert all(weight is not layer.unseen_vectors for weight in model.trainable_weights)


def test_word_vector_classifier_round_trips_through_keras_file(tmp_path):
    config = ModelConfig(units=4, embedding_dim=3, bidirectional=True, ensemble=2)
    model = build_classifier(config, 6, 2, seed=1, vectors=Vectors(6, 4, 2, VECTORS))
    ids = np.array([[2, 5, 1, 0]])
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "m.keras")(ids), model(ids))
    blank = build_classifier(config, 6, 2, seed=1, vectors=Vectors(6, 4, 2))  # zeros, for weights loaded next
    assert not np.asarray(blank.get_layer("member_0").get_layer("embedding").unseen_vectors).any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"trained_words": 7}, "trained_words"),
        ({"vector_dim": 0}, "vector_dim"),
        ({"vectors": np.zeros((5, 2))}, "shape"),
    ],  # fmt: skip
)
def test_word_vector_embedding_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WordVectorEmbedding(**{"input_dim": 9, "output_dim": 3, "words": 6, "trained_words": 4, "vector_dim": 2,
                               **kwargs})  # fmt: skip


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_recurrent_weight_dropout_reaches_the_layers_and_is_off_in_the_inference_copy(cell):
    from pipeline.export.litert import inference_copy

    config = ModelConfig(cell=cell, units=6, embedding_dim=4, layers=2, recurrent_weight_dropout=0.3)
    model = build_language_model(config, vocab_size=12, seed=0)
    layers = [model.get_layer(f"rnn_{k}") for k in range(2)]
    assert [layer.cell.recurrent_weight_dropout for layer in layers] == [0.3, 0.3]
    assert layers[0].can_fuse(training=True), "DropConnect keeps the fused kernel"
    copy = inference_copy(model)
    assert [copy.get_layer(f"rnn_{k}").cell.recurrent_weight_dropout for k in range(2)] == [0.0, 0.0]
    tokens = np.random.default_rng(0).integers(0, 12, size=(2, 7))
    np.testing.assert_allclose(np.asarray(copy(tokens)), np.asarray(model(tokens)), atol=1e-5)
