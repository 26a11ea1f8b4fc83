"""Stage 2: train the model on the tokenized data, with early stopping, a time budget and resumable backups.

Outputs in the run directory: checkpoints/best.keras (best on `train.monitor`, written atomically),
checkpoints/backup/ (Keras BackupAndRestore, every `train.backup_every_steps` steps and each epoch; removed when
training ends normally), history.csv, logs/ (TensorBoard), training_curves.png and train_state.json.

How a run ends (train_state.json "status"): "completed" (all epochs), "early_stopped" (the monitored metric stopped
improving for `patience` epochs), "time_budget" (`max_seconds` reached: the current epoch stops, is validated and
checkpointed), "diverged" (NaN/inf loss: training stops, best.keras keeps the last good weights) or "interrupted"
(Ctrl-C: the backup is saved first). An unfinished run (interrupted, or killed) resumes when the same command is
run again with the same config, from the backup, at the start of the epoch it was in; it still trains `epochs`
epochs in all and the time budget counts the time already spent.

An ensemble (`model.ensemble` = K > 1) trains K models exactly as above, one after the other, in members/<k>/ with
training seeds seed, seed + 1, ... (the data split stays the config's), each with max_seconds / K of the budget;
then best.keras becomes one model joining their best checkpoints (pipeline.training.model.EnsembleAverage), and
train_state.json records each member and the joined model's validation score.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable, Sequence

import keras
import numpy as np

from pipeline import tasks
from pipeline.config import Config
from pipeline.data.text import Vocabulary
from pipeline.errors import RunDirError, describe, shorten
from pipeline.run import artifacts, cluster, freshness, preflight, rundir
from pipeline.run.rundir import RunDir
from pipeline.training import _keras_private, distribute, fused_adam, plots
from pipeline.training.adversarial import AdversarialModel
from pipeline.training.callbacks import (
    FINISHED,
    AtomicBackup,
    EarlyStopping,
    FineTuning,
    LearningRateDecay,
    Stopper,
    TimedProgress,
    keras_verbosity,
)
from pipeline.training.model import (
    ENCODER_LAYERS,
    Vectors,
    build_word_language_models,
    checkpoint_weights,
    copy_encoder,
    layer_groups,
    load_checkpoint,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    status: str
    epochs: int
    monitor: str  # what chose the best checkpoint: "val_loss" (lower is better) or "val_accuracy" (higher)
    best: float  # its value at the best epoch (an ensemble: the joined model's value on the validation split)
    seconds: float
    best_model: str  # relative to the run directory
    skipped: bool = False
    members: tuple = ()  # an ensemble: one {"status", "epochs", "best", "seconds"} per member

    def summary(self) -> str:
        if self.skipped:
            return f"train: up to date ({self.status}), kept {self.best_model}"
        if self.members:
            values = ", ".join(f"{m['best']:.4f}" for m in self.members)
            return (f"train: ensemble of {len(self.members)} ({self.status}, {self.epochs} epochs in all) in "
                    f"{self.seconds:.0f} s; {self.monitor} of the members {values}, of the ensemble "
                    f"{self.best:.4f} -> {self.best_model}")  # fmt: skip
        return (f"train: {self.status} after {self.epochs} epoch(s) in {self.seconds:.0f} s; best {self.monitor} "
                f"{self.best:.4f} -> {self.best_model}")  # fmt: skip

    def state(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "skipped"}


def run(config: Config, run_dir, overwrite: bool = False, callbacks: Sequence[keras.callbacks.Callback] = (),
        on_progress: Callable[[str], None] | None = None) -> TrainResult:  # fmt: skip
    """Train the model of `config` into `run_dir`; an ensemble trains its members one after the other in
    <run_dir>/members/<k>/ (each with its own checkpoints, history and state, so an interrupted ensemble resumes
    at the member it was in) and then joins them into checkpoints/best.keras. `callbacks` join the stage's own in
    every model's fit (a search's pruning, pipeline.stages.tune); they run after them, so a callback that stops
    training sees the epoch validated and checkpointed. `on_progress` takes progress lines while a model trains
    (callbacks.TimedProgress)."""
    preflight.check(config, "train")
    strategy = distribute.make_strategy(config.train.strategy)  # multi-worker needs it before other TF work
    with rundir.opened(run_dir, config) as rd:
        vocab = Vocabulary.load(rd.require(rd.vocabulary, "tokenize"))
        labels = rd.read_labels()
        state = artifacts.read_json(rd.train_state) if rd.train_state.exists() else {}
        inputs = freshness.inputs(rd, "train", config)
        if not state and rd.best_model.exists() and not overwrite:
            raise RunDirError(f"train: {rd.best_model} exists without the train_state.json that says how it was "
                              f"trained; use --overwrite to retrain, or choose another --run-dir")  # fmt: skip
        if state.get("status") in FINISHED:
            decision = freshness.decide(rd, "train", config, rd.best_model.exists(), overwrite)
            if not decision.run:
                return TrainResult(**{**_result_fields(state), "skipped": True})
            if decision.reason:
                logger.warning(decision.reason)
            _clear_training_outputs(rd)
        elif state and not freshness.check_resumable(rd, "train", config, state.get("inputs"), overwrite):
            logger.warning("train: starting over (--overwrite): the unfinished run had other inputs")
            _clear_training_outputs(rd)
        else:
            freshness.require_inputs(rd, "train", config)  # a first run: what it reads is made for this config

        task = tasks.get(config.task)
        splits = task.load_splits(config)
        val_ds = task.validation_dataset(config, splits, vocab, labels)
        vectors = np.load(rd.require(rd.vectors, "tokenize")) if vocab.vector_dim else None
        class_weight = task.class_weight(config, splits, labels)
        pretrained = None
        if config.pretrains:
            pretrained = rd.require(rd.pretrained_encoder, "pretrain")
        context = _Context(config, task, strategy, vocab, labels, splits, val_ds, inputs, vectors, class_weight,
                           tuple(callbacks), pretrained, on_progress)  # fmt: skip
        if config.model.ensemble == 1:
            result = _train_one(context, rd, config.seed, config.train.max_seconds)
        else:
            result = _train_ensemble(context, rd)
        if distribute.is_chief(strategy):
            _calibrate(context, rd)
            freshness.record(rd, "train", config)
        return result


def _calibrate(context: _Context, rd: RunDir) -> None:
    """calibration.json: the task's calibration of the best checkpoint on the validation split (none: removed)."""
    fitted = context.task.calibrate(load_checkpoint(rd.best_model), context.config, context.val_ds)
    if fitted is None:
        rd.calibration.unlink(missing_ok=True)
        return
    artifacts.write_json(rd.calibration, fitted)
    logger.info("calibration: temperature %.3f (validation ECE %.4f -> %.4f)", fitted["temperature"],
                fitted["validation"]["ece_before"], fitted["validation"]["ece_after"])  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Context:
    """What every model trained by one `run` shares."""

    config: Config
    task: tasks.Task
    strategy: object
    vocab: Vocabulary
    labels: tuple[str, ...]
    splits: object
    val_ds: object
    inputs: dict
    vectors: object = None  # the pretrained table tokenize made (numpy), if any
    class_weight: dict | None = None  # {class id: weight} for the training loss, if any
    callbacks: tuple = ()  # the caller's, after the stage's own
    pretrained: object = None  # pretrain's encoder weights (a path), which the model starts from
    on_progress: Callable[[str], None] | None = None  # takes progress lines


