"""Stage between tokenize and train (sentiment, with unlabelled texts: `data.unlabelled` or `data.unlabelled_split`):
the classifier's embedding and recurrent layers trained as word-level language models on texts without labels.

The language models (pipeline.training.model.build_word_language_models) are the classifier's encoder under
next-word heads: a bidirectional encoder's forward half predicts each word from the words before it and its
backward half from the words after it (Dai & Le 2015; Howard & Ruder 2018, both directions; Peters et al. 2018).
They share the classifier's vocabulary, sub-words and pretrained vectors; each head is a softmax over the
words of the vocabulary seen in the texts (tokens, not the vectors-only words), trained full or, with
`pretrain.softmax_samples`, sampled (pipeline.training.word_lm). A seeded `pretrain.validation_fraction`
of the texts is held out: it chooses the best epoch, stops training early, and gives the perplexities reported.
`train` then starts the classifier from these weights (`train.fine_tune`).

    <run_dir>/pretrain/encoder.weights.h5   the best epoch's weights (written atomically)
    <run_dir>/pretrain/state.json           how it ended, epochs, seconds, held-out perplexity of each direction
    <run_dir>/pretrain/history.csv          per-epoch losses; backup/ while it runs (a rerun resumes from it)
    <run_dir>/pretrain/training_curves.png  the losses and the held-out perplexity by epoch, redrawn each epoch

Like train: `pretrain.max_seconds` (counted across resumes), early stopping after `pretrain.patience` epochs, and an
interrupted run resumes when the same command runs again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable

import keras
import numpy as np

from pipeline import tasks
from pipeline.config import Config
from pipeline.data.inputs import word_lm_dataset
from pipeline.data.text import Vocabulary
from pipeline.errors import ConfigError, RunDirError
from pipeline.run import artifacts, freshness, preflight, rundir
from pipeline.run.rundir import RunDir
from pipeline.training import _keras_private, fused_adam, plots
from pipeline.training.callbacks import FINISHED, AtomicBackup, EarlyStopping, Stopper, TimedProgress, keras_verbosity
from pipeline.training.model import Vectors, build_word_language_models
from pipeline.training.word_lm import WordLanguageModels

logger = logging.getLogger(__name__)

# Logits per head in one held-out batch (512 MiB of float32 for both heads), which bounds the memory of the full
# softmax that held-out losses and perplexity use: long texts over a large vocabulary come in fewer per batch.
HELD_OUT_LOGITS = 2**26


@dataclasses.dataclass(frozen=True)
class PretrainResult:
    status: str
    epochs: int
    perplexity: dict  # {"forward": ..., "backward": ...} on the held-out texts
    texts: int  # trained on
    held_out: int
    seconds: float
    path: str
    skipped: bool = False

    def summary(self) -> str:
        if self.skipped:
            return f"pretrain: up to date ({self.status}), kept {self.path}"
        shown = ", ".join(f"{side} {value:.1f}" for side, value in self.perplexity.items())
        return (f"pretrain: {self.status} after {self.epochs} epoch(s) in {self.seconds:.0f} s on {self.texts:,} "
                f"texts; held-out perplexity ({self.held_out:,} texts): {shown} -> {self.path}")  # fmt: skip

    def state(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "skipped"}


def run(config: Config, run_dir, overwrite: bool = False, on_progress: Callable[[str], None] | None = None
        ) -> PretrainResult:  # fmt: skip
    """Pretrain into `run_dir`/pretrain, resuming an interrupted run. `on_progress` takes progress lines and advice
    while it trains (callbacks.TimedProgress)."""
    preflight.check(config, "pretrain")
    if not (config.data.unlabelled or config.data.unlabelled_split):
        raise ConfigError("pretrain: no unlabelled texts; set data.unlabelled (local files) or "
                          "data.unlabelled_split (TFDS)")  # fmt: skip
    if not config.pretrains:
        raise ConfigError("pretrain: pretrain.epochs is 0, so there is nothing to pretrain (the unlabelled texts "
                          "serve the vocabulary and train's virtual adversarial term only)")  # fmt: skip
    with rundir.opened(run_dir, config) as rd:
        vocab = Vocabulary.load(rd.require(rd.vocabulary, "tokenize"))
        state_path = rd.pretrain / "state.json"
        state = artifacts.read_json(state_path) if state_path.exists() else {}
        inputs = freshness.inputs(rd, "pretrain", config)
        if state.get("status") in FINISHED:
            decision = freshness.decide(rd, "pretrain", config, rd.pretrained_encoder.exists(), overwrite)
            if not decision.run:
                fields = {f.name for f in dataclasses.fields(PretrainResult)}
                return PretrainResult(**{k: v for k, v in state.items() if k in fields}, skipped=True)
            if decision.reason:
                logger.warning(decision.reason)
            _clear(rd)
            state = {}
        elif state and not freshness.check_resumable(rd, "pretrain", config, state.get("inputs"), overwrite):
            _clear(rd)
            state = {}
        result = _pretrain(config, rd, vocab, inputs, float(state.get("seconds", 0.0)), on_progress)
        freshness.record(rd, "pretrain", config)
        return result


def _pretrain(config: Config, rd: RunDir, vocab: Vocabulary, inputs: dict, spent_before: float,
              on_progress: Callable[[str], None] | None) -> PretrainResult:  # fmt: skip
    p = config.pretrain
    task = tasks.get(config.task)
    texts = task.unlabelled(config, task.load_splits(config))
    order = np.random.default_rng(config.seed).permutation(len(texts))
    held = max(1, round(len(texts) * p.validation_fraction))
    if len(texts) - held < 1:
        raise RunDirError(f"pretrain: {len(texts)} unlabelled texts; too few to hold out {held} and train on the rest")
    held_out = [texts[i] for i in order[:held]]
    training = [texts[i] for i in order[held:]]
    lm_words = vocab.trained_words
    bidirectional = config.model.bidirectional

    def dataset(part, training):
        import tensorflow as tf

        texts = tf.data.Dataset.from_tensor_slices(tf.constant(part, tf.string))
        return word_lm_dataset(texts, vocab, p.batch_size, lm_words, bidirectional=bidirectional,
                               shuffle_buffer=10000 if training else 0, seed=config.seed,
                               max_positions=0 if training else HELD_OUT_LOGITS // lm_words)  # fmt: skip

    keras.utils.set_random_seed(config.seed)
    model = build_lm(config, rd, vocab)
    model.compile(optimizer=fused_adam.adam(p.learning_rate, config.train.clipnorm or None, bool(vocab.ngrams),
                                            weight_decay=p.weight_decay))  # fmt: skip
    rd.pretrain.mkdir(parents=True, exist_ok=True)
    stopper = Stopper(p.max_seconds - spent_before if p.max_seconds else 0.0)
    best = _BestWeights(rd, inputs, spent_before)
    callbacks = [
        AtomicBackup(str(rd.pretrain / "backup"), save_freq=config.train.backup_every_steps or "epoch"),
        stopper,
        best,
        EarlyStopping("val_loss", patience=p.patience or 10**9, mode="min", min_steps=0),
        keras.callbacks.CSVLogger(str(rd.pretrain / "history.csv"), append=True),
        # After the logger, so that each epoch's figure has the epoch's row: a stage of hours is watched as it goes.
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: _curves(rd, bidirectional)),
    ]
    if on_progress:
        callbacks.append(_progress(on_progress, p, spent_before, len(training)))
    held = dataset(held_out, False)  # encoded once (cached) for every epoch's held-out loss and the perplexity
    start = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            history = model.fit(dataset(training, True), validation_data=held, epochs=p.epochs,
                                callbacks=callbacks, shuffle=False,
                                verbose=keras_verbosity())  # fmt: skip
    except KeyboardInterrupt:
        callbacks[0].save_now()
        best.write("interrupted")
        raise
    seconds = spent_before + time.monotonic() - start
    epochs = _keras_private.initial_epoch(model) + len(history.epoch)
    status = stopper.reason or ("completed" if epochs >= p.epochs else "early_stopped")
    if not rd.pretrained_encoder.exists():
        raise RunDirError(f"pretrain: no epoch finished with a finite held-out loss (status {status}); lower "
                          f"pretrain.learning_rate (now {p.learning_rate})")  # fmt: skip
    model.load_weights(rd.pretrained_encoder)
    perplexity = _perplexity(model, held, bidirectional)
    result = PretrainResult(status, epochs, perplexity, len(training), len(held_out), round(seconds, 1),
                            rd.relative(rd.pretrained_encoder))  # fmt: skip
    artifacts.write_json(rd.pretrain / "state.json", {**result.state(), "inputs": inputs})
    shutil.rmtree(rd.pretrain / "backup", ignore_errors=True)
    return result


def build_lm(config: Config, rd: RunDir, vocab: Vocabulary, jit_compile: bool = True) -> WordLanguageModels:
    """The language models of this run directory's vocabulary (and pretrained vectors)."""
    vectors = None
    if vocab.vector_dim:
        vectors = Vectors(
            vocab.size, vocab.trained_words, vocab.vector_dim, np.load(rd.require(rd.vectors, "tokenize"))
        )
    return build_word_language_models(config.model, vocab.embedding_rows, vocab.trained_words, seed=config.seed,
                                      jit_compile=jit_compile, word_width=vocab.word_width, vectors=vectors,
                                      samples=config.pretrain.softmax_samples,
                                      activation_penalty=config.pretrain.activation_penalty)  # fmt: skip


