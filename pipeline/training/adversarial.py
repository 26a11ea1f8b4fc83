"""Adversarial and virtual adversarial training on the word embeddings (Miyato, Dai & Goodfellow 2017,
"Adversarial Training Methods for Semi-Supervised Text Classification").

Adversarial (`epsilon`): each step also fits the batch with its embeddings e moved, per example, a distance epsilon
in the direction that raises the loss fastest (to first order):

    g = d loss(e) / d e,    r_adv = epsilon * g / ||g||_2    (norm over all of an example's tokens),
    loss_total = loss(e) + loss(e + r_adv).

Virtual adversarial (`virtual_epsilon`) needs no labels (fit's inputs may be (ids, unlabelled ids): the term is then
taken on both batches): it penalizes how far the predicted distribution p(e)
moves under the perturbation of norm virtual_epsilon that moves it most, found by one power-iteration step from a
random unit direction d:

    g = d KL(p(e) || p(e + xi d)) / d d,    r_vadv = virtual_epsilon * g / ||g||_2,
    loss_total += KL(p(e) || p(e + r_vadv)).

The perturbations and p(e) are held constant in the total loss. Both act as data-dependent regularizers of the
embeddings and everything above them; inference is unchanged (they exist only in `train_step`). Each costs about
one forward and one to two backward passes more per step. `train.adversarial_epsilon` and
`train.virtual_adversarial_epsilon` turn them on; README "Results" has what they do on MR.
"""

from __future__ import annotations

import inspect

import keras
import tensorflow as tf

from pipeline.training import _keras_private

# The power iteration's finite-difference step: small against the embeddings' norm, large for float32 round-off.
_XI = 0.1