def _train_ensemble(context: _Context, rd: RunDir) -> TrainResult:
    config = context.config
    start = time.monotonic()
    members = []
    for k in range(config.model.ensemble):
        member_rd = rd.member(k)
        state = artifacts.read_json(member_rd.train_state) if member_rd.train_state.exists() else {}
        recorded = state.get("inputs")
        same = recorded is not None and not freshness.differences(recorded, {**context.inputs, "member": k}, rd)
        if state.get("status") in FINISHED and member_rd.best_model.exists() and same:
            result = TrainResult(**_result_fields(state))
            logger.info("ensemble member %d: already trained (%s), kept", k, result.status)
        else:
            if not same:
                _clear_training_outputs(member_rd)
            logger.info("ensemble member %d of %d: training seed %d", k + 1, config.model.ensemble, config.seed + k)
            # The time budget is shared equally, so the whole stage stays within train.max_seconds.
            result = _train_one(context, member_rd, config.seed + k, config.train.max_seconds / config.model.ensemble,
                                member=k)  # fmt: skip
        members.append(result)
    return _join_ensemble(context, rd, members, time.monotonic() - start)


def _train_one(context: _Context, rd: RunDir, seed: int, max_seconds: float, member: int | None = None):
    """One model, trained with `seed` (initial weights, dropout, shuffling; the data split is the config's)."""
    config, strategy = context.config, context.strategy
    inputs = context.inputs if member is None else {**context.inputs, "member": member}
    keras.utils.set_random_seed(seed)
    train_ds = context.task.training_dataset(config, context.splits, context.vocab, context.labels, seed)
    with strategy.scope():
        single = dataclasses.replace(config.model, ensemble=1)
        model = context.task.build_model(single, context.vocab, context.labels, seed=seed, vectors=context.vectors)
        if context.pretrained is not None:
            _start_from_pretrained(model, context)
        if config.train.adversarial_epsilon or config.train.virtual_adversarial_epsilon:
            model = AdversarialModel(model.inputs, model.outputs, name=model.name,
                                     epsilon=config.train.adversarial_epsilon,
                                     virtual_epsilon=config.train.virtual_adversarial_epsilon)  # fmt: skip
        fine_tuning = _fine_tuning(model, context)
        _compile(model, config, context.vocab, rate_scales=fine_tuning.rate_scales if fine_tuning else None)
    is_chief = distribute.is_chief(strategy)

    def place(path):
        return path if is_chief else cluster.worker_scratch(path)

    previous = artifacts.read_json(rd.train_state) if rd.train_state.exists() else {}
    spent_before = float(previous.get("seconds", 0.0))  # an interrupted attempt's time counts against the budget
    monitor = config.train.monitor
    progress = _Progress(rd, monitor, inputs, spent_before, record=is_chief)
    stopper = Stopper(max_seconds - spent_before if max_seconds else 0.0)
    best = _BestCheckpoint(monitor, path=place(rd.best_model), progress=progress, previous=previous)
    backup = AtomicBackup(str(place(rd.backup)), save_freq=config.train.backup_every_steps or "epoch")
    mode = "max" if monitor == "val_accuracy" else "min"
    early_stopping = EarlyStopping(monitor, patience=config.train.patience or 10**9, mode=mode,
                                    min_steps=config.train.min_steps)  # fmt: skip
    place(rd.history).parent.mkdir(parents=True, exist_ok=True)
    schedule = [] if config.train.lr_schedule == "constant" else [
        LearningRateDecay(config.train.lr_schedule, config.train.learning_rate, config.train.epochs, max_seconds,
                          spent_before)]  # fmt: skip
    schedule += [fine_tuning] if fine_tuning else []
    callbacks = [backup, stopper, *schedule, best, progress, early_stopping,
                 keras.callbacks.CSVLogger(str(place(rd.history)), append=True),
                 keras.callbacks.TensorBoard(str(place(rd.logs))), *context.callbacks]  # fmt: skip
    if context.on_progress and is_chief:
        stage = "train" if member is None else f"train, member {member + 1}/{config.model.ensemble}"
        callbacks.append(TimedProgress(context.on_progress, stage, max_seconds=max_seconds, spent_before=spent_before,
                                       expected_steps=context.task.expected_steps(config, context.splits)))  # fmt: skip

    distribute.adapt_keras_fit(model, train_ds, strategy)
    start = time.monotonic()
    try:
        with strategy.scope():
            history = _fit(model, train_ds, context.val_ds, config, callbacks, context.class_weight)
    except KeyboardInterrupt:
        backup.save_now()  # the public API saves only on its schedule; keep the latest weights
        progress.write("interrupted", epochs=len(artifacts.read_history(rd.history)))
        raise
    seconds = spent_before + time.monotonic() - start
    epochs = _keras_private.initial_epoch(model) + len(history.epoch)  # this run's epochs plus restored ones
    status = stopper.reason or ("completed" if epochs >= config.train.epochs else "early_stopped")
    if not (best.saved or best.resumed):
        if status == "diverged":
            raise RunDirError(
                f"training diverged (loss {stopper.bad_loss}) before its first checkpoint; lower "
                f"train.learning_rate (now {config.train.learning_rate}) or set train.clipnorm"
            )
        raise RunDirError(f"training produced no checkpoint (status {status}); see {rd.history}")
    if status == "diverged":
        logger.warning("training diverged (loss %s); %s keeps the last good weights", stopper.bad_loss, rd.best_model)
    if is_chief:
        plots.training_curves(artifacts.read_history(rd.history), rd.curves)
    result = TrainResult(status, epochs, monitor, best.best, round(seconds, 1), rd.relative(rd.best_model))
    progress.finish(result)
    return result


