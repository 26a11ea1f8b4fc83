"""Pipeline configuration: frozen dataclasses, one per stage, under one `Config`.

Precedence, lowest first: the code defaults below, the task's defaults (`pipeline.recipes`: the best recipe the project
knows for that task), a TOML file (see configs/), then `--set key=value` overrides. Unknown keys,
wrong types, non-finite numbers and invalid choices are `ConfigError`s naming the key's dotted path, e.g.
`model.units`. `rnnpipe config CONFIG` prints the fully resolved result.

Relative paths (data files, `data.manual_dir`, ...) are taken relative to the current working directory, as any
command-line tool would; the resolved config written into the run directory holds them as absolute paths, so later
stages can be run from anywhere.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from pipeline import recipes
from pipeline.errors import ConfigError, shorten
from pipeline.recipes import TASKS
from pipeline.sampling import DEFAULT_MAX_LENGTH, MAX_MAX_LENGTH

# A config is a few hundred bytes of settings; these bounds keep a mistaken or hostile file from reaching the
# run directory, the logs or an error message whole.
MAX_CONFIG_BYTES = 1 << 20
MAX_STRING_CHARS = 4096
# The longest sub-word n-gram (tokenize.max_ngram): fastText uses 3 to 6; longer ones are whole words.
MAX_NGRAM = 10
# The most vectors-only words an export carries (tokenize.vector_words): 1.2 GB of 300-dimensional vectors.
MAX_VECTOR_WORDS = 1_000_000
# The most unlabelled texts pretraining reads (data.max_unlabelled): they are held in memory, as the labelled are.
MAX_UNLABELLED = 10_000_000
# Bounds on a search (`rnnpipe tune`): trials in one study, keys in its space, choices of one key.
MAX_TRIALS = 10_000
MAX_SPACE_KEYS = 64
MAX_CHOICES = 256
# train.discriminative_lr: ULMFiT's 2.6 with room; beyond this the embedding of a two-layer model would not move.
MAX_DISCRIMINATIVE_LR = 100.0
# The sections whose keys a search may vary: what a trial trains. The data and its split stay the config's, so
# that every trial is scored on the same validation examples.
SEARCHABLE_SECTIONS = ("tokenize", "model", "train")


def _key(default: Any, doc: str) -> Any:
    """A config key: its default and one line on what it means (shown by `rnnpipe config` and the README)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from.

    `source = "tfds"` reads a TensorFlow Datasets dataset `name` (splits in TFDS split syntax, e.g. "train[:90%]");
    `source = "files"` reads local files in `format`:
      - "csv" / "tsv": a header row, `text_column` and (sentiment) `label_column`; TSV quoted as pandas writes it or
        unquoted as GLUE's (`tsv_quoting`).
      - "class_dirs": one sub-folder per class holding one .txt file per example (the aclImdb layout).
      - "class_files": one file per class, one example per line (the MR layout); `train` is a glob such as
        "data/mr/rt-polarity.*" and each file's label is its extension ("pos", "neg"), or its name without one.
      - "text": plain text, for next_char.
      - "auto": from the path: .csv, .tsv, a directory (class_dirs), a glob (class_files), otherwise text.
    When `validation` (or `validation_split`) is empty, a seeded `validation_fraction` of train is held out; when
    `test` (or `test_split`) is empty, a seeded `test_fraction` of train is held out too. For next_char the held-out
    parts are contiguous stretches at the end of the text, so no window straddles two splits.
    """

    source: str = _key("files", "'files' (local files) or 'tfds' (TensorFlow Datasets)")
    name: str = _key("", "tfds: the dataset name, e.g. 'imdb_reviews'")
    data_dir: str = _key("", "tfds: where TFDS keeps prepared datasets (empty: TFDS's default)")
    manual_dir: str = _key("", "tfds: a folder holding the dataset's downloaded files, for offline use")
    train_split: str = _key("train", "tfds: the training split, in TFDS split syntax")
    validation_split: str = _key("", "tfds: the validation split (empty: hold out validation_fraction of train)")
    test_split: str = _key("test", "tfds: the test split (empty: none)")
    text_feature: str = _key("text", "tfds: the feature holding the text")
    label_feature: str = _key("label", "tfds, sentiment: the ClassLabel feature")
    format: str = _key("auto", "files: csv, tsv, class_dirs, class_files, text, or auto (told from the path)")
    train: str = _key("", "files: the training data: a file, a folder (class_dirs) or a glob (class_files)")
    validation: str = _key("", "files: validation data in the same format (empty: held out from train)")
    test: str = _key("", "files: test data in the same format (empty: held out from train by test_fraction)")
    text_column: str = _key("text", "csv/tsv: the column holding the text")
    label_column: str = _key("label", "csv/tsv, sentiment: the column holding the class name")
    tsv_quoting: str = _key("auto", "tsv: 'quoted' (as pandas and the csv module write TSV), 'none' (GLUE-style: "
                            "a quote is a character) or 'auto' (told from the file, refused when it cannot "
                            "tell)")  # fmt: skip
    label_case: str = _key("error", "sentiment: labels that differ only by case ('pos', 'POS') are an 'error', or "
                           "'fold' (one class, lower case) or 'keep' (apart)")  # fmt: skip
    encoding: str = _key("utf-8", "files: text encoding, e.g. 'utf-8' or 'windows-1252' (a UTF-8 BOM is dropped)")
    encoding_errors: str = _key("strict", "undecodable bytes: 'strict' (stop, naming file and line), 'replace' or "
                                "'ignore'")  # fmt: skip
    validation_fraction: float = _key(0.1, "share of train held out for validation when no validation data is given")
    test_fraction: float = _key(0.0, "share of train held out for test when no test data is given")
    cv_folds: int = _key(0, "files, sentiment: K > 1 splits train into K stratified folds, fold cv_fold being the "
                         "test split (set by `rnnpipe cv`); 0: no folds")  # fmt: skip
    cv_fold: int = _key(0, "files, sentiment: the fold held out for test, from 0 to cv_folds - 1")
    unlabelled: str = _key("", "sentiment: texts without labels for `rnnpipe pretrain`: a text file (one per line), "
                           "a CSV/TSV (text_column), a folder of .txt files (aclImdb's unsup/) or a glob of "
                           "them")  # fmt: skip
    unlabelled_split: str = _key("", "tfds, sentiment: the split of unlabelled texts, e.g. 'unsupervised'")
    max_unlabelled: int = _key(100000, "sentiment: read at most this many unlabelled texts (the first ones)")
    unlabelled_with_train: bool = _key(True, "sentiment: the training texts join the unlabelled ones for "
                                       "pretraining")  # fmt: skip


@dataclass(frozen=True)
class TokenizeConfig:
    """Sentiment: word level (standardized, split on whitespace): the training split's words seen at least
    `min_word_count` times, at most `max_tokens` of them (ties broken alphabetically), texts cut to
    `sequence_length` words. next_char: every character of the training split seen at least `min_char_count`
    times, plus one out-of-vocabulary entry."""

    max_tokens: int = _key(20000, "sentiment: the largest vocabulary, padding and out-of-vocabulary entries included")
    min_word_count: int = _key(1, "sentiment: a word enters the vocabulary once seen this many times in train")
    sequence_length: int = _key(256, "sentiment: words kept per text (the rest is cut)")
    standardize: str = _key("lower_and_strip_punctuation", "sentiment: lower_and_strip_punctuation, lower, "
                            "strip_punctuation or none")  # fmt: skip
    max_ngram: int = _key(0, "sentiment: > 0 also reads each word as its character n-grams of min_ngram to "
                          "max_ngram characters (sub-words, pipeline.data.text); 0: words only")  # fmt: skip
    min_ngram: int = _key(3, "sentiment: the shortest sub-word n-gram")
    max_ngrams: int = _key(100000, "sentiment: the most n-grams in the vocabulary (those in most training words)")
    ngrams_per_word: int = _key(23, "sentiment: n-grams read per word, shortest first (a bound on the input)")
    pretrained_vectors: str = _key("", "sentiment: a word vectors file (GloVe, word2vec or fastText text, or "
                                   "word2vec binary; gzip or not): each word also gets its pretrained "
                                   "vector")  # fmt: skip
    vector_words: int = _key(100000, "sentiment, with pretrained_vectors: the vectors file's most frequent words "
                             "added to the vocabulary beyond the training words, so that words unseen in training "
                             "keep their vector (a bound on the export: this many rows of vectors)")  # fmt: skip
    min_char_count: int = _key(1, "next_char: a character enters the vocabulary once seen this many times")


@dataclass(frozen=True)
class ModelConfig:
    """embedding -> `layers` recurrent layers of `cell` (ours, from custom_layers) -> dense head."""

    cell: str = _key("lstm", "the recurrent layer, from custom_layers: lstm, simple_rnn or gru")
    embedding_dim: int = _key(128, "size of the token embeddings (learned; pretrained vectors come beside them)")
    fine_tune_vectors: bool = _key(False, "sentiment, with tokenize.pretrained_vectors: train the pretrained "
                                   "vectors of the training words too (words unseen in training keep the "
                                   "file's); false: frozen")  # fmt: skip
    units: int = _key(256, "units of each recurrent layer (per direction)")
    layers: int = _key(1, "recurrent layers, stacked")
    bidirectional: bool = _key(False, "sentiment: read each text in both directions")
    dropout: float = _key(0.0, "dropout on each recurrent layer's inputs, one mask per sequence")
    recurrent_dropout: float = _key(0.0, "dropout on the recurrent state (slower: no fused kernel while training)")
    recurrent_weight_dropout: float = _key(0.0, "DropConnect on the recurrent kernel, one mask per batch (Merity et "
                                           "al. 2017); keeps the fused kernel")  # fmt: skip
    output_dropout: float = _key(0.0, "dropout before the dense head")
    peephole: bool = _key(False, "lstm: peephole connections (Gers & Schmidhuber 2000)")
    layer_norm: bool = _key(False, "lstm: layer-normalized gate pre-activations (Ba et al. 2016)")
    pooling: str = _key("last", "sentiment: the text vector: the final state ('last'), or the max or mean over "
                        "the unpadded timesteps")  # fmt: skip
    feature_norm: bool = _key(False, "sentiment: batch-normalize the text vector before the head's dropout "
                              "(ULMFiT's head)")  # fmt: skip
    ensemble: int = _key(1, "sentiment: K > 1 trains K models (seeds seed, seed+1, ...) and averages their "
                         "probabilities; K times the training time, export size and serving cost")  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """Adam with gradient-norm clipping; the checkpoint best on `monitor` is kept, and early stopping watches it.

    `batch_size` is the global batch (split across replicas by the distribution strategy). next_char trains on
    windows of `sequence_length` characters; an epoch is `steps_per_epoch` batches (0: one pass over the text).
    """

    batch_size: int = _key(64, "examples per step (the global batch, across replicas)")
    epochs: int = _key(10, "the most epochs to train")
    learning_rate: float = _key(1e-3, "Adam's learning rate")
    lr_schedule: str = _key("constant", "the learning rate over the run: 'constant', or decayed to zero by where the "
                            "run ends (train.epochs or train.max_seconds, whichever comes first), 'linear' or "
                            "'cosine'")  # fmt: skip
    clipnorm: float = _key(1.0, "clip each gradient to this L2 norm (0: no clipping)")
    patience: int = _key(3, "stop after this many epochs without improvement of monitor (0: never stop early)")
    min_steps: int = _key(0, "early stopping counts no epoch against patience before this many training steps")
    max_seconds: float = _key(0.0, "time budget in seconds (0: none), counted across resumes; the current epoch "
                              "stops, is validated and checkpointed")  # fmt: skip
    sequence_length: int = _key(100, "next_char: characters per training window")
    random_offset: bool = _key(False, "next_char: each pass over the text starts its windows at a random "
                               "character, so their boundaries move between epochs")  # fmt: skip
    steps_per_epoch: int = _key(0, "next_char: batches per epoch (0: one pass over the text)")
    shuffle_buffer: int = _key(10000, "examples in the shuffle buffer")
    bucketing: bool = _key(True, "sentiment: batch texts of similar length together (less padding)")
    strategy: str = _key("default", "tf.distribute strategy: default, mirrored, multi_worker_mirrored or tpu")
    backup_every_steps: int = _key(200, "save a resumable backup every this many steps (and each epoch)")
    monitor: str = _key("val_loss", "what picks the best checkpoint: val_loss or val_accuracy")
    adversarial_epsilon: float = _key(0.0, "sentiment: > 0 adds adversarial training on the embeddings, "
                                      "perturbation of this L2 norm per example (Miyato et al. 2017)")  # fmt: skip
    virtual_adversarial_epsilon: float = _key(0.0, "sentiment: > 0 adds virtual adversarial training, "
                                              "perturbation of this norm")  # fmt: skip
    word_dropout: float = _key(0.0, "sentiment: probability of deleting each word of a training text, anew each "
                               "epoch")  # fmt: skip
    class_weight: str = _key("none", "sentiment: weight of each class in the training loss: 'none', 'balanced' "
                             "(n / (classes * count of the class)), or per class name, e.g. 'neg=1, pos=4' "
                             "(unnamed classes 1)")  # fmt: skip
    fine_tune: str = _key("plain", "sentiment, after `rnnpipe pretrain`: 'plain' trains the pretrained embedding "
                          "and recurrent layers with the head; 'frozen' keeps them as pretrained; 'gradual' unfreezes "
                          "them one layer per epoch from the top, the head alone first (ULMFiT)")  # fmt: skip
    discriminative_lr: float = _key(1.0, "sentiment: each layer below the head (the recurrent layers from the top, "
                                    "then the embedding) learns at the rate of the one above divided by this "
                                    "(ULMFiT: 2.6); 1: one rate for all")  # fmt: skip
    calibration: str = _key("none", "sentiment: 'temperature' fits one temperature on the validation split after "
                            "training, which the exports and evaluate's calibrated figures apply; or "
                            "'none'")  # fmt: skip


@dataclass(frozen=True)
class PretrainConfig:
    """`rnnpipe pretrain` (sentiment, with data.unlabelled): the classifier's embedding and recurrent layers trained
    as word-level language models, forward and backward, on the unlabelled texts; `train` starts from them."""

    epochs: int = _key(10, "the most epochs over the unlabelled texts (0: no language-model pretraining; the "
                       "unlabelled texts still shape the vocabulary and train's virtual adversarial term)")  # fmt: skip
    batch_size: int = _key(64, "texts per step")
    learning_rate: float = _key(1e-3, "Adam's learning rate")
    weight_decay: float = _key(0.0, "decoupled weight decay (AdamW): each step shrinks every weight by "
                               "learning_rate x this, which holds the pretrained weights near the scale a classifier "
                               "trains from")  # fmt: skip
    max_seconds: float = _key(0.0, "time budget in seconds (0: none), counted across resumes")
    patience: int = _key(2, "stop after this many epochs without a lower held-out loss (0: never stop early)")
    validation_fraction: float = _key(0.05, "share of the unlabelled texts held out to measure perplexity")
    softmax_samples: int = _key(0, "words sampled per step for each next-word head's softmax in training (a "
                                "sampled softmax; 0, or as many as the vocabulary's words: the full softmax); "
                                "held-out losses and perplexity use the full softmax")  # fmt: skip
    activation_penalty: float = _key(0.0, "activation regularization (Merity et al. 2018): this times the mean "
                                     "square of the language models' states is added to the training loss, which "
                                     "keeps the states out of saturation (0: none)")  # fmt: skip


@dataclass(frozen=True)
class EvaluateConfig:
    split: str = _key("test", "the split to score: test, validation or train")
    batch_size: int = _key(256, "texts per evaluation batch (sentiment: fewer where tokenize.sequence_length is "
                                "long, so that a batch holds a bounded number of words)")  # fmt: skip


@dataclass(frozen=True)
class ExportConfig:
    """SavedModel for TF Serving at <run_dir>/export/<name>/<version>/."""

    name: str = _key("model", "the model folder under <run_dir>/export/ (TF Serving's model name)")
    version: int = _key(0, "the version folder; 0 takes the next free integer")
    max_length: int = _key(
        DEFAULT_MAX_LENGTH, "next_char: the most characters one generation request may ask for; longer ones fail"
    )
    warmup_requests: bool = _key(True, "write assets.extra/tf_serving_warmup_requests for TF Serving")
    formats: tuple[str, ...] = _key(("saved_model",), "what a version folder holds: saved_model (TF Serving) and/or "
                                    "litert (a .tflite for devices, in litert/)")  # fmt: skip
    litert_quantize: bool = _key(False, "litert: post-training dynamic-range quantization (int8 weights, about a "
                                 "quarter of the size)")  # fmt: skip


class SearchKey(typing.NamedTuple):
    """One key of a search space (`tune.space`): a range from `low` to `high` (on a log scale with `log`; in steps
    of `step`), or a list of `choices`. In TOML: `"train.learning_rate" = {low = 2e-4, high = 2e-3, log = true}`,
    `"train.batch_size" = [16, 32, 64]`."""

    key: str  # the dotted config key, e.g. "model.units"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def spec(self) -> list | dict:
        """The key's value in a TOML [tune.space] table."""
        if self.choices:
            return list(self.choices)
        spec = {"low": self.low, "high": self.high}
        if self.log:
            spec["log"] = True
        if self.step is not None:
            spec["step"] = self.step
        return spec


