"""FusedAdam: Keras' Adam, its sparse-gradient steps in TensorFlow's fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.training.fused_adam import FusedAdam, adam


def test_sparse_and_dense_steps_equal_keras_adam():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 3)).astype("float32")
    ours, theirs = keras.Variable(start), keras.Variable(start)
    fused, adam = FusedAdam(0.01, clipnorm=1.0), keras.optimizers.Adam(0.01, clipnorm=1.0)
    for step in range(6):
        if step % 2:
            grad = tf.constant(rng.normal(size=(6, 3)).astype("float32"))
        else:  # an embedding lookup's gradient: some rows, one of them twice, the rest untouched
            grad = tf.IndexedSlices(tf.constant(rng.normal(size=(3, 3)).astype("float32")), tf.constant([4, 1, 4]),
                                    tf.constant([6, 3]))  # fmt: skip
        fused.apply([grad], [ours])
        adam.apply([grad], [theirs])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    assert not np.allclose(ours.numpy(), start)


def test_an_embedding_trains_as_with_keras_adam():
    def trained(optimizer):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(20, 3),
                                  keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])  # fmt: skip
        model.compile(optimizer=optimizer, loss="mse")
        x = np.random.default_rng(0).integers(0, 20, size=(32, 4))
        model.fit(x, np.ones((32, 1)), batch_size=8, epochs=2, verbose=0, shuffle=False)
        return model.get_weights()

    for ours, theirs in zip(trained(FusedAdam(0.01)), trained(keras.optimizers.Adam(0.01))):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_bad_arguments():
    again = FusedAdam.from_config(FusedAdam(0.002, beta_1=0.8, clipnorm=1.0).get_config())
    assert (again.beta_1, float(again.learning_rate), again.clipnorm) == (0.8, pytest.approx(0.002), 1.0)
    with pytest.raises(ValueError, match="amsgrad"):
        FusedAdam(amsgrad=True)


def test_one_optimizer_after_another_and_two_tables_of_one_shape():
    # An ensemble trains its members one after the other, each with its own optimizer and tables of one shape.
    for seed in range(2):
        tables = [keras.Variable(np.full((5, 2), float(seed + k), "float32")) for k in range(2)]
        twins = [keras.Variable(t.numpy()) for t in tables]
        fused, adam = FusedAdam(0.1), keras.optimizers.Adam(0.1)
        for _ in range(2):
            grads = [
                tf.IndexedSlices(tf.ones((1, 2)) * (k + 1), tf.constant([k]), tf.constant([5, 2])) for k in range(2)
            ]
            fused.apply(grads, tables)
            adam.apply(grads, twins)
        for ours, theirs in zip(tables, twins):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_rate_scales_multiply_some_variables_learning_rate_and_zero_holds_them():
    """Sparse (an embedding) and dense (a Dense kernel) variables: scale 0 leaves them as they were, scale 0.5 moves
    them as Adam at half the rate does."""

    def model_and_data():
        keras.utils.set_random_seed(0)
        layers = [keras.layers.Embedding(10, 3, name="embedding"), keras.layers.GlobalAveragePooling1D(),
                  keras.layers.Dense(1, name="head")]  # fmt: skip
        model = keras.Sequential([keras.Input((4,), dtype="int32"), *layers])
        x = np.random.default_rng(0).integers(0, 10, (8, 4)).astype("int32")
        return model, x, np.ones((8, 1), "float32")

    scale = tf.Variable(0.0)
    model, x, y = model_and_data()
    model.compile(FusedAdam(0.01, rate_scales=[(model.get_layer("embedding").trainable_variables, scale)]), "mse")
    before = model.get_layer("embedding").get_weights()[0].copy()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], before)
    assert not np.allclose(
        model.get_layer("head").get_weights()[0], model_and_data()[0].get_layer("head").get_weights()[0]
    )

    half, reference = tf.Variable(0.5), model_and_data()[0]
    model, x, y = model_and_data()
    model.compile(FusedAdam(0.01, rate_scales=[(model.trainable_variables, half)]), "mse")
    reference.compile(FusedAdam(0.005), "mse")
    for m in (model, reference):
        m.fit(x, y, batch_size=8, epochs=3, verbose=0)
    for mine, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-7)


def test_weight_decay_is_adamw_on_sparse_tables_and_dense_kernels_and_spares_biases_and_vectors():
    """adam(weight_decay=wd) with zero gradients shrinks each weight by lr * wd per step (AdamW's decoupled decay),
    on a sub-word table's sparse gradient as on a dense kernel, and leaves biases and pretrained vectors alone."""
    table = keras.Variable(np.ones((5, 2), "float32"), name="embeddings")
    kernel = keras.Variable(np.ones((2, 2), "float32"), name="kernel")
    bias = keras.Variable(np.ones((2,), "float32"), name="bias")
    vectors = keras.Variable(np.ones((3, 2), "float32"), name="trained_vectors")
    for subwords in (True, False):
        for v in (table, kernel, bias, vectors):
            v.assign(np.ones(v.shape, "float32"))
        optimizer = adam(0.1, None, subwords, weight_decay=0.5)
        assert isinstance(optimizer, FusedAdam) == subwords
        zero_rows = tf.IndexedSlices(tf.zeros((1, 2)), tf.constant([0]), tf.constant([5, 2]))
        for _ in range(3):
            optimizer.apply([zero_rows, tf.zeros((2, 2)), tf.zeros((2,)), tf.zeros((3, 2))],
                            [table, kernel, bias, vectors])  # fmt: skip
        np.testing.assert_allclose(table.numpy(), 0.95**3, rtol=1e-6)
        np.testing.assert_allclose(kernel.numpy(), 0.95**3, rtol=1e-6)
        np.testing.assert_allclose(bias.numpy(), 1.0)
        np.testing.assert_allclose(vectors.numpy(), 1.0)
