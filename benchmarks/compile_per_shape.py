"""What a new input shape costs: the first call of a training step (and of an inference step) at each of several
sequence lengths, then a second call at the same length, for our LSTM on its XLA path, on its plain TensorFlow path
(`jit_compile=False`) and for the Keras built-in, side by side in one process.

XLA compiles one program per input shape, so the first call at a new length includes a compile; the other two
compile nothing (after their first two shapes, which trace Keras' step function). docs/kernels.md has the figures
and what they mean for inputs of many lengths.

    python benchmarks/compile_per_shape.py [--units 128] [--features 64] [--batch 32]
                                           [--lengths 20,21,22,23,37,50,64,65]
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np

import custom_layers

LAYERS = {
    "ours (XLA)": lambda units: custom_layers.LSTM(units),
    "ours (jit_compile=False)": lambda units: custom_layers.LSTM(units, jit_compile=False),
    "keras": lambda units: keras.layers.LSTM(units),
}


def timings(make, args, lengths: list[int], train: bool) -> list[tuple[float, float]]:
    """(first call, second call) seconds at each length."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, args.features))
    model = keras.Model(inputs, make(args.units)(inputs))
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    result = []
    for length in lengths:
        x = rng.random((args.batch, length, args.features), dtype=np.float32)
        y = rng.random((args.batch, args.units), dtype=np.float32)
        calls = []
        for _ in range(2):
            start = time.perf_counter()
            model.train_on_batch(x, y) if train else model.predict_on_batch(x)
            calls.append(time.perf_counter() - start)
        result.append((calls[0], calls[1]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lengths", default="20,21,22,23,37,50,64,65")
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    for train in (True, False):
        for name, make in LAYERS.items():
            rows = timings(make, args, lengths, train)
            later = rows[2:]  # the first two shapes also trace Keras' step function
            first = statistics.median(a for a, _ in later)
            again = statistics.median(b for _, b in later)
            print(
                f"{'train' if train else 'infer'} {name:>25}: a new length {first * 1000:6.1f} ms, the same length "
                f"again {again * 1000:5.1f} ms (medians over {len(later)} lengths)",
                flush=True,
            )


if __name__ == "__main__":
    main()
