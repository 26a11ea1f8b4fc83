"""Each task's recipe: its name, whether it learns from labelled examples, its defaults over the code defaults of
`pipeline.config` (the best settings the project knows for it, each with its reason; docs/recipes.md has how they
were chosen, on validation data), and the config checks that only make sense for it.

This is the part of a task the config needs, so it imports no TensorFlow; the rest of a task (data, model, metrics,
serving) is its package under pipeline/tasks/. A new task is a recipe here and a package there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError, shorten

if TYPE_CHECKING:
    from pipeline.config import Config


@dataclass(frozen=True)
class Recipe:
    name: str
    # Whether the task learns from labelled examples (csv, tsv, class_dirs, class_files) or from plain text.
    labelled: bool
    # {dotted config key: value} over the code defaults.
    defaults: Mapping[str, Any]
    # Raises ConfigError for settings that make no sense for the task (checked before any work).
    check: Callable[[Config], None]


SENTIMENT_DEFAULTS = {
    # Data sets seldom ship a test split; a seeded tenth is held out so that evaluate has one (a given test split,
    # data.test or TFDS's, is used instead).
    "data.test_fraction": 0.1,
    # Words seen once in train are mostly names and typos: their embeddings never train, and keeping them raised
    # the validation loss on both sentence data sets (a cut at 3 lost too). The max_tokens cap stays as a bound.
    "tokenize.min_word_count": 2,
    # Embeddings learned from scratch; 200 dimensions beat 128 on validation.
    "model.embedding_dim": 200,
    # A BiLSTM(150), max-pooled over time: the strongest text vector of last / max / mean on validation, and it does
    # not depend on where a text ends.
    "model.units": 150,
    "model.bidirectional": True,
    "model.pooling": "max",
    # Sentence-sized data sets overfit within an epoch or two without it.
    "model.dropout": 0.5,
    "model.output_dropout": 0.5,
    # The text vector batch-normalized before the head's dropout (ULMFiT's head): lower validation loss on MR and CR
    # with full labels, and on MR with 1,000 labels.
    "model.feature_norm": True,
    "train.batch_size": 32,
    # A cap, not a length: early stopping ends sentence data sets of thousands of texts long before it, while a
    # data set of a few hundred texts (few steps per epoch) needs more epochs to reach its best.
    "train.epochs": 40,
    # Half Adam's usual rate: as good or slightly better on validation, for a few more epochs; twice it lost.
    "train.learning_rate": 5e-4,
    # The best checkpoint never came after a worse epoch; 2 rather than 1 because small validation sets are noisy.
    "train.patience": 2,
    # Early stopping waits for 500 steps: a small data set spends its first steps at the majority class with a flat
    # validation loss, and patience counted in epochs stopped it there. Larger data sets pass 500 steps before
    # their best epoch, so it changes nothing for them.
    "train.min_steps": 500,
    # Each word also read as its character n-grams of 3 to 5 characters (fastText's sub-words): words missing from
    # the vocabulary get a vector from the pieces they share with training words. The largest single gain on
    # validation after the adversarial term.
    "tokenize.max_ngram": 5,
    # Adversarial perturbations of the embeddings (Miyato et al. 2017): the largest single gain on validation of
    # every regularizer tried. The virtual adversarial term and word dropout added nothing on top of it and cost
    # twice the training time, so they are off (both remain options).
    "train.adversarial_epsilon": 0.5,
    # With pretrained vectors (tokenize.pretrained_vectors), the training words' vectors train too: lower validation
    # loss on MR and CR than frozen ones; words seen only in the vectors file keep the file's vector either way.
    "model.fine_tune_vectors": True,
    # One temperature fitted on the validation split: fitted on half of it, it lowered the expected calibration
    # error on the other half in 12 of 22 runs (MR, CR, an imbalanced set), and the mean test ECE on all three
    # (docs/recipes.md, "Cross-validation and calibration").
    "train.calibration": "temperature",
    # Language-model pretraining (with unlabelled texts) at a higher rate, under decoupled weight decay and an
    # activation penalty, which keep the pretrained weights and states at the scale a classifier trains from: the
    # classifiers started from it had a lower validation loss on MR and CR than from plain Adam at 1e-3. With a
    # few thousand unlabelled texts they still lose to the labels alone (docs/recipes.md, "Pretraining's defaults").
    "pretrain.epochs": 20,
    "pretrain.learning_rate": 3e-3,
    "pretrain.weight_decay": 1.0,
    "pretrain.activation_penalty": 8.0,
    # `rnnpipe tune`'s default space: the recipe's neighbourhood, each range bracketing the recipe's value (units
    # and embedding size on a grid through it), over the keys its choice on validation found to matter most.
    "tune.space": {
        "train.learning_rate": {"low": 2e-4, "high": 2e-3, "log": True},
        "model.units": {"low": 50, "high": 250, "step": 50},
        "model.embedding_dim": {"low": 100, "high": 300, "step": 50},
        "model.dropout": {"low": 0.2, "high": 0.6},
        "model.output_dropout": {"low": 0.2, "high": 0.6},
        "train.adversarial_epsilon": {"low": 0.1, "high": 2.0, "log": True},
        "train.batch_size": [16, 32, 64],
    },
}


def _check_sentiment(config: Config) -> None:
    if config.train.random_offset:
        raise ConfigError("train.random_offset: only next_char cuts its text into windows; set it to false for "
                          "sentiment")  # fmt: skip
    if config.data.source == "files" and config.data.format == "text":
        raise ConfigError("data.format: sentiment reads labelled examples (csv, tsv, class_dirs, class_files), "
                          "not plain text")  # fmt: skip
    unlabelled = config.data.unlabelled or config.data.unlabelled_split
    if unlabelled and config.model.bidirectional and config.model.layers > 1:
        raise ConfigError(f"model.layers: {config.model.layers} bidirectional layers cannot be pretrained as "
                          f"language models (each direction of the second layer sees the other's future); use 1 "
                          f"with data.unlabelled")  # fmt: skip


NEXT_CHAR_DEFAULTS = {
    # Data sets seldom ship a test split; a seeded tenth is held out so that evaluate has one (a given test split,
    # data.test or TFDS's, is used instead).
    "data.test_fraction": 0.1,
    # Character models need capacity more than regularization at the data sizes this pipeline sees (about a
    # million characters): a single LSTM(512) over 64-dim character embeddings, light output dropout.
    "model.embedding_dim": 64,
    "model.units": 512,
    "model.output_dropout": 0.1,
    # DropConnect on the recurrent kernel (Merity et al. 2017): within the time budget it lowered the validation
    # loss and narrowed the gap to the training loss; at twice the rate it lost (docs/recipes-next_char.md).
    "model.recurrent_weight_dropout": 0.25,
    # Twice the updates of batch 64 in the same time, which is what a time-budgeted run is limited by.
    "train.batch_size": 32,
    "train.sequence_length": 100,
    # Twice the former constant 2e-3, decayed linearly to zero by the run's end (its time budget): within ten minutes on
    # 2 cores it beat a constant 2e-3, which the same decay at 2e-3 lost to (docs/recipes-next_char.md).
    "train.learning_rate": 4e-3,
    "train.lr_schedule": "linear",
    "train.clipnorm": 5.0,
    "train.epochs": 30,
    "train.shuffle_buffer": 20000,
    # `rnnpipe tune`'s default space: the recipe's neighbourhood (docs/recipes-next_char.md), with the
    # regularizers the time budget trades against capacity.
    "tune.space": {
        "train.learning_rate": {"low": 1e-3, "high": 5e-3, "log": True},
        "model.units": {"low": 256, "high": 768, "step": 128},
        "model.embedding_dim": [32, 64, 128],
        "model.output_dropout": {"low": 0.0, "high": 0.3},
        "model.recurrent_weight_dropout": {"low": 0.0, "high": 0.5},
        "train.batch_size": [16, 32, 64],
        "train.random_offset": [False, True],
    },
}


def _check_next_char(config: Config) -> None:
    m, t = config.model, config.train
    if m.bidirectional:
        raise ConfigError("model.bidirectional: a next-character model cannot look ahead; set it to false")
    if config.data.source == "files" and config.data.format not in ("auto", "text"):
        raise ConfigError(f"data.format: next_char reads plain text, not {config.data.format!r}")
    d = config.data
    if d.source == "tfds" and not d.validation_split and "[" not in d.train_split:
        raise ConfigError(f"data.validation_split: required for task 'next_char' (a held-out share of "
                          f"{shorten(d.name, 60)!r}'s records would not be one contiguous text)")  # fmt: skip
    if m.pooling != "last":
        raise ConfigError("model.pooling: only sentiment models pool over time; next_char predicts every step")
    if m.ensemble > 1:
        raise ConfigError(f"model.ensemble: only sentiment models are ensembled; set it to 1 for task "
                          f"'next_char' (got {m.ensemble})")  # fmt: skip
    if t.word_dropout:
        raise ConfigError("train.word_dropout: only sentiment training drops words; set it to 0 for next_char")
    if config.data.cv_folds:
        raise ConfigError("data.cv_folds: cross-validation folds are for labelled examples (task sentiment)")
    if t.class_weight != "none" or t.calibration != "none":
        key = "train.class_weight" if t.class_weight != "none" else "train.calibration"
        raise ConfigError(f"{key}: only sentiment models have classes to weight or calibrate; set it to 'none' for "
                          f"next_char")  # fmt: skip
    if config.tokenize.max_ngram:
        raise ConfigError("tokenize.max_ngram: only sentiment reads words as sub-words; set it to 0 for "
                          "next_char")  # fmt: skip
    if config.tokenize.pretrained_vectors:
        raise ConfigError("tokenize.pretrained_vectors: next_char reads characters, which have no word vectors; "
                          "remove the key")  # fmt: skip
    if m.fine_tune_vectors:
        raise ConfigError("model.fine_tune_vectors: next_char has no pretrained word vectors; set it to false")
    if m.feature_norm:
        raise ConfigError("model.feature_norm: next_char predicts from every step, not from a text vector; set it "
                          "to false")  # fmt: skip
    if config.data.unlabelled or config.data.unlabelled_split:
        key = "data.unlabelled" if config.data.unlabelled else "data.unlabelled_split"
        raise ConfigError(f"{key}: next_char learns from plain text already; unlabelled texts are for sentiment's "
                          f"pretraining: remove the key")  # fmt: skip


RECIPES = {
    "sentiment": Recipe("sentiment", labelled=True, defaults=SENTIMENT_DEFAULTS, check=_check_sentiment),
    "next_char": Recipe("next_char", labelled=False, defaults=NEXT_CHAR_DEFAULTS, check=_check_next_char),
}
TASKS = tuple(RECIPES)


def get(task: str) -> Recipe:
    """The recipe of `task` (one of TASKS)."""
    if task not in RECIPES:
        raise KeyError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    return RECIPES[task]