@keras.saving.register_keras_serializable(package="rnnpipe")
class AdversarialModel(keras.Model):
    """A functional model `tokens -> "embedding" -> layer -> ... -> logits` (the chain `build_model` makes) that
    trains with adversarial and/or virtual adversarial embedding perturbations (see the module docstring).

    Args:
        inputs, outputs, name: as for a functional `keras.Model`.
        epsilon: the adversarial perturbation's L2 norm per example (keyword only, >= 0; 0 = off).
        virtual_epsilon: the virtual adversarial perturbation's norm (keyword only, >= 0; 0 = off).
            With both 0 the model trains exactly like `keras.Model`. They are training settings and are not saved:
            a loaded checkpoint predicts the same and trains without perturbations until they are set again.

    Example:
        plain = build_model(config.model, "sentiment", vocab_size, 2)
        model = AdversarialModel(plain.inputs, plain.outputs, name=plain.name, epsilon=0.5)
    """

    # Keras revives a subclass of a functional model through `functional_from_config` only when `__init__` has
    # exactly Functional's signature, so the settings travel in **kwargs.
    def __init__(self, inputs, outputs, name=None, **kwargs):
        settings = {key: float(kwargs.pop(key, 0.0)) for key in ("epsilon", "virtual_epsilon")}
        for key, value in settings.items():
            if not value >= 0.0:
                raise ValueError(f"{key} must be >= 0, got {key}={value}")
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.epsilon = settings["epsilon"]
        self.virtual_epsilon = settings["virtual_epsilon"]
        _embedding_chain(self)  # fail here, not at the first step; not kept: Keras would track the layers twice

    def train_step(self, data):
        if not (self.epsilon or self.virtual_epsilon):
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        unlabelled = None
        if isinstance(x, (tuple, list)):  # (ids, unlabelled ids): pipeline.data.inputs.with_unlabelled
            x, unlabelled = x
        embedding, chain = _embedding_chain(self)
        with tf.GradientTape() as tape:
            embedded = embedding(x, training=True)
            mask = embedding.compute_mask(x)

            def forward(inputs):
                return _forward(chain, inputs, mask)

            with tf.GradientTape() as inner:
                inner.watch(embedded)
                y_pred, output_mask = _forward(chain, embedded, mask, with_mask=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            total = loss
            if self.epsilon:
                direction = tf.stop_gradient(inner.gradient(loss, embedded))
                adversarial_pred = forward(embedded + self.epsilon * _unit(direction, mask))
                total += self.compute_loss(x=x, y=y, y_pred=adversarial_pred, sample_weight=sample_weight,
                                           training=True)  # fmt: skip
            if self.virtual_epsilon:
                total += self._virtual_adversarial_loss(forward, embedded, mask, y_pred, output_mask)
                if unlabelled is not None:
                    total += self._unlabelled_virtual_adversarial_loss(embedding, chain, unlabelled)
            scaled = self.optimizer.scale_loss(total)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        # "loss" reports the clean loss, comparable with val_loss and with runs without perturbations.
        _keras_private.loss_tracker(self).update_state(loss * _replicas(), sample_weight=tf.shape(x)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _unlabelled_virtual_adversarial_loss(self, embedding, chain, x):
        """The virtual adversarial term on a batch of texts without labels, as on the labelled batch."""
        embedded = embedding(x, training=True)
        mask = embedding.compute_mask(x)

        def forward(inputs):
            return _forward(chain, inputs, mask)

        logits, output_mask = _forward(chain, embedded, mask, with_mask=True)
        return self._virtual_adversarial_loss(forward, embedded, mask, logits, output_mask)

    def _virtual_adversarial_loss(self, forward, embedded, mask, logits, output_mask=None):
        target = tf.stop_gradient(tf.nn.softmax(logits))
        probe = _unit(tf.random.normal(tf.shape(embedded), dtype=embedded.dtype), mask)
        with tf.GradientTape() as tape:
            tape.watch(probe)
            divergence = _kl(target, forward(tf.stop_gradient(embedded) + _XI * probe), output_mask)
        direction = tf.stop_gradient(tape.gradient(divergence, probe))
        perturbed = forward(embedded + self.virtual_epsilon * _unit(direction, mask))
        # Scaled like Keras scales compute_loss: replicas' gradients are summed.
        return _kl(target, perturbed, output_mask) / _replicas()


def _unit(direction, mask):
    """Per example, unit L2 norm over all its (unmasked) positions."""
    if mask is not None:
        direction = direction * tf.cast(mask, direction.dtype)[..., tf.newaxis]
    return tf.math.l2_normalize(direction, axis=list(range(1, direction.shape.rank)))


def _kl(target, logits, mask=None):
    """KL(target || softmax(logits)) over the last axis, averaged over the rest (examples, and positions for
    sequence outputs): the same scale as the cross-entropy loss. With a mask over the positions of sequence
    outputs, padded positions count for nothing; their predictions are not defined."""
    divergence = tf.reduce_sum(target * (tf.math.log(target + 1e-12) - tf.nn.log_softmax(logits)), -1)
    if mask is None or mask.shape.rank != divergence.shape.rank:
        return tf.reduce_mean(divergence)
    weights = tf.cast(mask, divergence.dtype)
    return tf.reduce_sum(divergence * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def _replicas():
    return tf.distribute.get_replica_context().num_replicas_in_sync


def _forward(chain, x, mask, with_mask=False):
    """The layers after the embedding, in training mode, with the embedding's mask carried along; with_mask also
    returns the mask of the output (None once a layer drops it, e.g. pooling)."""
    for layer, arguments in chain:
        kwargs = {}
        if "mask" in arguments:
            kwargs["mask"] = mask
        if "training" in arguments:
            kwargs["training"] = True
        x, mask = layer(x, **kwargs), layer.compute_mask(x, mask)
    return (x, mask) if with_mask else x


def _embedding_chain(model: keras.Model):
    """The "embedding" layer and the layers after it, checked to form a single chain to the output."""
    try:
        embedding = model.get_layer("embedding")
    except ValueError:
        raise ValueError(f"AdversarialModel needs a layer named 'embedding'; {model.name!r} has none") from None
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    chain = layers[layers.index(embedding) + 1 :]
    previous = embedding
    for layer in chain:
        # A layer called with a mask lists it among its inputs: the boolean tensors are masks.
        tensors = [t for t in keras.tree.flatten(layer.input) if t.dtype != "bool"]
        if len(tensors) != 1 or tensors[0] is not previous.output:
            raise ValueError(f"AdversarialModel needs a chain of layers after 'embedding'; {layer.name!r} does not "
                             f"take {previous.name!r}'s output")  # fmt: skip
        previous = layer
    if not chain or previous.output is not model.outputs[0] or len(model.outputs) != 1:
        raise ValueError("AdversarialModel needs the layers after 'embedding' to end in the model's only output")
    return embedding, [(layer, inspect.signature(layer.call).parameters) for layer in chain]
