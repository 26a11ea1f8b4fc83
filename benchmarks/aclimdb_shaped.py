"""An aclImdb-shaped folder tree of aclImdb's size, made from MR's and CR's sentences, for measuring the stages at
the scale of the unlabelled set the few-label recipe is meant for (aclImdb itself cannot be downloaded here):
train/{pos,neg} and test/{pos,neg} of 12,500 reviews each from MR's positive and negative sentences, and
train/unsup of 50,000 from all of MR's and CR's. A review is a seeded draw of sentences (9 on the median, a long
tail) joined by aclImdb's `<br /><br />`: 230 words on average, as aclImdb's.

    python benchmarks/aclimdb_shaped.py ../shared/data OUT
    rnnpipe init OUT -o imdb.toml --unlabelled OUT/train/unsup
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (mr/, cr/)")
    parser.add_argument("out", type=Path, help="a folder that does not exist yet")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists")

    def lines(name, encoding):
        return (args.data / name).read_bytes().decode(encoding).splitlines()

    pos, neg = lines("mr/rt-polarity.pos", "cp1252"), lines("mr/rt-polarity.neg", "cp1252")
    everything = pos + neg + lines("cr/custrev.pos", "utf-8") + lines("cr/custrev.neg", "utf-8")
    rng = random.Random(0)

    def review(pool):
        return " <br /><br />".join(rng.choice(pool) for _ in range(max(2, int(rng.lognormvariate(2.2, 0.6)))))

    for split in ("train", "test"):
        for label, pool in (("pos", pos), ("neg", neg)):
            folder = args.out / split / label
            folder.mkdir(parents=True)
            for i in range(12500):
                (folder / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(review(pool), encoding="utf-8")
    folder = args.out / "train" / "unsup"
    folder.mkdir()
    for i in range(50000):
        (folder / f"{i}_0.txt").write_text(review(everything), encoding="utf-8")
    print(f"wrote {args.out}: 25,000 train, 25,000 test and 50,000 unsup reviews")


if __name__ == "__main__":
    main()
