"""Few labels, many texts (docs/recipes.md, "Few labels, many texts"): writes MR and CR as a few labelled sentences
and many unlabelled ones, on the protocol's seed-42 split, for `rnnpipe run` with and without `data.unlabelled`.

    python benchmarks/few_labels.py OUT        # from the repository root, with ../shared/data beside it

OUT/<mr|cr>/ gets train.csv (1,000 or 500 labelled sentences, seeded), validation.csv and test.csv (the recipe's
own held-out sentences) and unlabelled.txt (the rest of the training sentences, one per line), and OUT/<mr|cr>.toml
and OUT/<mr|cr>_base.toml the configs with and without the unlabelled texts.
"""

import csv
import sys
from pathlib import Path

import numpy as np

from pipeline.config import load_config
from pipeline.data.splits import labelled_file_splits

KEPT = {"mr": 1000, "cr": 500}
SEED = 2015  # which training sentences keep their labels


def _write(path: Path, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def main(out: Path) -> None:
    for name, keep in KEPT.items():
        config = load_config(Path("configs") / f"{name}_lstm.toml")
        splits = labelled_file_splits(config.data, config.seed)

        def rows(ds):
            return [(x["text"].decode(), x["label"].decode()) for x in ds.as_numpy_iterator()]

        train = rows(splits.train)
        order = np.random.default_rng(SEED).permutation(len(train))
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / "train.csv", [train[i] for i in order[:keep]])
        _write(folder / "validation.csv", rows(splits.validation))
        _write(folder / "test.csv", rows(splits.test))
        texts = [train[i][0].replace("\n", " ") for i in order[keep:]]
        (folder / "unlabelled.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        base = (
            f'task = "sentiment"\nseed = 42\n\n[data]\nsource = "files"\nformat = "csv"\n'
            f'train = "{folder}/train.csv"\nvalidation = "{folder}/validation.csv"\ntest = "{folder}/test.csv"\n'
        )
        (out / f"{name}_base.toml").write_text(base, encoding="utf-8")
        (out / f"{name}.toml").write_text(base + f'unlabelled = "{folder}/unlabelled.txt"\n', encoding="utf-8")
        print(
            f"{name}: {keep} labelled, {len(texts)} unlabelled, {len(rows(splits.validation))} validation, "
            f"{len(rows(splits.test))} test -> {folder}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("few_labels"))
