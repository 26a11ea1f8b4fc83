"""Keras callbacks of the training stages (train, pretrain): an atomic resumable backup, a time budget and NaN stop,
and early stopping that waits for a number of steps."""

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
