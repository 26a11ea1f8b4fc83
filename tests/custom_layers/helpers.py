"""Side-by-side comparison of our layers with the Keras built-ins: outputs, states and gradients, on any backend."""

import keras
import numpy as np

TOLERANCE = 1e-5


def sequences(batch=3, steps=7, features=5, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, steps, features)).astype("float32")


def right_padding_mask(lengths, steps):
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


def randomize(layer, seed=1):
    """Non-default weights (incl. bias), so that a wrong gate order or a missing bias cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.4, size=w.shape).astype("float32") for w in layer.get_weights()])


def _flat(outputs):
    return keras.tree.flatten(outputs)


def _projection(output, index):
    """A fixed, deterministic weighting of one output for the loss: the same on every backend and for both layers
    of a comparison, and made inside the loss, so no forward pass is needed to learn the shapes first."""
    size = 1
    for dim in output.shape:
        size *= dim
    phases = keras.ops.arange(size, dtype="float32") * 0.7548 + 1.3 * index
    return keras.ops.reshape(keras.ops.sin(phases), output.shape)


def _loss_of(outputs):
    # In float32 whatever the outputs' dtype (a mixed-precision policy computes in float16 or bfloat16).
    return sum(keras.ops.sum(keras.ops.cast(o, "float32") * _projection(o, k)) for k, o in enumerate(outputs))


def _tensors(call_kwargs):
    return {k: keras.ops.convert_to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in call_kwargs.items()}


def build(layer, x):
    if not layer.built:
        layer.build(tuple(np.shape(x)))


def outputs_and_gradients(layer, x, **call_kwargs):
    """Flattened outputs of `layer(x)` and gradients of a fixed weighting of them w.r.t. x (when it is a float)
    and the trainable weights, with the backend's own autodiff."""
    backend = keras.backend.backend()
    call_kwargs = _tensors(call_kwargs)
    float_input = np.issubdtype(np.asarray(x).dtype, np.floating)
    build(layer, x)
    weights = layer.trainable_weights

    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = _flat(layer(x, **call_kwargs))
            loss = _loss_of(outputs)
        gradients = tape.gradient(loss, [x, *weights] if float_input else weights)
    elif backend == "jax":
        import jax

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss_fn(x, trainable):
            outputs, _ = layer.stateless_call(trainable, non_trainable, x, **call_kwargs)
            outputs = _flat(outputs)
            return _loss_of(outputs), outputs

        # One compiled program for the forward and the backward pass: far fewer compilations than eager JAX.
        argnums = (0, 1) if float_input else (1,)
        value_and_grad = jax.jit(jax.value_and_grad(loss_fn, argnums=argnums, has_aux=True))
        (_, outputs), grads = value_and_grad(jax.numpy.asarray(x), [v.value for v in weights])
        gradients = [grads[0], *grads[1]] if float_input else list(grads[0])
    elif backend == "torch":
        import torch

        x = torch.tensor(x, requires_grad=float_input)
        for weight in weights:
            weight.value.grad = None
        outputs = _flat(layer(x, **call_kwargs))
        _loss_of(outputs).backward()
        gradients = [x.grad] if float_input else []
        gradients += [weight.value.grad for weight in weights]
    else:  # pragma: no cover
        raise NotImplementedError(backend)
    assert all(g is not None for g in gradients), "every weight gets a gradient"
    return [keras.ops.convert_to_numpy(o) for o in outputs], [keras.ops.convert_to_numpy(g) for g in gradients]


def assert_same(ours, theirs, x, atol=TOLERANCE, copy="ours_to_theirs", **call_kwargs):
    """Builds both, copies the weights (ours -> theirs, or theirs -> ours), then compares outputs and gradients."""
    build(ours, x)
    build(theirs, x)
    if copy == "ours_to_theirs":
        randomize(ours)
        theirs.set_weights(ours.get_weights())
    else:
        randomize(theirs)
        ours.set_weights(theirs.get_weights())
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

    return {
        custom_layers.LSTM: keras.layers.LSTM,
        custom_layers.SimpleRNN: keras.layers.SimpleRNN,
        custom_layers.GRU: keras.layers.GRU,
    }[layer_class]


def on_tensorflow():
    return keras.backend.backend() == "tensorflow"
