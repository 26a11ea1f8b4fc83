"""The LiteRT export against the SavedModel: size on disk, per-call latency, and what post-training dynamic-range
quantization changes (size, latency, test accuracy / bits per character, seeded generation).

Models: a sentiment model and a next_char model trained by the pipeline on real data on a small budget (the shipped
configs/mr_lstm.toml with one member, configs/shakespeare_char_lstm.toml for `--next-char-seconds`), or the run
directories given. Latencies are medians over `--rounds` rounds, each round timing every candidate in turn
(`--calls` calls each), so that a change in the machine's load affects all of them alike.

    nice -n 10 python benchmarks/litert_export.py [--work DIR] [--sentiment-run DIR] [--next-char-run DIR]
"""

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pipeline import tasks
from pipeline.clients import litert_client
from pipeline.config import load_config  # noqa: E402
from pipeline.data.text import Vocabulary  # noqa: E402
from pipeline.export import litert
from pipeline.run.rundir import RunDir  # noqa: E402
from pipeline.stages import export, tokenize, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RNNPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def trained_run(work: Path, task: str, given: str | None, budget_seconds: float, epochs: int):
    """(config, run dir, SavedModel dir) of a trained run: the one given, or one trained now into `work`."""
    if given:
        run_dir = Path(given)
        config = load_config(run_dir / "config.toml")
    else:
        run_dir = work / task
        if task == "sentiment":
            overrides = [f"data.train={DATA}/mr/rt-polarity.*", "model.ensemble=1", f"train.epochs={epochs}"]
            config = load_config(REPO / "configs" / "mr_lstm.toml", overrides)
        else:
            overrides = [
                "data.source=files",
                "data.format=text",
                f"data.train={DATA}/tiny_shakespeare/input.txt",
                "data.validation_fraction=0.05",
                "data.test_fraction=0.05",
                f"train.max_seconds={budget_seconds}",
            ]
            config = load_config(REPO / "configs" / "shakespeare_char_lstm.toml", overrides)
        rd = RunDir(Path(run_dir).absolute())
        if not rd.best_model.exists():
            tokenize.run(config, run_dir)
            train.run(config, run_dir)
    rd = RunDir(Path(run_dir).absolute())
    base = rd.exports / config.export.name
    versions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.exists() else []
    saved_model = base / str(versions[-1]) if versions else export.run(config, run_dir).path
    return config, rd, saved_model


def litert_exports(rd, config, work: Path) -> dict:
    vocab = Vocabulary.load(rd.vocabulary)
    labels = rd.read_labels()
    model = keras.saving.load_model(rd.best_model)
    paths = {}
    for name, quantize in (("float", False), ("dynamic_range", True)):
        path = work / f"{config.task}_litert_{name}"
        paths[name] = path if path.exists() else litert.export_litert(model, config.task, vocab, labels, path, quantize)
    return paths


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def median_ms(candidates: dict, rounds: int, calls: int) -> dict:
    """Per-call milliseconds of each candidate (a function of no arguments), median over interleaved rounds."""
    for fn in candidates.values():
        for _ in range(3):
            fn()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def print_table(title, rows, columns):
    print(f"\n{title}")
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))


