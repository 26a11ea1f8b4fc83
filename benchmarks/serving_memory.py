"""What one request to a SavedModel costs in memory: the export as `rnnpipe export` writes it, which reads a request
in passes of bounded size, against the same model reading the whole request in one pass, side by side. sentiment
classifies `text.inference_batch` texts a pass (at most `text.INFERENCE_WORDS` words); next_char's `read_prompt`
reads prompts `sampling.READ_CHARS` characters a pass (its prompts x the longest).

A pass holds its texts' sub-word embeddings, [texts, words, sub-words per word, embedding_dim] floats: at 1,024 texts
of 256 words with the sentiment recipe's sub-words, some 5 GB, and a client chooses the number of texts. Each export
is written by a child process, and each request is sent by another, which loads the export with
`tf.saved_model.load` only (the peak resident memory is a process's): the recipe's classifier (untrained, which
costs what a trained one does) over a vocabulary of `--words` words built from random words with their n-grams,
then one request of `--texts` texts of `--length` of those words. With `--task next_char`, the recipe's character
model (LSTM(512)) over Tiny Shakespeare's characters, and one `read_prompt` request of `--texts` prompts of
`--length` characters of it (by default 64 prompts of 10,000). Printed: the peak resident memory above what the
process held after loading and a one-text warm-up, the request's time, and their ratios.

    python benchmarks/serving_memory.py [--words 20000] [--texts 1024] [--length 256]
    python benchmarks/serving_memory.py --task next_char [--texts 64] [--length 10000]
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


SHAKESPEARE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tiny_shakespeare" / "input.txt"


def export_next_char(one_pass: bool, path: str) -> None:
    import keras
    import tensorflow as tf

    from pipeline import tasks
    from pipeline.config import config_from_dict
    from pipeline.data import text
    from pipeline.tasks.next_char import serving

    if one_pass:
        serving.READ_CHARS = 2**30  # every request this measures in one pass
    config = config_from_dict({"task": "next_char", "data": {"train": "unread.txt"}})
    task = tasks.get("next_char")
    vocab = text.build_char_vocabulary(tf.data.Dataset.from_tensors(SHAKESPEARE.read_text()).batch(1), 1)
    keras.utils.set_random_seed(0)
    module = task.serving(task.build_model(config.model, vocab, ()), config, vocab, ())
    tf.saved_model.save(module.module, path, signatures=module.signatures)


def serve_next_char(path: str, prompts: int, length: int) -> dict:
    import tensorflow as tf

    read = tf.saved_model.load(path).signatures["read_prompt"]
    read(prompt=tf.constant(["warm up"]))
    corpus = SHAKESPEARE.read_text()
    request = tf.constant([corpus[k * 997 : k * 997 + length] for k in range(prompts)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    state = read(prompt=request)["state"].numpy()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mib": (peak - before) / 1024, "seconds": seconds, "sum": float(state.sum())}


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
    parser.add_argument("--task", choices=("sentiment", "next_char"), default="sentiment")
    parser.add_argument("--words", type=int, default=20000)
    parser.add_argument("--texts", type=int, help="texts or prompts (default 1024 or 64)")
    parser.add_argument("--length", type=int, help="words a text or characters a prompt (default 256 or 10000)")
    parser.add_argument("--child", choices=("export", "serve"), help=argparse.SUPPRESS)
    parser.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    chars = args.task == "next_char"
    if chars and not SHAKESPEARE.exists():
        parser.error(f"--task next_char reads {SHAKESPEARE} (../shared/data beside the repository), which is absent")
    args.texts = args.texts or (64 if chars else 1024)
    args.length = args.length or (10000 if chars else 256)
    if args.child == "export":
        if chars:
            export_next_char(args.one_pass, args.path)
        else:
            export(args.words, args.length, args.one_pass, args.path)
        return
    if args.child == "serve":
        result = serve_next_char(args.path, args.texts, args.length) if chars else serve(
            args.path, args.words, args.texts, args.length)  # fmt: skip
        sys.stdout.write(json.dumps(result) + "\n")
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
    if chars:
        print(f"one read_prompt request of {args.texts:,} prompts of {args.length:,} characters, LSTM(512)")
    else:
        print(f"one request of {args.texts:,} texts of {args.length} words, {args.words:,} words with sub-words")
    for way, r in results.items():
        print(f"  {way:>9}: peak memory +{r['mib']:,.0f} MiB, {r['seconds']:.2f} s "
              f"({'states' if chars else 'positive class'}, summed: {r['sum']:.4f})")  # fmt: skip
    whole, passes = results["one pass"], results["in passes"]
    print(f"  in passes / one pass: memory {passes['mib'] / whole['mib']:.2f}x, time "
          f"{passes['seconds'] / whole['seconds']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
