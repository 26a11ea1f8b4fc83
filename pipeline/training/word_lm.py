"""Next-word language models over a large vocabulary, trained with a sampled softmax.

A next-word head is a softmax over every word: for a hidden state h, p(w | h) = softmax(h W + b)_w. Its cost per
position grows with the vocabulary and, at 20,000 words, is most of a pretraining step
(benchmarks/pretrain_softmax.py). A sampled softmax (Jean et al. 2015, "On Using Very Large Target Vocabulary for
Neural Machine Translation"; Jozefowicz et al. 2016) trains on the target word y against `samples` = k words S drawn
for the batch from a proposal Q, each logit corrected by the log of how often Q proposes it:

    o_w = h W_w + b_w - log(k Q(w)),    loss = logsumexp(o_y, o_s for s in S) - (h W_y + b_y).

The logsumexp estimates log Z, the full softmax's normalizer, by importance sampling (the target's own term
vanishes as k grows), so the loss estimates the cross-entropy log Z - (h W_y + b_y) and reads on the same scale as
the held-out loss. `tf.nn.sampled_softmax_loss` subtracts o_y instead (a constant apart) and by default drops samples
equal to the target, which makes it estimate log(Z - exp(h W_y + b_y)): lower than the cross-entropy by
log(1 - p(y | h)), however many samples. Here such samples count like any other.

Q is log-uniform (Zipfian), Q(k) = log((k + 2) / (k + 1)) / log(V + 1), which fits ids ranked by frequency (as the
vocabulary ranks them). Samples are drawn with replacement, the same ones for the whole batch. Held-out losses,
perplexity and prediction use the full softmax: only training is sampled.

Training can also penalize the states' size (`activation_penalty`, Merity et al. 2018's activation regularization),
which keeps them out of the saturation a classifier's max pooling cannot read (docs/recipes.md, V5).
"""

from __future__ import annotations

import math

import keras
from keras import ops


def log_uniform_candidates(samples: int, classes: int, seed) -> tuple:
    """`samples` ids in [0, classes) drawn with replacement from the log-uniform proposal, and the log of each
    one's expected count among them (log(samples * Q(id)))."""
    log_range = math.log(classes + 1.0)
    uniform = keras.random.uniform((samples,), seed=seed)
    ids = ops.clip(ops.cast(ops.floor(ops.exp(uniform * log_range)), "int32") - 1, 0, classes - 1)
    return ids, log_expected_count(ids, samples, classes)


def log_expected_count(ids, samples: int, classes: int):
    """log(samples * Q(id)) under the log-uniform proposal over `classes` ids."""
    ids = ops.cast(ids, "float32")
    probability = (ops.log(ids + 2.0) - ops.log(ids + 1.0)) / math.log(classes + 1.0)
    return ops.log(samples * probability)


def sampled_softmax_loss(targets, hidden, kernel, bias, samples: int, seed):
    """Per position, the sampled softmax loss (module docstring) of `targets` [...] given `hidden` [..., units],
    for the head `hidden @ kernel + bias` (kernel [units, classes], as keras.layers.Dense keeps it)."""
    classes = kernel.shape[-1]
    targets = ops.cast(targets, "int32")
    sampled, sampled_log_count = log_uniform_candidates(samples, classes, seed)
    true_weights = ops.take(kernel, targets, axis=1)  # [units, ...]
    true_weights = ops.moveaxis(true_weights, 0, -1)  # [..., units]
    true_score = ops.sum(hidden * true_weights, axis=-1) + ops.take(bias, targets)
    true_logit = true_score - log_expected_count(targets, samples, classes)
    sampled_logits = (ops.matmul(hidden, ops.take(kernel, sampled, axis=1)) + ops.take(bias, sampled)
                      - sampled_log_count)  # fmt: skip
    logits = ops.concatenate([ops.expand_dims(true_logit, -1), sampled_logits], axis=-1)
    return ops.logsumexp(logits, axis=-1) - true_score


class SampledSoftmaxLoss(keras.losses.Loss):
    """`sampled_softmax_loss` for `head` (a built keras.layers.Dense over the words) as a Keras loss of (targets,
    hidden states): weighted, reduced and scaled for the replicas in sync like Keras' own losses, a new sample each
    call from `seed` (a keras.random.SeedGenerator)."""

    def __init__(self, head, samples: int, seed, reduction="mean_with_sample_weight", name="sampled_softmax"):
        super().__init__(reduction=reduction, name=name)
        self.head, self.samples, self.seed = head, samples, seed

    def call(self, y_true, y_pred):
        return sampled_softmax_loss(y_true, y_pred, self.head.kernel, self.head.bias, self.samples, self.seed)


