"""Stage 2: train the model on the tokenized data, with early stopping, a time budget and resumable backups.

Outputs in the run directory: checkpoints/best.keras (lowest validation loss, written atomically),
checkpoints/backup/ (Keras BackupAndRestore, every `train.backup_every_steps` steps and each epoch; removed when
training ends normally), history.csv, logs/ (TensorBoard), training_curves.png and train_state.json.

How a run ends (train_state.json "status"): "completed" (all epochs), "early_stopped" (validation loss stopped
improving for `patience` epochs), "time_budget" (`max_seconds` reached: the current epoch stops, is validated and
checkpointed), "diverged" (NaN/inf loss: training stops, best.keras keeps the last good weights) or
"interrupted" (Ctrl-C: the backup is saved first; the same command resumes). After SIGKILL the same command
resumes from the backup too, at the start of the epoch it was in, and still trains `epochs` epochs in total.

An ensemble (`model.ensemble` = K > 1) trains K models exactly as above, one after the other, in members/<k>/ with
training seeds seed, seed + 1, ... (the data split stays the config's), each with max_seconds / K of the budget;
then best.keras becomes one model joining their best checkpoints (pipeline.model.EnsembleAverage), and
train_state.json records each member and the joined model's validation score.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import sys
import time
import warnings

import keras
import numpy as np

import custom_layers  # noqa: F401  (registers our layers for loading checkpoints)
from pipeline import artifacts, distribute, inputs, plots
from pipeline.adversarial import AdversarialModel
from pipeline.config import Config
from pipeline.data import load_splits
from pipeline.errors import RunDirError
from pipeline.model import build_model
from pipeline.rundir import RunDir, as_run_dir
from pipeline.text import Vocabulary

logger = logging.getLogger(__name__)

FINISHED = ("completed", "early_stopped", "time_budget")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    status: str
    epochs: int
    monitor: str  # what chose the best checkpoint: "val_loss" (lower is better) or "val_accuracy" (higher)
    best: float  # its value at the best epoch (an ensemble: the joined model's value on the validation split)
    seconds: float
    best_model: str
    skipped: bool = False
    members: tuple = ()  # an ensemble: one {"status", "epochs", "best", "seconds"} per member

    def summary(self) -> str:
        if self.skipped:
            return f"train: already done ({self.status}); kept {self.best_model} (use --overwrite to retrain)"
        if self.members:
            values = ", ".join(f"{m['best']:.4f}" for m in self.members)
            return (f"train: ensemble of {len(self.members)} ({self.status}, {self.epochs} epochs in all) in "
                    f"{self.seconds:.0f} s; {self.monitor} of the members {values}, of the ensemble "
                    f"{self.best:.4f} -> {self.best_model}")  # fmt: skip
        return (f"train: {self.status} after {self.epochs} epoch(s) in {self.seconds:.0f} s; best {self.monitor} "
                f"{self.best:.4f} -> {self.best_model}")  # fmt: skip


def run(config: Config, run_dir, overwrite: bool = False) -> TrainResult:
    """Train the model of `config` into `run_dir`; an ensemble trains its members one after the other in
    <run_dir>/members/<k>/ (each with its own checkpoints, history and state, so an interrupted ensemble resumes
    at the member it was in) and then joins them into checkpoints/best.keras."""
    strategy = distribute.make_strategy(config.train.strategy)  # multi-worker needs it before other TF work
    rd = as_run_dir(run_dir, config)
    vocab = Vocabulary.load(rd.require(rd.vocabulary, "tokenize"))
    labels = tuple(artifacts.read_json(rd.require(rd.labels, "tokenize"))) if config.task == "sentiment" else ()
    previous = artifacts.read_json(rd.train_state) if rd.train_state.exists() else {}
    if previous.get("status") in FINISHED and rd.best_model.exists() and not overwrite:
        return TrainResult(**{**previous, "skipped": True})
    if overwrite:
        _clear_training_outputs(rd)
    splits = load_splits(config)
    val_ds = _validation_dataset(config, splits, vocab, labels)
    if config.model.ensemble == 1:
        return _train_one(config, rd, strategy, vocab, labels, splits, val_ds, config.seed, config.train.max_seconds)

    start = time.monotonic()
    members = []
    for k in range(config.model.ensemble):
        member_rd = RunDir(rd.members / str(k))
        if overwrite:
            _clear_training_outputs(member_rd)
        state = artifacts.read_json(member_rd.train_state) if member_rd.train_state.exists() else {}
        if state.get("status") in FINISHED and member_rd.best_model.exists():
            result = TrainResult(**state)
            logger.info("ensemble member %d: already trained (%s), kept", k, result.status)
        else:
            logger.info("ensemble member %d of %d: training seed %d", k + 1, config.model.ensemble, config.seed + k)
            # The time budget is shared equally, so the whole stage stays within train.max_seconds.
            result = _train_one(config, member_rd, strategy, vocab, labels, splits, val_ds, config.seed + k,
                                config.train.max_seconds / config.model.ensemble)  # fmt: skip
        members.append(result)
    return _join_ensemble(config, rd, strategy, vocab, labels, val_ds, members, time.monotonic() - start)


def _train_one(config: Config, rd: RunDir, strategy, vocab, labels, splits, val_ds, seed: int, max_seconds: float):
    """One model, trained with `seed` (initial weights, dropout, shuffling; the data split is the config's)."""
    keras.utils.set_random_seed(seed)
    train_ds = _training_dataset(config, splits, vocab, labels, seed)
    with strategy.scope():
        single = dataclasses.replace(config.model, ensemble=1)
        model = build_model(single, config.task, vocab.size, len(labels), seed=seed)
        if config.train.adversarial_epsilon or config.train.virtual_adversarial_epsilon:
            model = AdversarialModel(model.inputs, model.outputs, name=model.name,
                                     epsilon=config.train.adversarial_epsilon,
                                     virtual_epsilon=config.train.virtual_adversarial_epsilon)  # fmt: skip
        _compile(model, config)
    is_chief = distribute.is_chief(strategy)

    def place(path):
        return path if is_chief else distribute.worker_scratch(path)

    monitor = config.train.monitor
    stopper = _Stopper(max_seconds)
    best = _BestCheckpoint(rd, monitor, path=place(rd.best_model), record_state=is_chief)
    backup = _AtomicBackup(str(place(rd.backup)), save_freq=config.train.backup_every_steps or "epoch")
    mode = "max" if monitor == "val_accuracy" else "min"
    early_stopping = keras.callbacks.EarlyStopping(monitor, patience=config.train.patience, mode=mode)
    place(rd.history).parent.mkdir(parents=True, exist_ok=True)
    callbacks = [backup, stopper, best, early_stopping, keras.callbacks.CSVLogger(str(place(rd.history)), append=True),
                 keras.callbacks.TensorBoard(str(place(rd.logs)))]  # fmt: skip

    distribute.adapt_keras_fit(model, train_ds, strategy)
    start = time.monotonic()
    try:
        with strategy.scope():
            history = _fit(model, train_ds, val_ds, config, callbacks)
    except KeyboardInterrupt:
        backup._save_model()  # the public API saves only on its schedule; keep the latest weights
        _write_state(rd, "interrupted", best, time.monotonic() - start, epochs=len(_history_rows(rd)))
        raise
    seconds = time.monotonic() - start
    epochs = _initial_epoch(model) + len(history.epoch)  # this run's epochs plus those restored from a backup
    status = stopper.reason or ("completed" if epochs >= config.train.epochs else "early_stopped")
    if status == "diverged":
        logger.warning("training diverged (loss %s); %s keeps the last good weights", stopper.bad_loss, rd.best_model)
    if not rd.best_model.exists():
        raise RunDirError(f"training produced no checkpoint (status {status}); see {rd.history}")
    if is_chief:
        plots.training_curves(_history_rows(rd), rd.curves)
    return _write_state(rd, status, best, seconds, epochs=epochs)


def _join_ensemble(config: Config, rd: RunDir, strategy, vocab, labels, val_ds, members, seconds) -> TrainResult:
    """The members' best checkpoints as one model (pipeline.model.EnsembleAverage), saved to best.keras and scored
    on the validation split with the metric that chose each member's checkpoint."""
    with strategy.scope():
        model = build_model(config.model, config.task, vocab.size, len(labels), seed=config.seed)
        for k, member in enumerate(members):
            trained = keras.saving.load_model(member.best_model)
            model.get_layer(f"member_{k}").set_weights(trained.get_weights())
    # Not compiled: it is never trained, and a saved optimizer without state only draws warnings on loading.
    curve = _ensemble_curve([model.get_layer(f"member_{k}") for k in range(len(members))], val_ds)
    value = curve[-1]["val_accuracy" if config.train.monitor == "val_accuracy" else "val_loss"]
    if distribute.is_chief(strategy):
        with artifacts.staged_path(rd.best_model) as tmp:
            model.save(tmp)
    # The ensemble's status is the most consequential of its members' (a diverged member is worth knowing about).
    statuses = [m.status for m in members]
    status = next(s for s in ("diverged", "time_budget", "early_stopped", "completed") if s in statuses)
    result = TrainResult(
        status,
        sum(m.epochs for m in members),
        config.train.monitor,
        value,
        round(seconds, 1),
        str(rd.best_model),
        members=tuple({"status": m.status, "epochs": m.epochs, "best": m.best, "seconds": m.seconds}
                      for m in members),  # fmt: skip
    )
    state = {k: v for k, v in result.__dict__.items() if k != "skipped"}
    artifacts.write_json(rd.train_state, {**state, "ensemble_curve": curve})
    return result


def _ensemble_curve(members, val_ds) -> list[dict]:
    """Validation loss and accuracy of the ensembles of the first k members, k = 1..K (the last is the whole
    ensemble): what tells whether more members would still help."""
    probabilities, truth = [[] for _ in members], []
    for ids, y in val_ds:
        for k, member in enumerate(members):
            probabilities[k].append(keras.ops.convert_to_numpy(keras.ops.softmax(member(ids, training=False))))
        truth.append(keras.ops.convert_to_numpy(y))
    if not truth:
        raise RunDirError("the validation split is empty; an ensemble needs it to be scored")
    truth = np.concatenate(truth)
    total = np.zeros_like(np.concatenate(probabilities[0]), dtype=np.float64)
    curve = []
    for k, member_probabilities in enumerate(probabilities, start=1):
        total += np.concatenate(member_probabilities)
        mean = total / k
        picked = np.maximum(mean[np.arange(truth.size), truth], np.finfo(np.float32).tiny)
        curve.append({"members": k, "val_loss": float(-np.log(picked).mean()),
                      "val_accuracy": float((mean.argmax(axis=1) == truth).mean())})  # fmt: skip
    return curve


def _compile(model: keras.Model, config: Config) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(config.train.learning_rate, clipnorm=config.train.clipnorm or None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _fit(model, train_ds, val_ds, config: Config, callbacks):
    steps = config.train.steps_per_epoch or None
    with warnings.catch_warnings():
        # A tf.data pipeline of unknown length ends each epoch by running out of data: expected, not a problem.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        return model.fit(
            train_ds.repeat() if steps else train_ds,
            validation_data=val_ds,
            epochs=config.train.epochs,
            steps_per_epoch=steps,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles, with the run's seed
            verbose=_progress_verbosity(),
        )


def _progress_verbosity() -> int:
    """Keras' progress bar on a terminal, one line per epoch otherwise. Redrawn in a log file, the bar is every
    step's line joined by carriage returns and colour codes: about 1 MB of log for the Shakespeare job."""
    return 1 if sys.stdout.isatty() else 2


def _training_dataset(config: Config, splits, vocab: Vocabulary, labels: tuple[str, ...], seed: int):
    t = config.train
    if config.task == "sentiment":
        return inputs.sentiment_dataset(splits.train, vocab, labels, t.batch_size, shuffle_buffer=t.shuffle_buffer,
                                        seed=seed, bucketing=t.bucketing, word_dropout=t.word_dropout)  # fmt: skip
    return inputs.next_char_dataset(splits.train, vocab, t.batch_size, t.sequence_length,
                                    shuffle_buffer=t.shuffle_buffer, seed=seed, drop_remainder=True)  # fmt: skip


def _validation_dataset(config: Config, splits, vocab: Vocabulary, labels: tuple[str, ...]):
    """Independent of the training seed, so an ensemble's members share one (tokenized once, then cached)."""
    t = config.train
    if config.task == "sentiment":
        return inputs.sentiment_dataset(splits.validation, vocab, labels, t.batch_size, bucketing=t.bucketing)
    return inputs.next_char_dataset(splits.validation, vocab, t.batch_size, t.sequence_length)


def _initial_epoch(model) -> int:
    return getattr(model, "_initial_epoch", None) or 0


class _AtomicBackup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, with its two files written to temporary names and renamed.

    Keras writes the weights file in place, so a SIGKILL during a save leaves an unreadable backup and the resumed
    run fails; here a kill leaves either the previous backup or the new one.
    """

    def _save_model(self):
        with artifacts.staged_path(self._weights_path) as tmp:
            self.model.save_weights(tmp)
        artifacts.write_json(self._training_metadata_path,
                             {"epoch": self._current_epoch, "batch": self._last_batch_seen})  # fmt: skip


class _Stopper(keras.callbacks.Callback):
    """Stops on a NaN/inf loss (before the bad weights reach a checkpoint) or when the time budget is spent."""

    def __init__(self, max_seconds: float):
        super().__init__()
        self.max_seconds = max_seconds
        self.reason = ""
        self.bad_loss = None

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.reason, self.bad_loss = "diverged", float(loss)
            self.model.stop_training = True
        elif self.max_seconds and time.monotonic() - self.start > self.max_seconds and not self.reason:
            self.reason = "time_budget"
            self.model.stop_training = True


class _BestCheckpoint(keras.callbacks.Callback):
    """Saves the model to best.keras (atomically) whenever the monitored validation metric improves and is finite."""

    def __init__(self, rd: RunDir, monitor: str, path, record_state: bool = True):
        super().__init__()
        self.rd = rd
        self.monitor = monitor
        self.sign = -1.0 if monitor == "val_accuracy" else 1.0  # compare sign * value, lower is better
        self.path = path
        self.record_state = record_state
        self.best = math.inf * self.sign
        if rd.train_state.exists():  # resuming: do not replace a better checkpoint of the previous attempt
            state = artifacts.read_json(rd.train_state)
            if state.get("monitor") == monitor:
                self.best = state.get("best", self.best)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value) or self.sign * value >= self.sign * self.best:
            return
        self.best = float(value)
        with artifacts.staged_path(self.path) as tmp:
            self.model.save(tmp)
        logger.info("epoch %d: %s %.4f, saved %s", epoch + 1, self.monitor, value, self.path)
        if self.record_state:
            artifacts.write_json(self.rd.train_state, {"status": "running", "epochs": epoch + 1,
                                                       "monitor": self.monitor, "best": self.best, "seconds": 0.0,
                                                       "best_model": str(self.rd.best_model)})  # fmt: skip


def _write_state(rd: RunDir, status: str, best: _BestCheckpoint, seconds: float, epochs: int) -> TrainResult:
    result = TrainResult(status, epochs, best.monitor, best.best, round(seconds, 1), str(rd.best_model))
    state = {k: v for k, v in result.__dict__.items() if k != "skipped"}
    artifacts.write_json(rd.train_state, state)
    return result


def _history_rows(rd: RunDir) -> list[dict]:
    """One row per epoch; an epoch repeated after a resume (the backup predates its end) keeps its last row."""
    if not rd.history.exists():
        return []
    with open(rd.history, newline="", encoding="utf-8") as f:
        rows = {int(row["epoch"]): row for row in csv.DictReader(f)}
    return [rows[epoch] for epoch in sorted(rows)]


def _clear_training_outputs(rd: RunDir) -> None:
    import shutil

    for path in (rd.history, rd.train_state, rd.curves):
        path.unlink(missing_ok=True)
    shutil.rmtree(rd.backup, ignore_errors=True)
    shutil.rmtree(rd.logs, ignore_errors=True)
    # best.keras stays until the new run's first validated epoch replaces it (atomically).


def load_trained_model(rd: RunDir) -> keras.Model:
    return keras.saving.load_model(rd.require(rd.best_model, "train"))