@dataclass(frozen=True)
class TuneConfig:
    """`rnnpipe tune`: an Optuna study (TPE sampling) over `space`, each trial a run of the config with the
    sampled values, scored on the validation split by `train.monitor`. A [tune.space] table in a config replaces
    the task's default space whole."""

    trials: int = _key(20, "trials to finish (completed or pruned); a rerun or another worker continues the study")
    timeout: float = _key(0.0, "no trial starts after this many seconds of the search (0: no limit)")
    pruning: bool = _key(True, "stop a trial whose validation loss after an epoch is worse than the median of the "
                         "earlier trials' there and has stopped improving (Optuna's median pruner, after "
                         "train.min_steps)")  # fmt: skip
    space: tuple[SearchKey, ...] = _key((), "{dotted key: {low, high, log, step} or [choices]}: the keys a search "
                                        "varies, from the tokenize, model and train sections")  # fmt: skip


@dataclass(frozen=True)
class Config:
    task: str = _key("sentiment", "sentiment (text classification) or next_char (character language model)")
    seed: int = _key(42, "seeds the held-out splits, initial weights, dropout and shuffling")
    data: DataConfig = field(default_factory=DataConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)

    @property
    def pretrains(self) -> bool:
        """Whether `rnnpipe pretrain` trains language models that `train` starts from: unlabelled texts are named
        and `pretrain.epochs` > 0."""
        return bool(self.data.unlabelled or self.data.unlabelled_split) and self.pretrain.epochs > 0