def _progress(report, p, spent_before: float, texts: int) -> TimedProgress:
    """Progress lines, and where no budget bounds the stage, how to shorten one that looks long: with the full
    softmax over a large vocabulary, the defaults' epochs over tens of thousands of texts take hours."""
    hint = "" if p.max_seconds else "to shorten it, set pretrain.max_seconds (a time budget)" + (
        "" if p.softmax_samples else " or pretrain.softmax_samples=1024 (steps several times faster over a large "
        "vocabulary)")  # fmt: skip
    # Batches of a bucket are full but its last, so this is an epoch's steps less at most one per bucket.
    return TimedProgress(report, "pretrain", max_seconds=p.max_seconds, spent_before=spent_before,
                         expected_steps=math.ceil(texts / p.batch_size), hint=hint)  # fmt: skip


def _curves(rd: RunDir, bidirectional: bool) -> None:
    plots.pretraining_curves(artifacts.read_history(rd.pretrain / "history.csv"), rd.pretrain / "training_curves.png",
                             2 if bidirectional else 1)  # fmt: skip


def _perplexity(model: WordLanguageModels, ds, bidirectional: bool) -> dict:
    """exp(mean cross-entropy per word) of each direction, over every held-out word (not a mean of batch means)."""
    import tensorflow as tf

    sides = ("forward", "backward") if bidirectional else ("forward",)

    # Eager, a batch's logits and their loss would be held several times over.
    @tf.function(reduce_retracing=True, autograph=False)
    def sums(ids, targets, weight):
        losses = [keras.losses.sparse_categorical_crossentropy(target, logits, from_logits=True)
                  for logits, target in zip(model.logits(ids), targets)]  # fmt: skip
        return tf.stack([tf.reduce_sum(loss * weight) for loss in losses]), tf.reduce_sum(weight)

    total, words = np.zeros(len(sides)), 0.0
    for ids, targets, weights in ds:
        loss, count = sums(ids, targets if bidirectional else [targets], weights[0] if bidirectional else weights)
        total += loss.numpy()
        words += float(count)
    return {side: math.exp(total[k] / max(words, 1.0)) for k, side in enumerate(sides)}


