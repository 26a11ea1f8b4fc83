"""Training-step time of the sentiment classifier with sub-words: Keras' Adam against
`pipeline.training.fused_adam.FusedAdam` (the same numbers, the table's step in one compiled pass), and the
words-only model for scale.

The model is the sentiment default (embedding 200, BiLSTM(150), max pooling, dropout 0.5, adversarial training) at
MR's sizes: 9,012 words and 36,414 n-grams, 24 ids per word of which 3-23 are used, batch 32 x 24 words. The three
alternate within one process, `--rounds` rounds of `--steps` steps each; each ratio is the median of the per-round
ratios (range in brackets), so drift in the machine's speed moves both sides alike.

    python benchmarks/subword_step.py [--rounds 7] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from pipeline.config import ModelConfig
from pipeline.training.adversarial import AdversarialModel
from pipeline.training.fused_adam import FusedAdam
from pipeline.training.model import build_classifier

WORDS, NGRAMS, WIDTH, BATCH, TIME = 9012, 36414, 24, 32, 24


def model(optimizer, word_width):
    config = ModelConfig(embedding_dim=200, units=150, bidirectional=True, pooling="max", dropout=0.5,
                         output_dropout=0.5)  # fmt: skip
    rows = WORDS + NGRAMS if word_width > 1 else WORDS
    plain = build_classifier(config, rows, 2, seed=1, word_width=word_width)
    m = AdversarialModel(plain.inputs, plain.outputs, epsilon=0.5)
    m.compile(optimizer=optimizer(5e-4, clipnorm=1.0),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    return m


def batches(steps, word_width, rng):
    words = rng.integers(2, WORDS, size=(BATCH * steps, TIME))
    if word_width == 1:
        return words
    used = rng.integers(3, WIDTH, size=words.shape)
    grams = rng.integers(WORDS, WORDS + NGRAMS, size=(*words.shape, WIDTH - 1))
    grams = np.where(np.arange(WIDTH - 1) < used[..., None], grams, 0)
    return np.concatenate([words[..., None], grams], axis=-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(BATCH * args.steps,))
    contenders = {
        "sub-words, Keras Adam": (model(keras.optimizers.Adam, WIDTH), batches(args.steps, WIDTH, rng)),
        "sub-words, FusedAdam": (model(FusedAdam, WIDTH), batches(args.steps, WIDTH, rng)),
        "words only, Keras Adam": (model(keras.optimizers.Adam, 1), batches(args.steps, 1, rng)),
    }
    for m, x in contenders.values():  # tracing and the first steps
        m.fit(x, labels, batch_size=BATCH, epochs=1, verbose=0)
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (m, x) in contenders.items():
            start = time.perf_counter()
            m.fit(x, labels, batch_size=BATCH, epochs=1, verbose=0)
            times[name].append(1000 * (time.perf_counter() - start) / args.steps)
    base = np.array(times["sub-words, Keras Adam"])
    for name, ms in times.items():
        ratios = base / np.array(ms)
        print(f"{name:24s} {np.median(ms):6.1f} ms/step; Keras-Adam sub-words / this: {np.median(ratios):.2f}x "
              f"[{ratios.min():.2f}-{ratios.max():.2f}]")  # fmt: skip


if __name__ == "__main__":
    main()
