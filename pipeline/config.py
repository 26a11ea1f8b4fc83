"""Pipeline configuration: frozen dataclasses, one per stage, under one `Config`.

Precedence, lowest first: the defaults below, a TOML file (see configs/), then `--set key=value` overrides. Unknown
keys, wrong types and invalid choices are `ConfigError`s naming the key's dotted path, e.g. `model.units`.

Relative paths (data files, `data.manual_dir`, ...) are taken relative to the current working directory, as any
command-line tool would; the resolved config written into the run directory holds them as absolute paths, so later
stages can be run from anywhere.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pipeline.errors import ConfigError

TASKS = ("sentiment", "next_char")


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from.

    `source = "tfds"` reads a TensorFlow Datasets dataset `name` (splits in TFDS split syntax, e.g. "train[:90%]");
    `source = "files"` reads local files in `format`:
      - "csv" / "tsv": a header row, `text_column` and (sentiment) `label_column`; TSV is unquoted, as in GLUE.
      - "class_dirs": one sub-folder per class holding one .txt file per example (the aclImdb layout).
      - "class_files": one file per class, one example per line (the MR layout); `train` is a glob such as
        "data/mr/rt-polarity.*" and each file's label is its extension ("pos", "neg"), or its name without one.
      - "text": plain text, for next_char.
      - "auto": from the path: .csv, .tsv, a directory (class_dirs), a glob (class_files), otherwise text.
    When `validation` (or `validation_split`) is empty, a seeded `validation_fraction` of train is held out; when
    `test` (or `test_split`) is empty, a seeded `test_fraction` of train is held out too. For next_char the held-out
    parts are contiguous stretches at the end of the text, so no window straddles two splits.
    """

    source: str = "files"
    # tfds
    name: str = ""
    data_dir: str = ""
    manual_dir: str = ""
    train_split: str = "train"
    validation_split: str = ""
    test_split: str = "test"
    text_feature: str = "text"
    label_feature: str = "label"
    # files
    format: str = "auto"
    train: str = ""
    validation: str = ""
    test: str = ""
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    encoding_errors: str = "strict"
    # held-out fractions, used only where a split is not given
    validation_fraction: float = 0.1
    test_fraction: float = 0.0


@dataclass(frozen=True)
class TokenizeConfig:
    """Sentiment: word level (lower-cased, punctuation stripped, split on whitespace), the `max_tokens` most frequent
    words of the training split (ties broken alphabetically), sequences cut to `sequence_length` words.
    next_char: every character of the training split seen at least `min_char_count` times, plus one out-of-vocabulary
    entry."""

    max_tokens: int = 20000
    sequence_length: int = 256
    standardize: str = "lower_and_strip_punctuation"
    min_char_count: int = 1


@dataclass(frozen=True)
class ModelConfig:
    """embedding -> `layers` recurrent layers of `cell` (ours, from custom_layers) -> dense head."""

    cell: str = "lstm"
    embedding_dim: int = 128
    units: int = 256
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    output_dropout: float = 0.0
    peephole: bool = False
    layer_norm: bool = False
    # sentiment: how the last layer's outputs become one vector: its final state ("last"), or the maximum / mean
    # over the (unpadded) timesteps
    pooling: str = "last"
    # sentiment: > 1 trains that many copies of the model independently (training seeds seed, seed+1, ...) and
    # predicts with the mean of their class probabilities
    ensemble: int = 1


@dataclass(frozen=True)
class TrainConfig:
    """Adam with gradient-norm clipping; early stopping on validation loss keeps the best weights.

    `batch_size` is the global batch (split across replicas by the distribution strategy). next_char trains on
    windows of `sequence_length` characters; an epoch is `steps_per_epoch` batches (0: one pass over the text).
    `max_seconds` > 0 stops training (after the current batch) once that much wall time is spent.
    """

    batch_size: int = 64
    epochs: int = 10
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    patience: int = 3
    max_seconds: float = 0.0
    sequence_length: int = 100
    steps_per_epoch: int = 0
    shuffle_buffer: int = 10000
    bucketing: bool = True
    strategy: str = "default"
    backup_every_steps: int = 200
    # what picks the best checkpoint and drives early stopping: "val_loss" or "val_accuracy"
    monitor: str = "val_loss"
    # > 0: adversarial / virtual adversarial training, embeddings perturbed by this L2 norm per example
    # (pipeline/adversarial.py)
    adversarial_epsilon: float = 0.0
    virtual_adversarial_epsilon: float = 0.0
    # sentiment: the probability that each word of a training example is deleted, drawn anew at every epoch
    word_dropout: float = 0.0


@dataclass(frozen=True)
class EvaluateConfig:
    split: str = "test"
    batch_size: int = 256


@dataclass(frozen=True)
class ExportConfig:
    """SavedModel for TF Serving at <run_dir>/export/<name>/<version>/; `version = 0` takes the next free integer."""

    name: str = "model"
    version: int = 0
    warmup_requests: bool = True


@dataclass(frozen=True)
class Config:
    task: str = "sentiment"
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


_CHOICES = {
    "task": TASKS,
    "data.source": ("files", "tfds"),
    "data.format": ("auto", "csv", "tsv", "class_dirs", "class_files", "text"),
    "data.encoding_errors": ("strict", "replace", "ignore"),
    "tokenize.standardize": ("lower_and_strip_punctuation", "lower", "strip_punctuation", "none"),
    "model.cell": ("lstm", "simple_rnn"),
    "model.pooling": ("last", "max", "mean"),
    "train.monitor": ("val_loss", "val_accuracy"),
    "train.strategy": ("default", "mirrored", "multi_worker_mirrored", "tpu"),
    "evaluate.split": ("test", "validation", "train"),
}
_PATH_KEYS = ("data.data_dir", "data.manual_dir", "data.train", "data.validation", "data.test")


