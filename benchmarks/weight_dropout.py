"""Training-step time with DropConnect on the recurrent kernel (`recurrent_weight_dropout`) against the same layer
without it, side by side in one process: the target is at least 0.9x the speed.

Each cell at the main job's shape (the next_char recipe: embedding 64, 512 units, batch 32 x 100 characters, a dense
head over 66 characters), on the fused XLA path (the default) and the plain-TF one (`jit_compile=False`). The two
layers alternate, `--rounds` rounds of `--steps` steps each; each ratio is the median of the per-round ratios (range
in brackets), so drift in the machine's speed moves both sides alike.

    python benchmarks/weight_dropout.py [--rounds 7] [--steps 10] [--cells lstm,gru,simple_rnn] [--units 512]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

import custom_layers

VOCAB, EMBEDDING, BATCH, TIME = 66, 64, 32, 100


def model(cell, units, rate, jit_compile):
    layer = custom_layers.LAYERS[cell](units, return_sequences=True, recurrent_weight_dropout=rate,
                                       jit_compile=jit_compile, seed=1)  # fmt: skip
    m = keras.Sequential([keras.Input((TIME,), dtype="int32"), keras.layers.Embedding(VOCAB, EMBEDDING), layer,
                          keras.layers.Dense(VOCAB)])  # fmt: skip
    m.compile(optimizer=keras.optimizers.Adam(2e-3, clipnorm=5.0),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    return m


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cells", default="lstm,gru,simple_rnn")
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--rate", type=float, default=0.5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, size=(BATCH * args.steps, TIME)).astype("int32")
    y = rng.integers(0, VOCAB, size=(BATCH * args.steps, TIME)).astype("int32")
    for cell in args.cells.split(","):
        for jit_compile in (True, False):
            pair = {"without": model(cell, args.units, 0.0, jit_compile),
                    "with": model(cell, args.units, args.rate, jit_compile)}  # fmt: skip
            for m in pair.values():  # tracing and the first steps
                m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
            times = {name: [] for name in pair}
            for _ in range(args.rounds):
                for name, m in pair.items():
                    start = time.perf_counter()
                    m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
                    times[name].append(1000 * (time.perf_counter() - start) / args.steps)
            ratios = np.array(times["without"]) / np.array(times["with"])
            path = "fused XLA" if jit_compile else "fused plain TF"
            print(f"{cell:10s} {args.units} units, {path:14s}: without {np.median(times['without']):6.1f} ms/step, "
                  f"with p={args.rate} {np.median(times['with']):6.1f} ms/step; speed with / without "
                  f"{np.median(ratios):.3f}x [{ratios.min():.3f}-{ratios.max():.3f}]", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