class _BestWeights(keras.callbacks.Callback):
    """Saves the weights (atomically) whenever the held-out loss improves, and keeps state.json current (status
    "running", epochs, the seconds spent, which a resumed run counts against its budget)."""

    def __init__(self, rd: RunDir, inputs: dict, spent_before: float):
        super().__init__()
        self.rd, self.inputs, self.spent_before = rd, inputs, spent_before
        self.start = time.monotonic()
        self.best = math.inf
        if rd.pretrained_encoder.exists():  # a resumed run keeps the better weights
            values = [float(row["val_loss"]) for row in artifacts.read_history(rd.pretrain / "history.csv")
                      if row.get("val_loss")]  # fmt: skip
            self.best = min((v for v in values if math.isfinite(v)), default=math.inf)
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1
        value = (logs or {}).get("val_loss")
        if value is not None and math.isfinite(value) and value < self.best:
            self.best = float(value)
            with artifacts.staged_path(self.rd.pretrained_encoder) as tmp:
                self.model.save_weights(tmp)
            logger.info("pretrain epoch %d: held-out loss %.4f, saved %s", epoch + 1, value, self.rd.pretrained_encoder)
        self.write("running")

    def write(self, status: str) -> None:
        seconds = round(self.spent_before + time.monotonic() - self.start, 1)
        artifacts.write_json(self.rd.pretrain / "state.json", {"status": status, "epochs": self.epochs,
                                                               "seconds": seconds, "inputs": self.inputs})  # fmt: skip


def _clear(rd: RunDir) -> None:
    shutil.rmtree(rd.pretrain, ignore_errors=True)