def load_config(path: str | os.PathLike | None = None, overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """Defaults, then the TOML file at `path` (if given), then `key=value` overrides; validated and resolved."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: TOML syntax error: {e}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for item in overrides:
        _apply_override(raw, item)
    config = _build(Config, raw, prefix="")
    _validate(config)
    return _resolve_paths(config)


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """The inverse of `config_to_dict`, with the same checks as `load_config`."""
    config = _build(Config, dict(raw), prefix="")
    _validate(config)
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def to_toml(config: Config) -> str:
    """The config as TOML, every key written out, so the file alone reproduces the run."""
    data = config_to_dict(config)
    lines = [f"{key} = {_toml_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def replace(config: Config, **changes: Any) -> Config:
    """`dataclasses.replace` for dotted keys: replace(config, **{"train.epochs": 3})."""
    raw = config_to_dict(config)
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config_from_dict(raw)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: '{part}' is not a section")
    node[leaf] = _OverrideValue(text)


class _OverrideValue(str):
    """A `--set` value: read as a TOML value when it parses as one, otherwise taken as a plain string."""


def _parse_override(text: str, expected: type) -> Any:
    if expected is str:
        return str(text)
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return str(text)


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a table of settings, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        path = prefix + key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown key '{path}'{hint}")
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            values[key] = _build(expected, value, prefix=path + ".")
        else:
            if isinstance(value, _OverrideValue):
                value = _parse_override(value, expected)
            values[key] = _check_type(path, value, expected)
    return cls(**values)


def _check_type(path: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        ok = False
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(f"{path}: expected {expected.__name__}, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    kind = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "table"}.get(type(value))
    return f"{kind or type(value).__name__} {value!r}"


def _validate(config: Config) -> None:
    flat = flatten(config_to_dict(config))
    for key, choices in _CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"{key}: must be one of {', '.join(choices)}; got {flat[key]!r}")
    positive = [
        "tokenize.max_tokens", "tokenize.sequence_length", "tokenize.min_char_count", "model.embedding_dim",
        "model.units", "model.layers", "model.ensemble", "train.batch_size", "train.epochs",
        "train.sequence_length", "train.shuffle_buffer", "train.backup_every_steps", "evaluate.batch_size",
    ]
    for key in positive:
        if flat[key] <= 0:
            raise ConfigError(f"{key}: must be > 0, got {flat[key]}")
    if flat["train.learning_rate"] <= 0:
        raise ConfigError(f"train.learning_rate: must be > 0, got {flat['train.learning_rate']}")
    for key in ("train.clipnorm", "train.max_seconds", "train.patience", "train.steps_per_epoch",
                "train.adversarial_epsilon", "train.virtual_adversarial_epsilon", "export.version"):
        if flat[key] < 0:
            raise ConfigError(f"{key}: must be >= 0, got {flat[key]}")
    for key in ("model.dropout", "model.recurrent_dropout", "model.output_dropout", "train.word_dropout"):
        if not 0.0 <= flat[key] < 1.0:
            raise ConfigError(f"{key}: must be in [0, 1), got {flat[key]}")
    for key in ("data.validation_fraction", "data.test_fraction"):
        if not 0.0 <= flat[key] < 1.0:
            raise ConfigError(f"{key}: must be in [0, 1), got {flat[key]}")
    if flat["data.validation_fraction"] + flat["data.test_fraction"] >= 1.0:
        raise ConfigError("data.validation_fraction + data.test_fraction must leave some training data")
    try:
        "".encode(flat["data.encoding"])
    except LookupError:
        raise ConfigError(f"data.encoding: unknown encoding {flat['data.encoding']!r}") from None
    if config.data.source == "tfds" and not config.data.name:
        raise ConfigError("data.name: required when data.source = 'tfds' (e.g. 'imdb_reviews')")
    if config.data.source == "files" and not config.data.train:
        raise ConfigError("data.train: required when data.source = 'files' (a file, folder or glob)")
    if config.task == "next_char":
        if config.model.bidirectional:
            raise ConfigError("model.bidirectional: a next-character model cannot look ahead; set it to false")
        if config.data.format in ("csv", "tsv", "class_dirs", "class_files"):
            raise ConfigError(f"data.format: next_char reads plain text, not {config.data.format!r}")
    if config.model.peephole and config.model.cell != "lstm":
        raise ConfigError("model.peephole: peephole connections exist only for cell = 'lstm'")
    if config.model.pooling != "last" and config.task != "sentiment":
        raise ConfigError("model.pooling: only sentiment models pool over time; next_char predicts every step")
    if config.train.word_dropout and config.task != "sentiment":
        raise ConfigError("train.word_dropout: only sentiment training drops words; set it to 0 for next_char")
    if config.model.ensemble > 1 and config.task != "sentiment":
        raise ConfigError(f"model.ensemble: only sentiment models are ensembled; set it to 1 for task "
                          f"{config.task!r} (got {config.model.ensemble})")  # fmt: skip
    if config.model.layer_norm and config.model.cell != "lstm":
        raise ConfigError("model.layer_norm: layer normalization exists only for cell = 'lstm'")
    if not config.export.name or "/" in config.export.name or config.export.name in (".", ".."):
        raise ConfigError(f"export.name: must be a plain folder name, got {config.export.name!r}")


def _resolve_paths(config: Config) -> Config:
    changes = {}
    for key in _PATH_KEYS:
        section, leaf = key.split(".")
        value = getattr(getattr(config, section), leaf)
        if value and not _is_remote(value):
            changes[key] = os.path.abspath(os.path.expanduser(value))
    return replace(config, **changes) if changes else config


def _is_remote(path: str) -> bool:
    return "://" in path


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON's string escapes are a subset of TOML's basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
