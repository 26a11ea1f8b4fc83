"""What the output layer costs `rnnpipe pretrain`: a training step of the sentiment recipe's language models
(`build_word_language_models`: embedding 200, BiLSTM(150), a next-word head per direction) with heads over
`--words` words trained with the full softmax and with a sampled softmax of `--samples` words
(`pretrain.softmax_samples`), against the same encoder under heads of 2 words (the encoder's own cost), side by side
in one process.

The three models alternate, `--rounds` rounds of `--steps` steps each, on random word ids (batch `--batch` texts of
`--length` words; a step's time does not depend on which words they are); each figure is the median over rounds.

    python benchmarks/pretrain_softmax.py [--words 20000] [--samples 1024] [--length 40] [--batch 64] [--rounds 5]
                                          [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from pipeline.config import ModelConfig
from pipeline.training import fused_adam
from pipeline.training.model import build_word_language_models

# The sentiment recipe's encoder (pipeline/recipes.py).
RECIPE = ModelConfig(embedding_dim=200, units=150, bidirectional=True, dropout=0.5, output_dropout=0.5)


def lm(vocabulary: int, head_words: int, samples: int = 0) -> keras.Model:
    model = build_word_language_models(RECIPE, vocabulary, head_words, seed=1, samples=samples)
    model.compile(optimizer=fused_adam.adam(1e-3, None, False))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--length", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.batch, args.length)
    x = rng.integers(1, args.words, size=shape).astype("int32")
    full_y = [rng.integers(0, args.words, size=shape).astype("int32") for _ in range(2)]
    models = {
        "full": (lm(args.words, args.words), full_y),
        "sampled": (lm(args.words, args.words, args.samples), full_y),
        "encoder": (lm(args.words, 2), [y % 2 for y in full_y]),
    }
    for model, y in models.values():  # tracing and the first steps
        for _ in range(3):
            model.train_on_batch(x, y)
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, (model, y) in models.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            times[name].append((time.perf_counter() - start) / args.steps)
    full, sampled, encoder = (float(np.median(times[name])) for name in ("full", "sampled", "encoder"))
    words = args.batch * args.length
    print(f"{args.words:,}-word heads, batch {args.batch} x {args.length} words, ms/step (words/s):")
    rows = (("full softmax", full), (f"sampled softmax, {args.samples:,} samples", sampled),
            ("encoder alone (2-word heads)", encoder))  # fmt: skip
    for label, seconds in rows:
        print(f"  {label:<34} {1000 * seconds:6.0f} ({words / seconds:,.0f})")
    print(
        f"the full heads' share of a step: {1 - encoder / full:.0%}; the sampled softmax's step is "
        f"{full / sampled:.2f}x faster than the full softmax's (the encoder alone: {full / encoder:.2f}x)"
    )
    print(
        f"an epoch over 11.5 million words (aclImdb's 50,000 unsup/ reviews): full softmax "
        f"{11.5e6 / words * full / 60:.0f} min, sampled {11.5e6 / words * sampled / 60:.0f} min, the encoder alone "
        f"{11.5e6 / words * encoder / 60:.0f} min"
    )


if __name__ == "__main__":
    main()
