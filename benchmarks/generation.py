"""Characters/s of in-graph generation (the next_char export's signatures, pipeline/tasks/next_char/serving.py).

1. Sampling controls: `sample` with top-k, top-p and both against plain temperature sampling (top_k = 0,
   top_p = 1), at batch 1 and 32. Aim: under 20% overhead.
2. Continuing a text across requests: a 2,000-character text in requests of 100 characters, through the
   continuation pair (read_prompt once, then sample_from_state from the returned state) against re-sending and
   re-reading the whole text so far with `sample` each time; and one `sample` call of 2,000 for reference.
3. The in-graph tf.while_loop (`serving_default`) against a Python loop calling a one-step tf.function per
   character (the TF text-generation tutorial's OneStep), at batch 1 and 32.

Same model and cells throughout (random weights: the speed does not depend on them). The contenders of each line
run alternately, `--repeats` rounds; rates are medians over rounds and each ratio is the median of the per-round
ratios, so that drift in a shared machine's speed moves both sides alike. Each line shows the 1-minute load average
at its end (`uptime`): the machine this runs on is shared.

    python benchmarks/generation.py [--units 512] [--length 300] [--repeats 5] [--sections 1,2,3]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from pipeline.config import ModelConfig  # noqa: E402
from pipeline.data.text import Vocabulary  # noqa: E402
from pipeline.sampling import UNSEEDED  # noqa: E402
from pipeline.tasks.next_char import serving as generation  # noqa: E402
from pipeline.tasks.next_char.serving import NextCharServing  # noqa: E402
from pipeline.training.model import build_language_model  # noqa: E402

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def controls(length, top_k=0, top_p=1.0, temperature=0.8, seed=UNSEEDED):
    return {"length": tf.constant(length, tf.int32), "temperature": tf.constant(temperature, tf.float32),
            "top_k": tf.constant(top_k, tf.int32), "top_p": tf.constant(top_p, tf.float32),
            "seed": tf.constant(seed, tf.int64)}  # fmt: skip


class OneStep(tf.Module):
    """The tutorial's approach: Python drives the loop, TensorFlow runs one character per call."""

    def __init__(self, serving: NextCharServing):
        super().__init__()
        self.serving = serving

    @tf.function
    def __call__(self, ids, states, key):
        x = self.serving.embedding(ids)
        new_states = []
        for cell, state in zip(self.serving.cells, states):
            x, state = cell(x, state)
            new_states.append(list(state))
        return self.draw(new_states, key), new_states

    def draw(self, states, key):
        # The export's own per-character draw, so that both loops sample alike.
        sampling = generation._Controls.of(self.serving.vocab.size, tf.constant(0.8), tf.constant(0), tf.constant(1.0))
        return generation._draw(self.serving._logits(states), sampling, key)

    def generate(self, prompts, length):
        states, _ = self.serving._read(prompts)
        ids = self.draw(states, tf.constant([1, 0], tf.int64))
        out = [ids]
        for t in range(1, length):
            ids, states = self(ids, states, tf.constant([1, t], tf.int64))
            out.append(ids)
        return tf.strings.reduce_join(tf.gather(tf.constant(list(CHARS)), tf.stack(out, axis=1) - 1), axis=1)


class Measured:
    """Per runner: chars/s (median round, wall clock), and the median and range over rounds of the ratio of its
    time to the first runner's, by wall clock and by this process' CPU time (all threads: on a shared machine the
    CPU time is what the work costs, the wall clock also counts the waits for a core)."""

    def __init__(self, runners: dict, repeats: int, characters: int):
        for run in runners.values():
            run()  # trace
        wall = {name: [] for name in runners}
        cpu = {name: [] for name in runners}
        for _ in range(repeats):
            for name, run in runners.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                run()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
        self.rate = {name: characters / statistics.median(values) for name, values in wall.items()}
        self.wall = {name: _ratios(wall, name) for name in runners}
        self.cpu = {name: _ratios(cpu, name) for name in runners}


def _ratios(seconds: dict, name: str) -> tuple[float, float, float]:
    """(median, lowest, highest) over rounds of seconds[name] / seconds[first runner]."""
    base = next(iter(seconds.values()))
    values = [v / b for v, b in zip(seconds[name], base)]
    return statistics.median(values), min(values), max(values)