def _start_from_pretrained(model: keras.Model, context: _Context) -> None:
    """The classifier's embedding and recurrent layers from pretrain's language models; with `train.fine_tune =
    "frozen"` they stay as pretrained. A model they do not fit (another vocabulary, cell or size) is refused."""
    config = context.config
    lm = build_word_language_models(config.model, context.vocab.embedding_rows, context.vocab.trained_words,
                                    word_width=context.vocab.word_width, vectors=_vectors_spec(context))  # fmt: skip
    try:
        lm.load_weights(context.pretrained)
        copy_encoder(lm, model)
    except ValueError as error:
        raise RunDirError(
            f"train: the pretrained encoder {context.pretrained} does not fit this model "
            f"({shorten(describe(error), 200)}); run `rnnpipe pretrain` for this config"
        ) from None
    if config.train.fine_tune == "frozen":
        for layer in model.layers:
            if layer.name.startswith(ENCODER_LAYERS):
                layer.trainable = False


def _vectors_spec(context: _Context):
    vocab = context.vocab
    return Vectors(vocab.size, vocab.trained_words, vocab.vector_dim, context.vectors) if vocab.vector_dim else None


def _join_ensemble(context: _Context, rd: RunDir, members, seconds) -> TrainResult:
    """The members' best checkpoints as one model (pipeline.training.model.EnsembleAverage), saved to best.keras and
    scored
    on the validation split with the metric that chose each member's checkpoint."""
    config = context.config
    with context.strategy.scope():
        model = context.task.build_model(
            config.model, context.vocab, context.labels, seed=config.seed, vectors=context.vectors
        )
        for k in range(len(members)):
            trained = load_checkpoint(rd.member(k).best_model)
            member = model.get_layer(f"member_{k}")
            member.set_weights(checkpoint_weights(trained, member))
    # Not compiled: it is never trained, and a saved optimizer without state only draws warnings on loading.
    curve = _ensemble_curve([model.get_layer(f"member_{k}") for k in range(len(members))], context.val_ds)
    value = curve[-1]["val_accuracy" if config.train.monitor == "val_accuracy" else "val_loss"]
    if distribute.is_chief(context.strategy):
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
        rd.relative(rd.best_model),
        members=tuple(
            {"status": m.status, "epochs": m.epochs, "best": m.best, "seconds": m.seconds} for m in members
        ),  # fmt: skip
    )
    artifacts.write_json(rd.train_state, {**result.state(), "inputs": context.inputs, "ensemble_curve": curve})
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