class ActivationPenalty(keras.losses.Loss):
    """The mean square of hidden states [..., units] per position (the targets are not read): Merity et al. (2018)'s
    activation regularization, as a Keras loss so that it is weighted, reduced and scaled like the others."""

    def __init__(self, reduction="mean_with_sample_weight", name="activation_penalty"):
        super().__init__(reduction=reduction, name=name)

    def call(self, y_true, y_pred):
        return ops.mean(ops.square(y_pred), axis=-1)


class WordLanguageModels(keras.Model):
    """Functional language models whose outputs are the hidden states each head reads (one per direction), with the
    heads (keras.layers.Dense over the words) beside the graph, so that training never forms the full logits when
    `samples` > 0.

    Args:
        inputs, outputs, name: as for a functional `keras.Model`; `outputs` is one hidden-state tensor per head.
        heads: one `keras.layers.Dense` per output, in the same order.
        samples: words sampled per training step (0: the full softmax in training too). From the heads' vocabulary
            up, training uses the full softmax, which is then exact and no dearer.
        seed: the sampler's seed.
        activation_penalty: adds this times the mean square of the states each head reads (after dropout) to the
            training loss (Merity et al. 2018's activation regularization, AWD-LSTM's alpha; >= 0, 0: none).
            Held-out losses leave it out.

    Call arguments:
        tokens: [batch, time(, word_width)] ids. Returns the hidden states; `logits(tokens)` gives each head's.

    Metrics: `word_loss`, the heads' summed loss per word over the epoch (held out: the log of the product of
    their perplexities).

    Only weights are saved (`save_weights`); `build_word_language_models` rebuilds the model.
    """

    def __init__(self, inputs, outputs, heads, samples: int = 0, seed: int = 0, activation_penalty: float = 0.0,
                 name=None):  # fmt: skip
        if samples < 0:
            raise ValueError(f"samples must be >= 0, got samples={samples}")
        if not activation_penalty >= 0:
            raise ValueError(f"activation_penalty must be >= 0, got activation_penalty={activation_penalty}")
        super().__init__(inputs, outputs, name=name)
        states = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        if len(heads) != len(states):
            raise ValueError(f"{len(heads)} heads for {len(states)} outputs")
        for head, state in zip(heads, states):
            head.build(state.shape)
        self.heads = list(heads)
        self.samples = samples if samples < heads[0].units else 0
        self._full = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        # The sampler's state lives in the losses, outside what save_weights writes: the weights files stay those of
        # the language models before the sampled softmax, and load both ways.
        sampler = keras.random.SeedGenerator(seed) if self.samples else None
        self._sampled = [SampledSoftmaxLoss(head, self.samples, sampler) for head in self.heads if self.samples]
        self.activation_penalty = float(activation_penalty)
        self._penalty = ActivationPenalty()
        # Keras' "loss" is a mean over batches weighted by their texts, and texts differ in length: this one weighs
        # each batch by its words, so that held out, exp(val_word_loss / heads) is the heads' perplexity exactly
        # (their geometric mean). Pretraining runs on one replica, where Keras' losses are not scaled per replica.
        self.word_loss = keras.metrics.Mean(name="word_loss")

    @property
    def layers(self):
        """The graph's layers, then the heads: the order in which weights files hold them (as when the heads were
        part of the graph)."""
        return [*super().layers, *getattr(self, "heads", ())]

    def logits(self, tokens, training: bool = False) -> list:
        """Each head's logits [batch, time, words]: the next word's (forward), then the previous word's."""
        states = self(tokens, training=training)
        states = states if isinstance(states, (list, tuple)) else [states]
        return [head(state) for head, state in zip(self.heads, states)]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The sum over heads of the mean loss per weighted word: sampled in training (with `samples`), else full;
        in training, plus the activation penalty. The sum over heads, without the penalty, is also the `word_loss`
        metric, averaged over the epoch's words."""
        states, targets = (v if isinstance(v, (list, tuple)) else [v] for v in (y_pred, y))
        weights = sample_weight if isinstance(sample_weight, (list, tuple)) else [sample_weight] * len(states)
        words, penalty = 0.0, 0.0
        for k, (head, state, target, weight) in enumerate(zip(self.heads, states, targets, weights)):
            if training and self._sampled:
                words += self._sampled[k](target, state, weight)
            else:
                words += self._full(target, head(state), weight)
            if training and self.activation_penalty:
                penalty += self.activation_penalty * self._penalty(target, state, weight)
        count = ops.sum(weights[0]) if weights[0] is not None else ops.cast(ops.size(targets[0]), "float32")
        self.word_loss.update_state(words, sample_weight=count)
        return words + penalty