_CHOICES = {
    "task": lambda: TASKS,
    "data.source": lambda: ("files", "tfds"),
    "data.format": lambda: ("auto", "csv", "tsv", "class_dirs", "class_files", "text"),
    "data.encoding_errors": lambda: ("strict", "replace", "ignore"),
    "data.tsv_quoting": lambda: ("auto", "quoted", "none"),
    "data.label_case": lambda: ("error", "fold", "keep"),
    "tokenize.standardize": lambda: ("lower_and_strip_punctuation", "lower", "strip_punctuation", "none"),
    "model.cell": lambda: CELLS,
    "model.pooling": lambda: ("last", "max", "mean"),
    "train.monitor": lambda: ("val_loss", "val_accuracy"),
    "train.lr_schedule": lambda: ("constant", "linear", "cosine"),
    "train.calibration": lambda: ("temperature", "none"),
    "train.fine_tune": lambda: ("plain", "frozen", "gradual"),
    "train.strategy": lambda: ("default", "mirrored", "multi_worker_mirrored", "tpu"),
    "evaluate.split": lambda: ("test", "validation", "train"),
}
_PATH_KEYS = ("data.data_dir", "data.manual_dir", "data.train", "data.validation", "data.test", "data.unlabelled",
              "tokenize.pretrained_vectors")  # fmt: skip
