"""Peak resident memory of tokenize + train on a 200 MB plain-text corpus (next_char), run as the CLI runs.

The corpus is tiny_shakespeare repeated to `--megabytes` (or synthetic text when the shared data is absent); training
is limited to `--steps` steps of one epoch with a small separate validation file, since the point is memory while
streaming, not accuracy. Peak RSS of each stage comes from getrusage(RUSAGE_CHILDREN) after it exits.

    python benchmarks/streaming_memory.py [--megabytes 200] [--steps 50]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAKESPEARE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tiny_shakespeare" / "input.txt"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seed_text = SHAKESPEARE.read_text(encoding="utf-8") if SHAKESPEARE.exists() else "to be or not to be\n" * 50_000
        corpus = tmp / "corpus.txt"
        with open(corpus, "w", encoding="utf-8") as f:
            while f.tell() < args.megabytes * 1_000_000:
                f.write(seed_text)
        (tmp / "validation.txt").write_text(seed_text[:50_000], encoding="utf-8")
        config = tmp / "big.toml"
        config.write_text(
            'task = "next_char"\n[data]\n'
            f'train = "{corpus}"\nvalidation = "{tmp / "validation.txt"}"\ntest_fraction = 0.0\n'
            "[model]\nunits = 256\nembedding_dim = 64\n"
            f"[train]\nepochs = 1\nsteps_per_epoch = {args.steps}\nbatch_size = 64\nshuffle_buffer = 1000\n",
            encoding="utf-8",
        )
        rnnpipe = str(Path(sys.executable).with_name("rnnpipe"))
        print(f"corpus: {corpus.stat().st_size / 1e6:.0f} MB, {args.steps} training steps")
        for stage in ("tokenize", "train"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            start = time.perf_counter()
            subprocess.run([rnnpipe, stage, str(config), "--run-dir", str(tmp / "run")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            note = "" if peak > before else " (no higher than the previous stage)"
            print(f"{stage:<8} peak RSS {peak / 1024:,.0f} MiB{note}, {time.perf_counter() - start:.0f} s")
        print(f"loadavg {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
