"""Keras callbacks of the training stages (train, pretrain): an atomic resumable backup, a time budget and NaN stop,
early stopping that waits for a number of steps, a learning rate that decays over the run's length, and ULMFiT's
fine-tuning schedule."""

from __future__ import annotations

import math
import time

import keras

from pipeline.run import artifacts
from pipeline.training import _keras_private

# How a training run that stopped on its own ended (train_state.json, pretrain/state.json): all epochs, early
# stopping, the time budget (Stopper), or a NaN loss (Stopper); "running" and "interrupted" are not finished.
FINISHED = ("completed", "early_stopped", "time_budget", "diverged")


class AtomicBackup(_keras_private.BackupAndRestore):
    """Keras' BackupAndRestore, with its two files written to temporary names and renamed: a kill during a save
    leaves either the previous backup or the new one, never an unreadable one."""

    def write_backup(self, weights_path, metadata_path, metadata):
        with artifacts.staged_path(weights_path) as tmp:
            self.model.save_weights(tmp)
        artifacts.write_json(metadata_path, metadata)


class Stopper(keras.callbacks.Callback):
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


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping, idle for the first `min_steps` training steps (like its `start_from_epoch`, but
    counted in steps, which do not depend on the data set's size). A small data set spends its first hundred or
    two steps learning only the class balance, with a flat or rising validation loss: counted in epochs, that
    plateau exhausted the patience and left a model that predicts the majority class."""

    def __init__(self, monitor: str, patience: int, mode: str, min_steps: int):
        super().__init__(monitor, patience=patience, mode=mode)
        self.min_steps = min_steps

    def on_epoch_end(self, epoch, logs=None):
        # convert_to_numpy, not int(): under a distribution strategy the counter is a MirroredVariable.
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) < self.min_steps:
            return  # neither a best value nor a waiting epoch is recorded yet
        super().on_epoch_end(epoch, logs)


# train.lr_schedule: the learning rate's factor at a run's progress p in [0, 1].
SCHEDULES = {
    "constant": lambda p: 1.0,
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
}


class LearningRateDecay(keras.callbacks.Callback):
    """Sets the optimizer's learning rate before each step to `base` times `SCHEDULES[schedule](progress)`, so that
    it reaches zero where the run ends: progress is the larger of the steps taken over `epochs` epochs' steps and the
    seconds spent over `max_seconds` (0: no budget), both counted across resumes. A run that stops on its time budget
    therefore ends its last epoch at a learning rate near zero, which is where a decayed run gains over a constant
    one. Until the first epoch has ended, an epoch's steps are known only if the data set's length is.

    The rate is also logged (`learning_rate` in the history) at each epoch's end."""

    def __init__(self, schedule: str, base: float, epochs: int, max_seconds: float = 0.0, spent_before: float = 0.0):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.factor, self.base, self.epochs = SCHEDULES[schedule], base, epochs
        self.max_seconds, self.spent_before = max_seconds, spent_before
        self.steps_per_epoch = None

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()
        self.steps_per_epoch = self.params.get("steps") or None
        # Counted here rather than read from the optimizer at every step, which would wait for the step before it
        # to finish; a resumed run starts from the restored count.
        self.step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def progress(self) -> float:
        done = []
        if self.steps_per_epoch:
            done.append(self.step / (self.epochs * self.steps_per_epoch))
        if self.max_seconds:
            done.append((self.spent_before + time.monotonic() - self.start) / self.max_seconds)
        return min(1.0, max(done, default=0.0))

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.base * self.factor(self.progress()))

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        if not self.steps_per_epoch:  # a data set of unknown length: its first epoch has measured it
            self.steps_per_epoch = max(1, self.step // (epoch + 1))
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class FineTuning(keras.callbacks.Callback):
    """Discriminative fine-tuning and gradual unfreezing (Howard & Ruder 2018) over `groups` of variables from the
    top (pipeline.training.model.layer_groups): at each epoch's start, group i (0: the head) gets the scale
    `factor ** -i` of the learning rate, or 0 while i > the epoch's index when `gradual` (the head alone in the
    first epoch, one group more each epoch). The epoch is the absolute one, so a resumed run continues the schedule.

    Give the optimizer `rate_scales` (pipeline.training.fused_adam.FusedAdam), made in the distribution strategy's
    scope: one scalar variable per group, which this sets."""

    def __init__(self, groups, factor: float = 1.0, gradual: bool = False):
        super().__init__()
        if not factor >= 1.0:
            raise ValueError(f"factor must be >= 1, got factor={factor}")
        self.factor, self.gradual = factor, gradual
        scales = [
            keras.Variable(1.0, trainable=False, dtype="float32", name=f"rate_scale_{i}") for i in range(len(groups))
        ]
        self.rate_scales = list(zip(groups, scales))

    def on_epoch_begin(self, epoch, logs=None):
        for i, (_, scale) in enumerate(self.rate_scales):
            scale.assign(0.0 if self.gradual and i > epoch else self.factor**-i)