def _fine_tuning(model: keras.Model, context: _Context) -> FineTuning | None:
    """ULMFiT's schedule over the model's layer groups, when the config asks for it: discriminative rates
    (`train.discriminative_lr`) and, from a pretrained encoder, gradual unfreezing (`train.fine_tune`)."""
    t = context.config.train
    gradual = context.pretrained is not None and t.fine_tune == "gradual"
    if t.discriminative_lr == 1.0 and not gradual:
        return None
    return FineTuning(layer_groups(model), t.discriminative_lr, gradual)


def _compile(model: keras.Model, config: Config, vocab: Vocabulary, rate_scales=None) -> None:
    model.compile(
        optimizer=fused_adam.adam(
            config.train.learning_rate, config.train.clipnorm or None, bool(vocab.ngrams), rate_scales
        ),  # fmt: skip
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _fit(model, train_ds, val_ds, config: Config, callbacks, class_weight=None):
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
            class_weight=class_weight,
            verbose=keras_verbosity(),
        )


def _result_fields(state: dict) -> dict:
    names = {f.name for f in dataclasses.fields(TrainResult)}
    fields = {k: v for k, v in state.items() if k in names}
    return {**fields, "members": tuple(fields.get("members", ()))}


class _Progress(keras.callbacks.Callback):
    """Keeps train_state.json current: status "running" with the epochs done, the best value and the seconds spent
    so far (which a resumed run counts against its budget), and the inputs a resume must match."""

    def __init__(self, rd: RunDir, monitor: str, inputs: dict, spent_before: float, record: bool = True):
        super().__init__()
        self.rd, self.monitor, self.inputs, self.spent_before, self.record = rd, monitor, inputs, spent_before, record
        self.best = math.nan
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self.write("running", epochs=epoch + 1)

    def write(self, status: str, epochs: int) -> None:
        if not self.record:
            return
        seconds = round(self.spent_before + time.monotonic() - self.start, 1)
        artifacts.write_json(self.rd.train_state, {
            "status": status, "epochs": epochs, "monitor": self.monitor, "best": self.best, "seconds": seconds,
            "best_model": self.rd.relative(self.rd.best_model), "inputs": self.inputs})  # fmt: skip

    def finish(self, result: TrainResult) -> None:
        if self.record:
            artifacts.write_json(self.rd.train_state, {**result.state(), "inputs": self.inputs})