EXPORT_FORMATS = ("saved_model", "litert")
# The recurrent layers of custom_layers (custom_layers.LAYERS, which imports Keras; a test ties the two).
CELLS = ("lstm", "simple_rnn", "gru")
# Model options that only some recurrent layers have: {option: the cells whose constructor takes it} (tested against
# the layers' signatures). A cell without an option cannot turn it on.
CELL_OPTIONS = {"peephole": ("lstm",), "layer_norm": ("lstm",)}


def load_config(path: str | os.PathLike | None = None, overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """Defaults, the task's defaults, then the TOML file at `path` (if given), then `key=value` overrides;
    validated and resolved."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(Path(path))
    for item in overrides:
        _apply_override(raw, item)
    return _resolve_paths(config_from_dict(raw))


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """A config from a (possibly partial) nested mapping, with the task's defaults under it and the same checks as
    `load_config`; the inverse of `config_to_dict`."""
    raw = dict(raw)
    task = raw.get("task", Config.task)
    if isinstance(task, str) and task in TASKS:
        defaults = _nested(task_defaults(task))
        if isinstance(raw.get("tune"), Mapping) and "space" in raw["tune"]:
            defaults.get("tune", {}).pop("space", None)  # a space is replaced whole, never merged key by key
        raw = _merged(defaults, raw)
    config = _build(Config, raw, prefix="")
    _validate(config)
    return config


def task_defaults(task: str) -> dict[str, Any]:
    """The task's defaults over the code defaults, as {dotted key: value}."""
    return dict(recipes.get(task).defaults)


def config_to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def to_toml(config: Config, comments: bool = False) -> str:
    """The config as TOML, every key written out, so the file alone reproduces the run; with `comments`, each key
    is preceded by what it means."""
    lines = []
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"\n[{section.name}]")
            for leaf in dataclasses.fields(value):
                if comments:
                    lines.append(f"# {leaf.metadata['doc']}")
                if leaf.name == "space":  # a table of its own, after the section's plain keys
                    continue
                lines.append(f"{leaf.name} = {_toml_value(getattr(value, leaf.name))}")
            if section.name == "tune":
                lines.append(f"\n[{section.name}.space]")
                lines += [f"{_toml_key(k.key)} = {_toml_value(k.spec())}" for k in value.space]
        else:
            if comments:
                lines.append(f"# {section.metadata['doc']}")
            lines.append(f"{section.name} = {_toml_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def reference() -> list[tuple[str, Any, dict[str, Any], str]]:
    """(dotted key, code default, {task: task default}, meaning) for every key, in file order."""
    rows = []
    overrides = {task: task_defaults(task) for task in TASKS}
    hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        kind = hints[section.name]
        leaves = dataclasses.fields(kind) if dataclasses.is_dataclass(kind) else [section]
        for leaf in leaves:
            dotted = leaf.name if leaf is section else f"{section.name}.{leaf.name}"
            per_task = {task: values[dotted] for task, values in overrides.items() if dotted in values}
            rows.append((dotted, leaf.default, per_task, leaf.metadata["doc"]))
    return rows


def reference_markdown() -> str:
    """The config reference as the README shows it: one table row per key, generated from the dataclasses."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for dotted, default, per_task, doc in reference():
        shown = f"`{_toml_value(default)}`"
        if per_task:
            shown += "; " + ", ".join(f"{task} `{_toml_value(value)}`" for task, value in per_task.items())
        lines.append(f"| `{dotted}` | {shown} | {doc.replace('|', '/')} |")
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


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes; a config is at most {MAX_CONFIG_BYTES:,} bytes")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _merged(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE, got {shorten(item)!r}")
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{shorten(key)}: '{shorten(part)}' is not a section")
    node[leaf] = _OverrideValue(text)


class _OverrideValue(str):
    """A `--set` value: read as a TOML value when it parses as one, otherwise taken as a plain string."""


def _parse_override(text: str, expected: type) -> Any:
    if expected is str:
        return str(text)
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        if typing.get_origin(expected) is tuple:  # --set export.formats=saved_model,litert
            return [item.strip() for item in text.split(",") if item.strip()]
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
            raise ConfigError(f"unknown key '{shorten(path)}'{hint}")
        expected = hints[key]
        if path == "tune.space":
            values[key] = _build_space(value)
        elif dataclasses.is_dataclass(expected):
            values[key] = _build(expected, value, prefix=path + ".")
        else:
            if isinstance(value, _OverrideValue):
                value = _parse_override(value, expected)
            values[key] = _check_type(path, value, expected)
    return cls(**values)


def _build_space(raw: Any) -> tuple[SearchKey, ...]:
    """`tune.space` read: a table {dotted key: spec} (TOML: quoted dotted keys, or sections of keys), or the
    SearchKeys of a config being rebuilt (`replace`). Each key and bound is checked as the key itself would be."""
    if isinstance(raw, (list, tuple)) and all(isinstance(k, SearchKey) for k in raw):
        return tuple(_search_key(k.key, k.spec()) for k in raw)
    if isinstance(raw, _OverrideValue):
        raw = _parse_override(raw, dict)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"tune.space: expected a table of keys to search, got {_describe(raw)}")
    specs: dict[str, Any] = {}
    sections = {name for name, kind in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(kind)}

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for name, spec in table.items():
            dotted = prefix + name
            if dotted in sections and isinstance(spec, Mapping):  # [tune.space.model] units = [...]
                walk(spec, dotted + ".")
            else:
                specs[dotted] = spec

    walk(raw, "")
    if len(specs) > MAX_SPACE_KEYS:
        raise ConfigError(f"tune.space: {len(specs)} keys; a search varies at most {MAX_SPACE_KEYS}")
    return tuple(_search_key(dotted, spec) for dotted, spec in specs.items())


def _search_key(dotted: str, spec: Any) -> SearchKey:
    path = f"tune.space.{shorten(dotted, 80)}"
    section, _, leaf = dotted.partition(".")
    hints = typing.get_type_hints(Config)
    if section not in hints or not dataclasses.is_dataclass(hints[section]) or not leaf:
        raise ConfigError(f"{path}: not a config key; a search varies keys of the {', '.join(SEARCHABLE_SECTIONS)} "
                          f"sections, e.g. 'model.units'")  # fmt: skip
    leaves = typing.get_type_hints(hints[section])
    if leaf not in leaves:
        close = difflib.get_close_matches(leaf, list(leaves), n=1)
        hint = f" (did you mean '{section}.{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown key '{path}'{hint}")
    if section not in SEARCHABLE_SECTIONS:
        raise ConfigError(f"{path}: a search varies keys of the {', '.join(SEARCHABLE_SECTIONS)} sections; "
                          f"{section} stays the config's in every trial")  # fmt: skip
    expected = leaves[leaf]
    if isinstance(spec, _OverrideValue):
        spec = _parse_override(spec, dict)
    if isinstance(spec, (list, tuple)):
        if not spec or len(spec) > MAX_CHOICES:
            raise ConfigError(f"{path}: a list of 1 to {MAX_CHOICES} choices, got {len(spec)}")
        choices = tuple(_check_type(path, value, expected) for value in spec)
        if len(set(choices)) != len(choices):
            raise ConfigError(f"{path}: the choices repeat a value: {shorten(repr(list(choices)))}")
        return SearchKey(dotted, choices=choices)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{path}: expected a range {{low = ..., high = ...}} or a list of choices, got "
                          f"{_describe(spec)}")  # fmt: skip
    if expected not in (int, float):
        raise ConfigError(f"{path}: a {expected.__name__} key is searched over a list of choices, not a range")
    unknown = set(spec) - {"low", "high", "log", "step"}
    if unknown or not {"low", "high"} <= set(spec):
        raise ConfigError(f"{path}: a range has low, high and optionally log (true: a log scale) and step; got "
                          f"{', '.join(sorted(map(str, spec))) or 'nothing'}")  # fmt: skip
    low, high = (_check_type(f"{path}.{bound}", spec[bound], expected) for bound in ("low", "high"))
    log = _check_type(f"{path}.log", spec.get("log", False), bool)
    step = spec.get("step")
    if step is not None:
        step = _check_type(f"{path}.step", step, expected)
        if step <= 0 or log:
            raise ConfigError(f"{path}.step: a step is > 0 and on a linear scale (no log), got {step}")
    if not low < high:
        raise ConfigError(f"{path}: low must be below high, got {low} and {high}")
    if log and low <= 0:
        raise ConfigError(f"{path}: a log scale needs low > 0, got {low}")
    return SearchKey(dotted, low, high, log, step)


def _check_space(config: Config) -> None:
    """Every value a search can give a key is one the key takes: the bounds and choices are set into the config
    in turn and checked as a config (other keys keep the config's values)."""
    bare = dataclasses.replace(config, tune=dataclasses.replace(config.tune, space=()))
    for key in config.tune.space:
        for value in key.choices or (key.low, key.high):
            try:
                replace(bare, **{key.key: value})
            except ConfigError as e:
                raise ConfigError(f"tune.space.{key.key}: {shorten(repr(value))} is not a value the key takes "
                                  f"({e})") from None  # fmt: skip


def _check_type(path: str, value: Any, expected: type) -> Any:
    if typing.get_origin(expected) is tuple:  # tuple[str, ...]: a TOML array of strings
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{path}: expected a list of strings, got {_describe(value)}")
        return tuple(_check_type(path, item, str) for item in value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{path}: expected {expected.__name__}, got {_describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}: must be a finite number, got {value}")
    if isinstance(value, int) and abs(value) >= 2**63:
        raise ConfigError(f"{path}: {shorten(str(value))} is out of range (at most 2**63 - 1 in size)")
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        raise ConfigError(f"{path}: a string of {len(value):,} characters; at most {MAX_STRING_CHARS:,}")
    return value


def _describe(value: Any) -> str:
    kind = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "table"}.get(type(value))
    return f"{kind or type(value).__name__} {shorten(repr(value))}"


def _validate(config: Config) -> None:
    flat = flatten(config_to_dict(config))
    for key, choices in _CHOICES.items():
        if flat[key] not in choices():
            raise ConfigError(f"{key}: must be one of {', '.join(choices())}; got {shorten(repr(flat[key]))}")
    positive = [
        "tokenize.max_tokens", "tokenize.min_word_count", "tokenize.sequence_length", "tokenize.min_char_count",
        "tokenize.min_ngram", "tokenize.max_ngrams", "tokenize.ngrams_per_word",
        "model.embedding_dim", "model.units", "model.layers", "model.ensemble", "train.batch_size", "train.epochs",
        "train.sequence_length", "train.shuffle_buffer", "train.backup_every_steps", "evaluate.batch_size",
        "train.learning_rate", "export.max_length", "tune.trials", "data.max_unlabelled",
        "pretrain.batch_size", "pretrain.learning_rate",
    ]  # fmt: skip
    for key in positive:
        if flat[key] <= 0:
            raise ConfigError(f"{key}: must be > 0, got {flat[key]}")
    low, high = flat["tokenize.min_ngram"], flat["tokenize.max_ngram"]
    if high and not low <= high <= MAX_NGRAM:
        raise ConfigError(f"tokenize.max_ngram: must be 0 (off) or from tokenize.min_ngram ({low}) to {MAX_NGRAM}, "
                          f"got {high}")  # fmt: skip
    for key in ("tokenize.vector_words", "train.clipnorm", "train.max_seconds", "train.patience", "train.min_steps",
                "train.steps_per_epoch", "train.adversarial_epsilon", "train.virtual_adversarial_epsilon",
                "export.version", "tune.timeout", "pretrain.epochs", "pretrain.max_seconds",
                "pretrain.patience", "pretrain.weight_decay", "pretrain.softmax_samples",
                "pretrain.activation_penalty"):  # fmt: skip
        if flat[key] < 0:
            raise ConfigError(f"{key}: must be >= 0, got {flat[key]}")
    for key in ("model.dropout", "model.recurrent_dropout", "model.recurrent_weight_dropout", "model.output_dropout",
                "train.word_dropout", "data.validation_fraction", "data.test_fraction",
                "pretrain.validation_fraction"):  # fmt: skip
        if not 0.0 <= flat[key] < 1.0:
            raise ConfigError(f"{key}: must be in [0, 1), got {flat[key]}")
    if not 1.0 <= flat["train.discriminative_lr"] <= MAX_DISCRIMINATIVE_LR:
        raise ConfigError(f"train.discriminative_lr: must be from 1 to {MAX_DISCRIMINATIVE_LR:g}, got "
                          f"{flat['train.discriminative_lr']}")  # fmt: skip
    if not 0 <= config.seed < 2**31:  # NumPy, Python and TensorFlow all take it, with room for members' seeds
        raise ConfigError(f"seed: must be in [0, 2**31), got {config.seed}")
    if flat["tokenize.vector_words"] > MAX_VECTOR_WORDS:
        raise ConfigError(f"tokenize.vector_words: at most {MAX_VECTOR_WORDS:,} (each is a row of vectors in the "
                          f"export), got {flat['tokenize.vector_words']:,}")  # fmt: skip
    if flat["export.max_length"] > MAX_MAX_LENGTH:
        raise ConfigError(
            f"export.max_length: must be <= 2**24 ({MAX_MAX_LENGTH:,}), got {flat['export.max_length']:,}"
        )
    folds, fold = config.data.cv_folds, config.data.cv_fold
    if folds == 1 or folds < 0 or not 0 <= fold < max(folds, 1):
        raise ConfigError(f"data.cv_folds / data.cv_fold: K >= 2 folds and a fold from 0 to K - 1 (or K = 0, no "
                          f"folds); got {folds} / {fold}")  # fmt: skip
    if folds and (config.data.test or config.data.source != "files"):
        raise ConfigError("data.cv_folds: folds split local training files (data.source = 'files') and replace the "
                          "test split; remove data.test")  # fmt: skip
    if flat["data.validation_fraction"] + flat["data.test_fraction"] >= 1.0:
        raise ConfigError("data.validation_fraction + data.test_fraction must leave some training data")
    try:
        "".encode(flat["data.encoding"])
    except LookupError:
        raise ConfigError(f"data.encoding: unknown encoding {shorten(repr(flat['data.encoding']))}") from None
    if config.data.source == "tfds" and not config.data.name:
        raise ConfigError("data.name: required when data.source = 'tfds' (e.g. 'imdb_reviews')")
    if config.data.source == "files" and not config.data.train:
        raise ConfigError("data.train: required when data.source = 'files' (a file, folder or glob)")
    _check_cell_options(config.model)
    class_weights(config.train.class_weight)
    formats = config.export.formats
    if not formats or len(set(formats)) != len(formats) or not set(formats) <= set(EXPORT_FORMATS):
        raise ConfigError(f"export.formats: a list of distinct formats from {', '.join(EXPORT_FORMATS)}; got "
                          f"{shorten(repr(list(formats)))}")  # fmt: skip
    name = config.export.name
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise ConfigError(f"export.name: must be a plain folder name, got {shorten(repr(name))}")
    if config.data.unlabelled and config.data.source != "files":
        raise ConfigError("data.unlabelled: local files; a TFDS dataset names its split of unlabelled texts in "
                          "data.unlabelled_split")  # fmt: skip
    if config.data.unlabelled_split and config.data.source != "tfds":
        raise ConfigError("data.unlabelled_split: a TFDS split; local files are named in data.unlabelled")
    if flat["data.max_unlabelled"] > MAX_UNLABELLED:
        raise ConfigError(f"data.max_unlabelled: at most {MAX_UNLABELLED:,} texts, got {flat['data.max_unlabelled']:,}")
    if flat["tune.trials"] > MAX_TRIALS:
        raise ConfigError(f"tune.trials: at most {MAX_TRIALS:,} in one study, got {flat['tune.trials']:,}")
    recipes.get(config.task).check(config)
    _check_space(config)


def class_weights(text: str) -> str | dict[str, float]:
    """`train.class_weight` read: "none", "balanced", or {class name: weight > 0} from "name=weight, ..."."""
    if text in ("none", "balanced"):
        return text
    weights: dict[str, float] = {}
    for item in text.split(","):
        name, equals, value = item.strip().rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not equals or not name.strip() or not (math.isfinite(weight) and weight > 0) or name.strip() in weights:
            raise ConfigError(f"train.class_weight: 'none', 'balanced' or 'name=weight, ...' with distinct names and "
                              f"weights > 0; got {shorten(repr(text))}")  # fmt: skip
        weights[name.strip()] = weight
    return weights


def _check_cell_options(model: ModelConfig) -> None:
    for option, cells in CELL_OPTIONS.items():
        if getattr(model, option) and model.cell not in cells:
            raise ConfigError(f"model.{option}: cell {model.cell!r} has no such option (it exists for "
                              f"{', '.join(cells)})")  # fmt: skip


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


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON's string escapes are a subset of TOML's basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, SearchKey):
        return _toml_value(value.spec())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
