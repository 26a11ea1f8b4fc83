"""Side-by-side comparison of our layers with the Keras built-ins: outputs, states and gradients."""

import keras
import numpy as np
import tensorflow as tf

TOLERANCE = 1e-5


def sequences(batch=3, steps=7, features=5, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, steps, features)).astype("float32")


def right_padding_mask(lengths, steps):
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


def randomize(layer, seed=1):
    """Non-default weights (incl. bias), so that a wrong gate order or a missing bias cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.4, size=w.shape).astype("float32") for w in layer.get_weights()])


def outputs_and_gradients(layer, x, **call_kwargs):
    """Flattened outputs of `layer(x)` and gradients of a fixed random projection of them w.r.t. x and weights."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = tf.nest.flatten(layer(x, **call_kwargs))
        rng = np.random.default_rng(42)
        loss = sum(tf.reduce_sum(o * rng.normal(size=o.shape).astype("float32")) for o in outputs)
    gradients = tape.gradient(loss, [x, *layer.trainable_weights])
    return [np.asarray(o) for o in outputs], [np.asarray(g) for g in gradients]


def assert_same(ours, theirs, x, atol=TOLERANCE, **call_kwargs):
    """Copies our weights into theirs, then compares outputs and gradients."""
    ours(x, **call_kwargs)
    theirs(x, **call_kwargs)
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    our_out, our_grad = outputs_and_gradients(ours, x, **call_kwargs)
    their_out, their_grad = outputs_and_gradients(theirs, x, **call_kwargs)
    assert len(our_out) == len(their_out)
    for a, b in zip(our_out, their_out):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)
    assert len(our_grad) == len(their_grad)
    for a, b in zip(our_grad, their_grad):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)
    return our_out


def keras_counterpart(layer_class):
    import custom_layers

    return {custom_layers.LSTM: keras.layers.LSTM, custom_layers.SimpleRNN: keras.layers.SimpleRNN}[layer_class]
