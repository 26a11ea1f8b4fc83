"""Characters/s of in-graph generation (the exported `serving_default`: one tf.while_loop) against a Python loop
calling a one-step tf.function per character (the TF text-generation tutorial's OneStep), at batch 1 and 32.

Both use the same model and cells (random weights; the speed does not depend on them) and the same sampling.
The two are measured alternately, `--repeats` times, and the median is reported.

    python benchmarks/generation.py [--units 512] [--length 300]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from pipeline.config import ModelConfig  # noqa: E402
from pipeline.export import NextCharServing  # noqa: E402
from pipeline.model import build_language_model  # noqa: E402
from pipeline.text import Vocabulary  # noqa: E402

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class OneStep(tf.Module):
    """The tutorial's approach: Python drives the loop, TensorFlow runs one character per call."""

    def __init__(self, serving: NextCharServing):
        super().__init__()
        self.serving = serving

    @tf.function
    def __call__(self, ids, states, temperature):
        x = self.serving.embedding(ids)
        new_states = []
        for cell, state in zip(self.serving.cells, states):
            x, state = cell(x, state)
            new_states.append(state)
        return self.serving._sample(self.serving.head(x), temperature, None, 0), new_states

    def generate(self, prompts, length, temperature):
        logits, states = self.serving._read_prompt(prompts)
        ids = self.serving._sample(logits, temperature, None, 0)
        out = [ids]
        for _ in range(length - 1):
            ids, states = self(ids, states, temperature)
            out.append(ids)
        return tf.strings.reduce_join(tf.gather(tf.constant(list(CHARS)), tf.stack(out, axis=1) - 1), axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    vocab = Vocabulary("char", ("[UNK]",) + tuple(CHARS))
    model = build_language_model(ModelConfig(units=args.units, embedding_dim=64), vocab.size, jit_compile=False)
    serving = NextCharServing(model, vocab, num_layers=1)
    one_step = OneStep(serving)
    temperature = tf.constant(1.0)
    print(f"LSTM({args.units}), {args.length} characters per prompt, cpus={os.cpu_count()}, "
          f"loadavg={os.getloadavg()[0]:.1f}")  # fmt: skip
    for batch in (1, 32):
        prompts = tf.constant(["ROMEO:"] * batch)
        runners = {
            "in-graph while_loop": lambda: serving.generate(prompts, tf.constant(args.length), temperature),
            "python loop of one-step calls": lambda: one_step.generate(prompts, args.length, temperature),
        }
        for run in runners.values():
            run()  # trace
        rates = {name: [] for name in runners}
        for _ in range(args.repeats):
            for name, run in runners.items():
                start = time.perf_counter()
                run()
                rates[name].append(batch * args.length / (time.perf_counter() - start))
        medians = {name: statistics.median(values) for name, values in rates.items()}
        graph, loop = medians.values()
        print(f"batch {batch:>2}: in-graph {graph:>9,.0f} chars/s   python loop {loop:>9,.0f} chars/s   "
              f"ratio {graph / loop:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