def overhead(ratio: tuple[float, float, float]) -> str:
    median, low, high = ratio
    return f"{median - 1:+.0%} [{low - 1:+.0%}, {high - 1:+.0%}]"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def sampling_controls(serving, length, repeats):
    print(
        f"\n1. sampling controls, `sample`, {length} characters per call: overhead = controlled / plain time - 1, "
        f"median [range] over rounds"
    )
    for batch in (1, 32):
        prompts = tf.constant(["ROMEO:"] * batch)
        variants = {"plain": (0, 1.0), "top_k=40": (40, 1.0), "top_p=0.9": (0, 0.9), "top_k=40, top_p=0.9": (40, 0.9)}
        runners = {name: (lambda k=k, p=p, prompts=prompts: serving.sample(prompts, **controls(length, k, p)))
                   for name, (k, p) in variants.items()}  # fmt: skip
        m = Measured(runners, repeats, batch * length)
        print(f"  batch {batch:>2}: plain {m.rate['plain']:,.0f} chars/s   [{load()}]")
        for name in list(variants)[1:]:
            print(f"    {name:<20} {m.rate[name]:>8,.0f} chars/s   overhead: CPU time {overhead(m.cpu[name])}, "
                  f"wall clock {overhead(m.wall[name])}")  # fmt: skip


def continuation(serving, repeats, total=2000, request=100):
    print(f"\n2. a {total:,}-character text in requests of {request}, batch 1")
    prompt = tf.constant(["ROMEO:"])

    def continued():
        state = serving.read_prompt(prompt)["state"]
        for _ in range(total // request):
            state = serving.sample_from_state(state, **controls(request))["state"]

    def reread():
        text = "ROMEO:"
        for _ in range(total // request):
            text += serving.sample(tf.constant([text]), **controls(request))["text"].numpy()[0].decode()

    runners = {"continuation": continued, "re-reading": reread,
               "one call": lambda: serving.sample(prompt, **controls(total))}  # fmt: skip
    m = Measured(runners, repeats, total)
    print(
        f"  continuation (read_prompt, then {total // request} x sample_from_state): {m.rate['continuation']:,.0f} "
        f"chars/s   [{load()}]"
    )
    for name, what in (("re-reading", "re-reading (sample on the whole text so far)"), ("one call", "one call")):
        cpu, wall = m.cpu[name], m.wall[name]
        print(f"    {what:<46} {m.rate[name]:>8,.0f} chars/s   its time / continuation's: CPU "
              f"{cpu[0]:.2f}x [{cpu[1]:.2f}, {cpu[2]:.2f}], wall {wall[0]:.2f}x")  # fmt: skip


def python_loop(serving, length, repeats):
    print(f"\n3. in-graph while_loop (serving_default) against a Python loop of one-step calls, {length} characters")
    one_step = OneStep(serving)
    for batch in (1, 32):
        prompts = tf.constant(["ROMEO:"] * batch)
        runners = {
            "in-graph": lambda prompts=prompts: serving.generate(prompts, tf.constant(length), tf.constant(0.8)),
            "python loop": lambda prompts=prompts: one_step.generate(prompts, length),
        }
        m = Measured(runners, repeats, batch * length)
        print(f"  batch {batch:>2}: in-graph {m.rate['in-graph']:,.0f} chars/s   python loop "
              f"{m.rate['python loop']:,.0f} chars/s   in-graph speed-up: CPU {m.cpu['python loop'][0]:.1f}x, "
              f"wall {m.wall['python loop'][0]:.1f}x   [{load()}]")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sections", default="1,2,3", help="Which comparisons to run, e.g. 1,2.")
    args = parser.parse_args()

    vocab = Vocabulary("char", ("[UNK]",) + tuple(CHARS))
    model = build_language_model(ModelConfig(units=args.units, embedding_dim=64), vocab.size, jit_compile=False)
    serving = NextCharServing(model, vocab, num_layers=1)
    print(f"LSTM({args.units}), vocabulary {vocab.size}, cpus={os.cpu_count()}, TF {tf.__version__}, "
          f"{args.repeats} rounds, start [{load()}]")  # fmt: skip
    sections = set(args.sections.split(","))
    if "1" in sections:
        sampling_controls(serving, args.length, args.repeats)
    if "2" in sections:
        continuation(serving, args.repeats)
    if "3" in sections:
        python_loop(serving, args.length, args.repeats)


if __name__ == "__main__":
    main()