def sentiment(config, rd, saved_model, paths, args):
    saved = tf.saved_model.load(str(saved_model))
    serve = saved.signatures["serving_default"]
    clients = {name: litert_client.LiteRTModel(path, num_threads=args.threads) for name, path in paths.items()}
    test = [
        (x["text"].numpy().decode("utf-8"), x["label"].numpy().decode("utf-8"))
        for x in tasks.get(config.task).load_splits(config).test
    ]
    texts, truth = [t for t, _ in test], [label for _, label in test]
    served = serve(text=tf.constant(texts))
    probabilities = {"SavedModel": served["probabilities"].numpy()}
    for name, client in clients.items():
        probabilities[f"LiteRT {name}"] = np.concatenate([client.probabilities(texts[i : i + 64])
                                                           for i in range(0, len(texts), 64)])  # fmt: skip
    names = clients["float"].class_names
    rows = []
    for name, p in probabilities.items():
        accuracy = np.mean([names[int(i)] == t for i, t in zip(p.argmax(axis=1), truth)])
        difference = np.abs(p - probabilities["SavedModel"]).max()
        rows.append((name, f"{accuracy:.4f}", f"{difference:.2g}"))
    print_table(f"sentiment: {len(texts)} held-out MR sentences", rows, ["model", "accuracy", "max |p - SavedModel p|"])

    text = sorted(texts, key=len)[len(texts) // 2]  # a sentence of median length
    batch = texts[:32]
    ids1, ids32 = clients["float"].tokenizer.encode_words([text]), clients["float"].tokenizer.encode_words(batch)
    candidates = {
        "SavedModel, batch 1 (strings in)": lambda: serve(text=tf.constant([text])),
        "SavedModel, batch 32": lambda: serve(text=tf.constant(batch)),
    }
    for name, client in clients.items():
        runner = client.signatures["serving_default"]
        candidates[f"LiteRT {name}, batch 1 (tokenize + invoke)"] = lambda c=client: c.probabilities([text])
        candidates[f"LiteRT {name}, batch 1 (invoke)"] = lambda r=runner: r(tokens=ids1)
        candidates[f"LiteRT {name}, batch 32 (tokenize + invoke)"] = lambda c=client: c.probabilities(batch)
        candidates[f"LiteRT {name}, batch 32 (invoke)"] = lambda r=runner: r(tokens=ids32)
    latency = median_ms(candidates, args.rounds, args.calls)
    print_table(f"sentiment latency per call (median of {args.rounds} rounds x {args.calls} calls; "
                f"a {len(text.split())}-word sentence)", [(k, f"{v:.3f} ms") for k, v in latency.items()],
                ["call", "latency"])  # fmt: skip
    return sizes_rows("sentiment", saved_model, paths)


def next_char(config, rd, saved_model, paths, args):
    saved = tf.saved_model.load(str(saved_model))
    clients = {name: litert_client.LiteRTModel(path, num_threads=args.threads) for name, path in paths.items()}
    held_out = "".join(x.numpy().decode("utf-8") for x in tasks.get(config.task).load_splits(config).test)[
        : args.held_out_chars
    ]
    model = keras.saving.load_model(rd.best_model)

    streams = 8
    length = len(held_out) // streams
    segments = [held_out[i * length : (i + 1) * length] for i in range(streams)]
    tokenizer = clients["float"].tokenizer
    ids = np.array([tokenizer.encode_chars(s) for s in segments], np.int32)
    keras_probabilities = tf.nn.softmax(model(ids, training=False)).numpy()
    rows = [("Keras (teacher-forced, the same streams)", f"{bits_per_char(keras_probabilities, ids):.4f}")]
    for name, client in clients.items():
        state, stepped = client.initial_state(streams), []
        for t in range(length):
            out = client.step(ids[:, t], state)
            state = out["state"]
            stepped.append(out["probabilities"])
        rows.append((f"LiteRT {name} (step signature)", f"{bits_per_char(np.stack(stepped, axis=1), ids):.4f}"))
    print_table(f"next_char: bits per character on {streams} x {length - 1} held-out Shakespeare characters", rows,
                ["model", "bits/char"])  # fmt: skip

    rows = []
    for seed in range(3):
        prompt, temperature = "ROMEO:", 1.0
        inputs = {"prompt": tf.constant([prompt]), "length": tf.constant(200),
                  "temperature": tf.constant(temperature), "seed": tf.constant(seed, tf.int64)}  # fmt: skip
        reference = saved.signatures["generate_seeded"](**inputs)["text"].numpy()[0].decode("utf-8")
        for name, client in clients.items():
            text = client.generate(prompt, 200, temperature, seed)
            same = next((i for i, (a, b) in enumerate(zip(text, reference)) if a != b), 200)
            rows.append((seed, f"LiteRT {name}", "identical" if same == 200 else f"first {same} equal"))
    print_table("next_char: 200 seeded characters against the SavedModel's generate_seeded", rows,
                ["seed", "model", "characters"])  # fmt: skip

    prompt = held_out[:100]
    candidates = {
        "SavedModel generate_seeded, 200 chars, per char": lambda: saved.signatures["generate_seeded"](
            prompt=tf.constant(["ROMEO:"]), length=tf.constant(200), temperature=tf.constant(1.0),
            seed=tf.constant(1, tf.int64)),
        "SavedModel next_char_probabilities, 100-char prompt": lambda: saved.signatures["next_char_probabilities"](
            text=tf.constant([prompt])),
    }  # fmt: skip
    per_char = {"SavedModel generate_seeded, 200 chars, per char"}
    for name, client in clients.items():
        runner, state, char = client.signatures["step"], client.initial_state(), np.array([5], np.int32)
        generate = f"LiteRT {name} generate, 200 chars, per char (Python sampling)"
        candidates[generate] = lambda c=client: c.generate("ROMEO:", 200, 1.0, seed=1)
        per_char.add(generate)
        candidates[f"LiteRT {name} step (invoke)"] = lambda r=runner, s=state, c=char: r(char_id=c, state=s)
        candidates[f"LiteRT {name} read_prompt, 100-char prompt"] = lambda c=client: c.read_prompt([prompt])
    latency = median_ms(candidates, args.rounds, max(1, args.calls // 10))
    rows = [(k, f"{(v / 200 if k in per_char else v):.3f} ms") for k, v in latency.items()]
    print_table(f"next_char latency (median of {args.rounds} rounds)", rows, ["call", "latency"])
    return sizes_rows("next_char", saved_model, paths)


def bits_per_char(probabilities, ids):
    """Mean -log2 p(next character) over every position but the last of each stream."""
    p = np.take_along_axis(probabilities[:, :-1], ids[:, 1:, np.newaxis], axis=2)[..., 0]
    return float(-np.mean(np.log2(np.maximum(p, 1e-30))))


def sizes_rows(task, saved_model, paths):
    rows = [(task, "SavedModel (folder)", f"{folder_bytes(saved_model) / 1024:.1f} KiB")]
    for name, path in paths.items():
        rows.append((task, f"LiteRT {name} (model.tflite)", f"{(path / 'model.tflite').stat().st_size / 1024:.1f} KiB"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/rnnpipe-litert-benchmark", help="where runs and exports are kept")
    parser.add_argument("--sentiment-run", help="a trained sentiment run directory (default: train one on MR)")
    parser.add_argument("--next-char-run", help="a trained next_char run directory (default: train one)")
    parser.add_argument("--sentiment-epochs", type=int, default=2)
    parser.add_argument("--next-char-seconds", type=float, default=120.0)
    parser.add_argument("--held-out-chars", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="LiteRT interpreter threads (default: its own)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, LiteRT interpreter threads: {args.threads}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip

    sizes = []
    config, rd, saved_model = trained_run(work, "sentiment", args.sentiment_run, 0, args.sentiment_epochs)
    sizes += sentiment(config, rd, saved_model, litert_exports(rd, config, work), args)
    config, rd, saved_model = trained_run(work, "next_char", args.next_char_run, args.next_char_seconds, 0)
    sizes += next_char(config, rd, saved_model, litert_exports(rd, config, work), args)
    print_table("size on disk", sizes, ["task", "artifact", "size"])
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
