"""Keras callbacks of the training stages (train, pretrain): an atomic resumable backup, a time budget and NaN stop,
early stopping that waits for a number of steps, a learning rate that decays over the run's length, ULMFiT's
fine-tuning schedule, and progress lines for output that is not a terminal."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

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


# Seconds between TimedProgress' lines: often enough to see a long epoch move, rarely enough to read the log back.
PROGRESS_SECONDS = 60.0


def keras_verbosity() -> int:
    """Keras' progress bar on a terminal, one line per epoch otherwise. Redrawn in a log file, the bar is every
    step's line joined by carriage returns and colour codes: about 1 MB of log for the Shakespeare job."""
    return 1 if sys.stdout.isatty() else 2


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 45s, 12m 05s, 3h 07m."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class TimedProgress(keras.callbacks.Callback):
    """Reports a line every `every` seconds while an epoch runs, with the epoch's step and loss, the time the stage
    has spent (across resumes) and, once an epoch's steps are known, the most time it has left: the rest of its
    epochs at the speed measured so far, or its budget's end if that comes first. Keras (verbose=2) prints one line
    an epoch where the output is not a terminal, and an epoch over tens of thousands of texts takes tens of
    minutes.

    On a terminal Keras' bar shows the step, so there only the `hint` is reported: once, when the time left is first
    estimated above `hint_seconds`.

    Args:
        report: takes each line (the CLI's `click.echo`).
        stage: the name that starts each line.
        every: seconds between lines (None: `PROGRESS_SECONDS`).
        max_seconds: the stage's time budget (0: none), counted across resumes.
        spent_before: seconds spent by the attempts before this one.
        expected_steps: an epoch's steps if the data set's length is unknown (a bucketed one), used until the first
            epoch has ended; None: no estimate before then.
        lines: whether to report the periodic lines; None: where Keras prints a line an epoch (`keras_verbosity`).
        hint: what to say when the stage looks long (empty: nothing).
        hint_seconds: how long is long.
        clock: seconds, monotonic (tests give their own).
    """

    def __init__(self, report: Callable[[str], None], stage: str, every: float | None = None, max_seconds: float = 0.0,
                 spent_before: float = 0.0, expected_steps: int | None = None, lines: bool | None = None,
                 hint: str = "", hint_seconds: float = 2 * 3600.0, clock=time.monotonic):  # fmt: skip
        super().__init__()
        every = PROGRESS_SECONDS if every is None else every
        if not every > 0:
            raise ValueError(f"every must be > 0 seconds, got every={every}")
        self.report, self.stage, self.every, self.clock = report, stage, every, clock
        self.max_seconds, self.spent_before, self.expected_steps = max_seconds, spent_before, expected_steps
        self.lines = keras_verbosity() == 2 if lines is None else lines
        self.hint, self.hint_seconds = hint, hint_seconds

    def on_train_begin(self, logs=None):
        self.start = self.last = self.clock()
        self.steps = self.params.get("steps") or None
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.step, self.epoch_start = epoch, 0, self.clock()

    def on_train_batch_end(self, batch, logs=None):
        self.step = batch + 1
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        left = self._left(now)
        if self.hint and left is not None and left > self.hint_seconds:
            # On a terminal Keras' bar is mid-line: the hint starts a line of its own, and the bar goes on below.
            start = "" if self.lines else "\n"
            self.report(f"{start}{self.stage}: at most about {duration(left)} to go; {self.hint}")
            self.hint = ""
        if self.lines:
            self.report(self._line(now, left, (logs or {}).get("loss")))

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.epoch_seconds.append(now - self.epoch_start)
        self.steps = self.steps or self.step
        self.last = now  # Keras prints the epoch's own line now

    def _left(self, now: float) -> float | None:
        steps = self.steps or self.expected_steps
        if not steps or not self.step:
            return None
        if self.epoch_seconds:  # whole epochs, with their validation passes
            per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds)
        else:
            per_epoch = (now - self.epoch_start) / self.step * steps
        left = max(0.0, self.params["epochs"] - self.epoch - min(1.0, self.step / steps)) * per_epoch
        if self.max_seconds:
            left = min(left, max(0.0, self.max_seconds - self.spent_before - (now - self.start)))
        return left

    def _line(self, now: float, left: float | None, loss) -> str:
        of = f"/{self.steps}" if self.steps else f" of about {self.expected_steps}" if self.expected_steps else ""
        line = f"{self.stage}: epoch {self.epoch + 1}/{self.params['epochs']}, step {self.step}{of}"
        if loss is not None:
            line += f", loss {float(keras.ops.convert_to_numpy(loss)):.4f}"
        line += f"; {duration(self.spent_before + now - self.start)} so far"
        return line + (f", at most about {duration(left)} to go" if left is not None else "")
