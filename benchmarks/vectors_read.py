"""Reading a large word vectors file for one vocabulary: throughput and peak memory.

Writes a GloVe-format text file of `--words` vectors of `--dim` dimensions (2 million x 300 by default, about 5 GB,
in a temporary folder; the values are random, the words "w0", "w1", ...), then, in fresh processes one after
another, reads it as tokenize does (`pipeline.data.vectors.read` with the tokenizer's word rule, the recipe's
100,000 extra words) for a vocabulary of `--vocabulary` words spread over the whole file, and, as the floor any
reader pays, iterates over its lines doing nothing (decompressing them, for a gzip file). Each process reports its
resident memory before the read (after its imports) and its peak after; the read's own memory is the difference.
`--binary` also writes and reads the same vectors as a word2vec binary file; `--gzip` compresses the text file too.

    python benchmarks/vectors_read.py [--words 2000000] [--dim 300] [--vocabulary 20000] [--binary] [--gzip]
"""

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, sys, time

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

mode, path, vocabulary, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from pipeline.data import text, vectors
words = [f"w{i}" for i in range(0, vocabulary * 100, 100)]
normalize = lambda batch: text.as_single_words(batch, "lower_and_strip_punctuation")
normalize(["warm", "up"])  # TensorFlow's first op allocates its runtime: part of the baseline, not of the read
before = rss("VmRSS")
start = time.perf_counter()
if mode == "read":
    found = vectors.read(path, words, extra=extra, normalize=normalize)
    assert found.matched.all() and len(found.extra_words) == extra, (found.matched.sum(), len(found.extra_words))
else:
    import gzip
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        for line in f:
            pass
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "before": before, "peak": rss("VmHWM")}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=2_000_000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--vocabulary", type=int, default=20_000)
    parser.add_argument("--extra", type=int, default=100_000)
    parser.add_argument("--binary", action="store_true")
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    if args.vocabulary * 100 > args.words:
        parser.error("--words must be at least 100 x --vocabulary (the vocabulary is every 100th word)")
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), args)
        print(f"{args.words:,} words x {args.dim} dims, a vocabulary of {args.vocabulary:,} words spread over the "
              f"file, {args.extra:,} extra words")  # fmt: skip
        print("| file | size (MB) | read (s) | MB/s | floor: iterating lines (MB/s) | read / floor | peak memory above "
              "baseline (MB) |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, path in files:
            size = path.stat().st_size
            read = child("read", path, args)
            floor = child("lines", path, args)
            rate = size / read["seconds"] / 1e6
            floor_rate = size / floor["seconds"] / 1e6
            print(f"| {name} | {size / 1e6:,.0f} | {read['seconds']:.1f} | {rate:.0f} | {floor_rate:.0f} | "
                  f"{rate / floor_rate:.2f} | {(read['peak'] - read['before']) / 1e6:.0f} |")  # fmt: skip


def write_files(tmp: Path, args) -> list[tuple[str, Path]]:
    rng = np.random.default_rng(0)
    # 1,000 distinct rows of values, cycled: the reader's work does not depend on the numbers' variety.
    rows = rng.normal(scale=0.4, size=(1000, args.dim)).astype(np.float32)
    lines = [" ".join(f"{v:.5f}" for v in row) + "\n" for row in rows]
    start = time.perf_counter()
    text_path = tmp / "vectors.txt"
    with open(text_path, "w", encoding="ascii") as f:
        for i in range(args.words):
            f.write(f"w{i} {lines[i % 1000]}")
    files = [("GloVe text", text_path)]
    if args.gzip:
        with open(text_path, "rb") as src, gzip.open(tmp / "vectors.txt.gz", "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 24)
        files.append(("GloVe text, gzip", tmp / "vectors.txt.gz"))
    if args.binary:
        records = [row.astype("<f4").tobytes() + b"\n" for row in rows]
        with open(tmp / "vectors.bin", "wb") as f:
            f.write(f"{args.words} {args.dim}\n".encode())
            for i in range(args.words):
                f.write(f"w{i} ".encode() + records[i % 1000])
        files.append(("word2vec binary", tmp / "vectors.bin"))
    print(f"wrote the files in {time.perf_counter() - start:.0f} s")
    return files


def child(mode: str, path: Path, args) -> dict:
    command = [sys.executable, "-c", _CHILD, mode, str(path), str(args.vocabulary), str(args.extra)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
