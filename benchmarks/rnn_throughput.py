"""Training and inference throughput of our recurrent layers against the Keras built-ins and torch.nn.

The model is the next-character one from the pipeline: Embedding(vocab, embed) -> recurrent(units,
return_sequences) -> Dense(vocab), trained with Adam on sparse cross-entropy. Implementations are measured
alternately in one process, `--repeats` rounds of `--steps` steps each. Tokens/s are the median round; each
ratio is the median of the per-round ratios, with their range in brackets, so that a machine whose speed drifts
(other tenants on a shared host) moves both sides of every ratio alike. Also prints the achieved GFLOP/s against
a large float32 matmul measured in the same run.

    python benchmarks/rnn_throughput.py                      # LSTM, units 256 and 512, ours / keras / torch
    python benchmarks/rnn_throughput.py --cell simple_rnn --units 256
    python benchmarks/rnn_throughput.py --cell gru --processes 5   # GRU(256), GRU(512) against keras / torch.nn.GRU
    python benchmarks/rnn_throughput.py --cell simple_rnn --units 256 --floor
    python benchmarks/rnn_throughput.py --dtype-policy mixed_bfloat16 --no-torch   # and ours in float32 beside

--floor adds the same model with Dense(units) in place of the recurrent layer, alternated with the others: what
every implementation pays besides the recurrence. Subtracting it gives the recurrent layer's own time per step,
and its achieved GFLOP/s against the large matmul.

--processes N repeats the whole measurement in N fresh processes, one after another, and ends with the medians
over them of each process's tokens/s and ratios (and each process's ratio). Rounds within one process do not
show everything: a Keras built-in model's speed is fixed for the model's life but differs from one model to the
next (on the 2-core host a Keras SimpleRNN(512) model trains at about 56k or about 67k tokens/s, while ours stay
within a few percent), and each process builds one model per implementation.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import custom_layers  # noqa: E402


def keras_model(layer, vocab, embed, dtype=None):
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(vocab, embed, dtype=dtype),
                              layer, keras.layers.Dense(vocab, dtype=dtype)])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    return model


class KerasRunner:
    def __init__(self, layer, vocab, embed, x, y, dtype=None):
        self.model = keras_model(layer, vocab, embed, dtype)
        self.x, self.y = tf.constant(x), tf.constant(y)

    def train(self, steps):
        for _ in range(steps):
            loss = self.model.train_on_batch(self.x, self.y)
        return float(loss)

    def infer(self, steps):
        for _ in range(steps):
            out = self.model.predict_on_batch(self.x)
        return float(np.asarray(out).ravel()[0])


class TorchRunner:
    def __init__(self, cell, units, vocab, embed, x, y):
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        recurrent = {"lstm": torch.nn.LSTM, "simple_rnn": torch.nn.RNN, "gru": torch.nn.GRU}[cell](
            embed, units, batch_first=True
        )
        self.torch = torch
        self.embedding = torch.nn.Embedding(vocab, embed)
        self.recurrent = recurrent
        self.head = torch.nn.Linear(units, vocab)
        self.params = [*self.embedding.parameters(), *recurrent.parameters(), *self.head.parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=1e-3)
        self.x, self.y = torch.from_numpy(x).long(), torch.from_numpy(y).long()

    def _logits(self):
        out, _ = self.recurrent(self.embedding(self.x))
        return self.head(out)

    def train(self, steps):
        for _ in range(steps):
            self.optimizer.zero_grad()
            logits = self._logits()
            loss = self.torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.y.reshape(-1))
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())

    def infer(self, steps):
        with self.torch.inference_mode():
            for _ in range(steps):
                out = self._logits()
        return float(out[0, 0, 0])


def matmul_gflops(n=2048, repeats=5):
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(lambda a, b: tf.matmul(a, b))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def flops_per_token(cell, units, vocab, embed, training):
    gates = GATES[cell]
    forward = 2 * (embed + units) * gates * units + 2 * units * vocab
    return 3 * forward if training else forward


def build_runners(args, units, x, y):
    layer_classes = {
        "lstm": (custom_layers.LSTM, keras.layers.LSTM),
        "simple_rnn": (custom_layers.SimpleRNN, keras.layers.SimpleRNN),
        "gru": (custom_layers.GRU, keras.layers.GRU),
    }[args.cell]
    policy = args.dtype_policy
    runners = {
        name: KerasRunner(cls(units, return_sequences=True, dtype=policy), args.vocab, args.embed, x, y, policy)
        for name, cls in zip(("ours", "keras"), layer_classes)
    }
    if policy != "float32":  # what the same model of ours gives in float32, beside the others
        runners["ours_float32"] = KerasRunner(layer_classes[0](units, return_sequences=True), args.vocab, args.embed,
                                              x, y)  # fmt: skip
    if not args.no_torch:
        try:
            runners["torch"] = TorchRunner(args.cell, units, args.vocab, args.embed, x, y)
        except ImportError:
            pass
    if args.floor:
        runners["floor"] = KerasRunner(keras.layers.Dense(units, dtype=policy), args.vocab, args.embed, x, y, policy)
    return runners


def layer_flops_per_token(cell, units, embed, training):
    """The recurrent layer's own matmuls: x W and h U forward; backward twice that (dX, dW and dh, dU)."""
    gates = GATES[cell]
    forward = 2 * (embed + units) * gates * units
    return 3 * forward if training else forward


def measure(runners, mode, steps, repeats, tokens_per_step):
    """Tokens/s of every runner in each of `repeats` rounds; within a round the runners go one after another."""
    for runner in runners.values():
        getattr(runner, mode)(2)  # trace / warm up
    rounds = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            start = time.perf_counter()
            getattr(runner, mode)(steps)
            rounds[name].append(tokens_per_step * steps / (time.perf_counter() - start))
    return rounds


