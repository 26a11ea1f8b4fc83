"""Checks made before a stage does any work: what the config and the file system alone tell about whether the run
can get to its end.

`pipeline.config` has checked every key on its own (types, ranges, choices); these checks look at keys together
and at the data's paths, so that a config whose evaluation split does not exist, or whose data file is missing,
fails at once instead of after a training budget. What needs the data's content (labels present and discrete, the
held-out splits not empty) is checked by `pipeline.data.splits` as it reads the training split, which tokenize does
first;
`check_splits` then confirms that the split `evaluate.split` names was made.

    check(config, stage, data)    before tokenize, train and evaluate (the CLI calls it before opening a run directory)
    check_splits(config, splits)  after tokenize has loaded the data
"""

from __future__ import annotations

import glob
from pathlib import Path

from pipeline.config import Config
from pipeline.errors import ConfigError, DataError, shorten

# The stages that read the data (export and the serving commands read only the run directory or a SavedModel).
DATA_STAGES = ("tokenize", "pretrain", "train", "evaluate", "run", "cv", "tune")


def check(config: Config, stage: str, data: str = "") -> None:
    """A ConfigError (exit 2) for keys that contradict each other, a DataError for a data path that is not there.
    `data`: the file `rnnpipe evaluate --data` scores, in place of the split `evaluate.split` names."""
    if stage not in DATA_STAGES:
        return
    _check_validation_split(config)
    if data:
        if not Path(data).exists() and not glob.glob(data):
            raise DataError(f"--data: {shorten(data)} does not exist")
    else:
        _check_evaluate_split(config)
    if config.data.source == "files":
        _check_files(config)
    unlabelled = config.data.unlabelled
    if unlabelled and not Path(unlabelled).exists() and not glob.glob(unlabelled):
        raise DataError(f"data.unlabelled: {shorten(unlabelled)} does not exist")
    vectors = config.tokenize.pretrained_vectors
    if vectors and not Path(vectors).is_file():
        what = "is a folder, not a vectors file" if Path(vectors).is_dir() else "does not exist"
        raise DataError(f"tokenize.pretrained_vectors: {shorten(vectors)} {what}")


def check_splits(config: Config, splits) -> None:
    """The split `evaluate.split` scores exists in the loaded data (a fraction can hold out nothing of a tiny
    file, a TFDS dataset can lack a split)."""
    split = config.evaluate.split
    if getattr(splits, split) is None:
        raise ConfigError(f"evaluate.split: {split!r}, but the data has no {split} split; "
                          f"{_how_to_make(config, split)}")  # fmt: skip


def _check_validation_split(config: Config) -> None:
    data = config.data
    if data.source == "files" and not data.validation and data.validation_fraction == 0:
        raise ConfigError("data.validation_fraction: 0 and no data.validation: training needs validation data (it "
                          "chooses the best checkpoint and stops early on it); set one of them")  # fmt: skip
    if data.source == "tfds" and not data.validation_split:
        if "[" in data.train_split:
            raise ConfigError("data.validation_split: required when data.train_split is already sliced (the "
                              "validation share is cut from an unsliced train_split)")  # fmt: skip
        if data.validation_fraction == 0:
            raise ConfigError("data.validation_fraction: 0 and no data.validation_split: training needs "
                              "validation data; set one of them")  # fmt: skip


def _check_evaluate_split(config: Config) -> None:
    data = config.data
    if config.evaluate.split != "test":
        return  # train always exists; validation is checked above
    missing = not data.test_split if data.source == "tfds" else not (data.test or data.test_fraction or data.cv_folds)
    if missing:
        raise ConfigError(f"evaluate.split: 'test', but the data has no test split; {_how_to_make(config, 'test')}")


def _how_to_make(config: Config, split: str) -> str:
    other = "validation" if split == "test" else "test"
    if config.data.source == "tfds":
        keys = f"data.{split}_split"
    else:
        keys = f"data.{split} or data.{split}_fraction"
    return f"set {keys}, or evaluate.split = {other!r}"


def _check_files(config: Config) -> None:
    data = config.data
    for key in ("train", "validation", "test"):
        spec = getattr(data, key)
        if not spec:
            continue
        path = Path(spec)
        if path.exists():
            if path.is_dir() and data.format in ("csv", "tsv", "text"):
                raise DataError(f"data.{key}: {shorten(spec)} is a folder, not a file")
            continue
        if any(ch in spec for ch in "*?["):
            if not [p for p in glob.glob(spec) if Path(p).is_file()]:
                raise DataError(f"data.{key}: no file matches {shorten(spec)}")
            continue
        raise DataError(f"data.{key}: {shorten(spec)} does not exist")
