"""What one request to a sentiment SavedModel costs in memory: the export as `rnnpipe export` writes it, which
classifies a request `text.inference_batch` texts at a time (at most `text.INFERENCE_WORDS` words a pass), against
the same model classifying the whole request in one pass, side by side.

A pass holds its texts' sub-word embeddings, [texts, words, sub-words per word, embedding_dim] floats: at 1,024 texts
of 256 words with the sentiment recipe's sub-words, some 5 GB, and a client chooses the number of texts. Each export
is written by a child process, and each request is sent by another, which loads the export with
`tf.saved_model.load` only (the peak resident memory is a process's): the recipe's classifier (untrained, which
costs what a trained one does) over a vocabulary of `--words` words built from random words with their n-grams,
then one request of `--texts` texts of `--length` of those words. Printed: the peak resident memory above what the
process held after loading and a one-text warm-up, the request's time, and their ratios.

    python benchmarks/serving_memory.py [--words 20000] [--texts 1024] [--length 256]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _words(count: int) -> list[str]:
    import numpy as np

    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    rng = np.random.default_rng(0)
    return sorted({"".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(count * 2)})[:count]


def export(words: int, length: int, one_pass: bool, path: str) -> None:
    import keras
    import tensorflow as tf

    from pipeline import tasks
    from pipeline.config import config_from_dict
    from pipeline.data import text

    if one_pass:
        text.INFERENCE_WORDS = 2**30  # every request this measures in one pass
    config = config_from_dict(
        {"task": "sentiment", "data": {"train": "unread.csv"}, "tokenize": {"sequence_length": length}}
    )
    task = tasks.get("sentiment")
    batches = tf.data.Dataset.from_tensor_slices(_words(words)).batch(1024)
    t = config.tokenize
    vocab = text.build_word_vocabulary(batches, t.max_tokens, t.standardize, t.sequence_length, 1,
                                       tuple(range(t.min_ngram, t.max_ngram + 1)), t.max_ngrams,
                                       t.ngrams_per_word)  # fmt: skip
    labels = ("neg", "pos")
    keras.utils.set_random_seed(0)  # the same weights in both exports, so that their results can be compared
    serving = task.serving(task.build_model(config.model, vocab, labels, seed=0), config, vocab, labels)
    tf.saved_model.save(serving.module, path, signatures=serving.signatures)


def serve(path: str, words: int, texts: int, length: int) -> dict:
    import numpy as np
    import tensorflow as tf

    served = tf.saved_model.load(path).signatures["serving_default"]
    served(text=tf.constant(["warm up"]))
    vocabulary = np.array(_words(words))
    rng = np.random.default_rng(1)
    request = tf.constant([" ".join(rng.choice(vocabulary, length)) for _ in range(texts)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    probabilities = served(text=request)["probabilities"].numpy()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mib": (peak - before) / 1024, "seconds": seconds, "sum": float(probabilities[:, 1].sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=20000)
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--child", choices=("export", "serve"), help=argparse.SUPPRESS)
    parser.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "export":
        export(args.words, args.length, args.one_pass, args.path)
        return
    if args.child == "serve":
        sys.stdout.write(json.dumps(serve(args.path, args.words, args.texts, args.length)) + "\n")
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for way in ("one pass", "in passes"):
            path = str(Path(tmp) / way.replace(" ", "_"))
            flags = ["--one-pass"] if way == "one pass" else []
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", "export", "--path", path, *flags],
                           check=True, capture_output=True)  # fmt: skip
            out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", "serve", "--path", path],
                                 check=True, capture_output=True, text=True).stdout  # fmt: skip
            results[way] = json.loads(out.strip().splitlines()[-1])
    print(f"one request of {args.texts:,} texts of {args.length} words, {args.words:,} words with sub-words")
    for way, r in results.items():
        print(f"  {way:>9}: peak memory +{r['mib']:,.0f} MiB, {r['seconds']:.2f} s (positive class, summed: "
              f"{r['sum']:.4f})")  # fmt: skip
    whole, passes = results["one pass"], results["in passes"]
    print(f"  in passes / one pass: memory {passes['mib'] / whole['mib']:.2f}x, time "
          f"{passes['seconds'] / whole['seconds']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