def _load():
    """The 1, 5 and 15 minute load averages, as `uptime` prints them: on a shared host, what else was running."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def paired_ratio(ours, other):
    """Median, min and max over rounds of ours / other within the same round: a machine that speeds up or slows
    down between rounds moves both sides of a round's ratio alike."""
    ratios = [a / b for a, b in zip(ours, other)]
    return statistics.median(ratios), min(ratios), max(ratios)


def _without_option(argv, name):
    """argv minus `name VALUE` / `name=VALUE`."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            kept.append(arg)
    return kept


def run_processes(count):
    """Runs this benchmark `count` times in fresh processes and prints each ratio per process and its median."""
    child_args = _without_option(sys.argv[1:], "--processes")
    per_process = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(count):
            print(f"--- process {k + 1} of {count}", flush=True)
            path = os.path.join(tmp, f"{k}.json")
            subprocess.run([sys.executable, os.path.abspath(__file__), *child_args, "--results-json", path], check=True)
            with open(path) as f:
                per_process.append(json.load(f))
    print(f"--- over {count} processes: each figure is the median of the processes' own (their median round; their")
    print("    median round ratio, with the processes' range in brackets and each process's in parentheses)")
    for key in per_process[0]:
        rates = {name: statistics.median(results[key]["rates"][name] for results in per_process)
                 for name in per_process[0][key]["rates"]}  # fmt: skip
        loads = [results[key].get("load", float("nan")) for results in per_process]
        print(f"{key:<16} " + "  ".join(f"{name} {rate:,.0f} tok/s" for name, rate in rates.items())
              + f"  (1-minute load {min(loads):.1f}-{max(loads):.1f})")  # fmt: skip
        for other in per_process[0][key]["ratios"]:
            values = [results[key]["ratios"][other] for results in per_process]
            summary = f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"
            print(f"{'':<16} ours/{other} {summary}  ({' '.join(f'{v:.2f}' for v in values)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=["lstm", "simple_rnn", "gru"], default="lstm")
    parser.add_argument("--units", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps-per-sequence", type=int, default=100, dest="timesteps")
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed round")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--floor", action="store_true", help="also time the model without the recurrent layer")
    parser.add_argument("--processes", type=int, default=1, help="repeat everything in this many fresh processes")
    parser.add_argument("--dtype-policy", default="float32",
                        help="the Keras models' dtype policy, e.g. mixed_bfloat16; then ours in float32 runs beside "
                             "them (torch stays float32; GFLOP/s are against the float32 matmul)")  # fmt: skip
    parser.add_argument("--results-json", help=argparse.SUPPRESS)  # how a child of --processes reports back
    args = parser.parse_args()
    if args.processes > 1:
        run_processes(args.processes)
        return
    results = {}

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, args.vocab, (args.batch, args.timesteps), dtype=np.int32)
    y = rng.integers(0, args.vocab, (args.batch, args.timesteps), dtype=np.int32)
    tokens = args.batch * args.timesteps
    peak = matmul_gflops()
    print(f"cell={args.cell} batch={args.batch} timesteps={args.timesteps} embed={args.embed} vocab={args.vocab} "
          f"dtype policy {args.dtype_policy} cpus={os.cpu_count()} load {_load()}")  # fmt: skip
    print(f"large matmul (2048^3, float32): {peak:.0f} GFLOP/s")
    for units in args.units:
        runners = build_runners(args, units, x, y)
        for mode, steps in (("train", args.steps), ("infer", args.steps * 3)):
            rounds = measure(runners, mode, steps, args.repeats, tokens)
            rates = {n: statistics.median(r) for n, r in rounds.items()}
            gflops = {n: r * flops_per_token(args.cell, units, args.vocab, args.embed, mode == "train") / 1e9
                      for n, r in rates.items()}  # fmt: skip
            cells = "  ".join(
                f"{n} {r:>9,.0f} tok/s"
                + ("" if n == "floor" else f" ({gflops[n]:.0f} GFLOP/s, {gflops[n] / peak:.0%})")
                for n, r in rates.items()
            )
            paired = {n: paired_ratio(rounds["ours"], rounds[n]) for n in rounds if n not in ("ours", "floor")}
            ratios = "  ".join("ours/{} {:.2f} [{:.2f}-{:.2f}]".format(n, *p) for n, p in paired.items())
            if "ours_float32" in rounds:
                ratios += "  ours_float32/keras {:.2f} [{:.2f}-{:.2f}]".format(
                    *paired_ratio(rounds["ours_float32"], rounds["keras"])
                )
            print(f"units={units:<4} {mode:<5} {cells}  |  {ratios}  |  load {_load()}")
            results[f"units={units} {mode}"] = {"rates": rates, "ratios": {n: p[0] for n, p in paired.items()},
                                                "load": os.getloadavg()[0]}  # fmt: skip
            if "floor" in rates:
                floor_ms = 1000 * tokens / rates["floor"]
                layer_gflop = tokens * layer_flops_per_token(args.cell, units, args.embed, mode == "train") / 1e9
                parts = []
                for name in ("ours", "keras"):
                    layer_ms = 1000 * tokens / rates[name] - floor_ms
                    parts.append(f"{name} {layer_ms:.1f} ms ({layer_gflop / layer_ms * 1000:.0f} GFLOP/s)")
                print(f"           floor {floor_ms:.1f} ms/step; the recurrent layer's own {layer_gflop:.2f} GFLOP: "
                      + ", ".join(parts))  # fmt: skip
    print(f"load after: {_load()}")
    if args.results_json:
        with open(args.results_json, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
