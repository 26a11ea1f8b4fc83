"""Tiny datasets and run directories made inside the tests (no network, seconds of CPU)."""

import random
from pathlib import Path

POSITIVE = ["great", "wonderful", "superb", "moving", "brilliant", "delightful", "fine", "charming"]
NEGATIVE = ["awful", "dull", "boring", "terrible", "weak", "tedious", "bland", "clumsy"]
FILLER = ["the", "film", "movie", "plot", "acting", "was", "very", "and", "a", "story"]


def sentiment_csv(path: Path, n: int = 160, seed: int = 0) -> Path:
    """A separable two-class CSV: the label decides which sentiment words appear."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = rng.sample(FILLER, 4) + rng.sample(POSITIVE if label == "pos" else NEGATIVE, 2)
        rng.shuffle(words)
        lines.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def plain_text(path: Path, chars: int = 6000, seed: int = 0) -> Path:
    rng = random.Random(seed)
    words = ["to be", "or not", "that is", "the question", "whether tis", "nobler"]
    text = ""
    while len(text) < chars:
        text += rng.choice(words) + (",\n" if rng.random() < 0.2 else " ")
    path.write_text(text[:chars], encoding="utf-8")
    return path


def write_config(path: Path, task: str, data: dict, **sections) -> Path:
    """A TOML config for tiny, fast runs; `sections` override e.g. train={"epochs": 1}. The task's regularizers are
    off and sentiment's Adam runs at the usual 1e-3, not the recipe's gentler rate: these runs test the pipeline's
    mechanics on a few hundred examples, which must learn in an epoch or two."""
    base = {
        "model": {"embedding_dim": 8, "units": 8, "dropout": 0.0, "output_dropout": 0.0},
        "train": {
            "epochs": 2,
            "batch_size": 16,
            "sequence_length": 20,
            "backup_every_steps": 5,
            "adversarial_epsilon": 0.0,
            "virtual_adversarial_epsilon": 0.0,
            "word_dropout": 0.0,
        },
        "tokenize": {"max_tokens": 200, "sequence_length": 16},
    }
    if task == "sentiment":
        base["train"]["learning_rate"] = 1e-3
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    lines = [f'task = "{task}"', "seed = 7", "[data]"] + [f"{k} = {_toml(v)}" for k, v in data.items()]
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def classes_csv(path: Path, classes: int, per_class: int = 2, seed: int = 0) -> Path:
    """A CSV of `classes` classes ("c0", "c1", ...), `per_class` rows each: class k's texts share a word of their own,
    so a tiny model can tell them apart."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for k in range(classes):
        for _ in range(per_class):
            words = rng.sample(FILLER, 3) + [f"w{k}"]
            rng.shuffle(words)
            lines.append(f"{' '.join(words)},c{k}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