class _BestCheckpoint(keras.callbacks.Callback):
    """Saves the model to best.keras (atomically) whenever the monitored validation metric improves and is finite.
    A resumed run starts from the best value of the attempt before it, so it never replaces a better checkpoint."""

    def __init__(self, monitor: str, path, progress: _Progress, previous: dict):
        super().__init__()
        self.monitor = monitor
        self.sign = -1.0 if monitor == "val_accuracy" else 1.0  # compare sign * value, lower is better
        self.path = path
        self.progress = progress
        self.best = math.inf * self.sign
        # Resuming an attempt that had saved a checkpoint: only a better value replaces it.
        self.resumed = previous.get("monitor") == monitor and math.isfinite(previous.get("best", math.nan))
        if self.resumed:
            self.best = previous["best"]
        self.saved = False
        progress.best = self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value) or self.sign * value >= self.sign * self.best:
            return
        self.best = self.progress.best = float(value)
        with artifacts.staged_path(self.path) as tmp:
            self.model.save(tmp)
        self.saved = True
        logger.info("epoch %d: %s %.4f, saved %s", epoch + 1, self.monitor, value, self.path)


def _clear_training_outputs(rd: RunDir) -> None:
    for path in (rd.history, rd.train_state, rd.curves, rd.calibration):
        path.unlink(missing_ok=True)
    for folder in (rd.backup, rd.logs, rd.members):
        shutil.rmtree(folder, ignore_errors=True)
    # best.keras stays until the new run's first validated epoch replaces it (atomically); the new run must not
    # compare itself with the old one's best value, which train_state.json (removed above) held.
