"""What `rnnpipe pretrain`'s held-out passes (the validation loss of each epoch, and the perplexity at the end) cost
in memory on long texts over a large vocabulary: held-out batches bounded to `pretrain.HELD_OUT_LOGITS` logits per
head, against the same texts in batches of `--batch` texts whatever their length, side by side.

The full softmax forms a batch's logits, [texts, words per text, vocabulary] per head: at 64 texts of 256 words over
20,000 words, 1.3 GB each. Each way runs in a child process of its own (the peak resident memory is a process's),
which builds the sentiment recipe's language models (`build_word_language_models`) over `--words` words, then
measures the passes over `--texts` texts of `--length` random words. Printed: the peak resident memory above what
the process held before the passes, and the time of the passes, with their ratios.

    python benchmarks/pretrain_memory.py [--words 20000] [--texts 1000] [--length 256] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from pipeline.config import ModelConfig

# The sentiment recipe's encoder (pipeline/recipes.py).
RECIPE = ModelConfig(embedding_dim=200, units=150, bidirectional=True, dropout=0.5, output_dropout=0.5)


def measure(words: int, texts: int, length: int, batch: int, bounded: bool) -> dict:
    import numpy as np
    import tensorflow as tf

    from pipeline.data.inputs import word_lm_dataset
    from pipeline.data.text import Vocabulary
    from pipeline.stages import pretrain
    from pipeline.training import fused_adam
    from pipeline.training.model import build_word_language_models

    vocab = Vocabulary("word", ("", "[UNK]", *(f"w{k}" for k in range(words - 2))), sequence_length=length)
    rng = np.random.default_rng(0)
    lines = [" ".join(f"w{k}" for k in rng.integers(0, words - 2, length)) for _ in range(texts)]
    limit = pretrain.HELD_OUT_LOGITS // words if bounded else 0
    ds = word_lm_dataset(tf.data.Dataset.from_tensor_slices(lines), vocab, batch, words, bidirectional=True,
                         max_positions=limit).cache()  # fmt: skip
    for _ in ds:  # encoded before the measurement
        pass
    model = build_word_language_models(RECIPE, words, words, seed=1)
    model.compile(optimizer=fused_adam.adam(1e-3, None, False))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    model.evaluate(ds, verbose=0)
    perplexity = pretrain._perplexity(model, ds, bidirectional=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mib": (peak - before) / 1024, "seconds": seconds, "perplexity": perplexity["forward"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=20000)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--child", choices=("bounded", "unbounded"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = measure(args.words, args.texts, args.length, args.batch, args.child == "bounded")
        sys.stdout.write(json.dumps(result) + "\n")
        return
    results = {}
    for way in ("unbounded", "bounded"):
        command = [sys.executable, __file__, *sys.argv[1:], "--child", way]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[way] = json.loads(out.strip().splitlines()[-1])
    print(f"held-out passes over {args.texts} texts of {args.length} words, {args.words:,} words, batch {args.batch}")
    for way, r in results.items():
        print(f"  {way:>9}: peak memory +{r['mib']:,.0f} MiB, {r['seconds']:.1f} s, perplexity {r['perplexity']:.2f}")
    u, b = results["unbounded"], results["bounded"]
    print(f"  bounded / unbounded: memory {b['mib'] / u['mib']:.2f}x, time {b['seconds'] / u['seconds']:.2f}x")


if __name__ == "__main__":
    main()
