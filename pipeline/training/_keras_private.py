"""Every use of a private Keras API in the pipeline, in one place, each with the reason it is needed: training-loop
details Keras has no public hook for (an atomic backup, the loss tracker, building a model for a collective strategy,
Adam's slots). Each name here is checked by `tests/pipeline/training/test_keras_private.py`, which fails loudly
when a Keras release moves or changes one; the `keras` pin in pyproject.toml covers the releases it has passed on.
(The layers keep theirs in custom_layers/_keras_private.py: a library that people reuse without the pipeline.)
"""

from __future__ import annotations

import keras

__all__ = ["BackupAndRestore", "adam_moment_variables", "build_for_distributed_fit", "initial_epoch", "loss_tracker",
           "variable_index"]  # fmt: skip


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore` with two things its public API lacks: how a backup is written, and a save on demand.

    Keras writes the weights file in place, so a SIGKILL during a save leaves an unreadable backup and the resumed
    run fails. Subclasses implement `write_backup(weights_path, metadata_path, metadata)` (the pipeline writes both
    files to temporary names and renames them); `save_now()` saves the current state at once, e.g. on Ctrl-C,
    where the public API saves only on its schedule.
    """

    def write_backup(self, weights_path: str, metadata_path: str, metadata: dict) -> None:
        raise NotImplementedError

    def save_now(self) -> None:
        self._save_model()

    def _save_model(self):
        # The private hook Keras calls on its schedule; its attributes are where Keras keeps the backup's paths and
        # the position it restores from.
        self.write_backup(
            self._weights_path,
            self._training_metadata_path,
            {"epoch": self._current_epoch, "batch": self._last_batch_seen},
        )


def initial_epoch(model: keras.Model) -> int:
    """The epoch `fit` started from after `BackupAndRestore` restored a backup (0 for a fresh run).

    `fit`'s History lists only the epochs of this call; the restored count lives in a private attribute that the
    callback sets."""
    return getattr(model, "_initial_epoch", None) or 0


def loss_tracker(model: keras.Model):
    """The `Mean` metric behind the "loss" that `fit` reports. A custom `train_step` that adds terms to the loss (as
    adversarial training does) updates it with the clean loss instead, so that "loss" stays comparable with
    "val_loss"; Keras has no public handle on it."""
    return model._loss_tracker


def build_for_distributed_fit(model: keras.Model, data_batch) -> None:
    """Builds the model, loss, metrics and optimizer from an undistributed sample batch and detaches the model from
    its strategy, so that `fit` takes the strategy from the enclosing scope.

    Under MultiWorkerMirroredStrategy, Keras' `fit` first all-reduces a sample (x, y) batch to build the model,
    which the collective strategy cannot do for a nested structure; building it here skips that step."""
    model._symbolic_build(data_batch=data_batch)
    model._distribute_strategy = None


def adam_moment_variables(optimizer: keras.optimizers.Adam, variable):
    """The TensorFlow variables of the first and second moment (m, v) that Keras' Adam keeps for `variable`. An
    optimizer's `update_step` receives the backend's variable (a tf.Variable, or a replica's under tf.distribute),
    and only the optimizer's private index maps it back to its slots; a compiled TensorFlow function that updates
    them (pipeline.training.fused_adam) needs the tf.Variables, which Keras' variables keep in a private attribute."""
    index = variable_index(optimizer, variable)
    return optimizer._momentums[index]._value, optimizer._velocities[index]._value


def variable_index(optimizer: keras.optimizers.Optimizer, variable) -> int:
    """The optimizer's index of a model variable, given either the Keras variable or the backend's variable that
    `update_step` receives (a tf.Variable, or a replica's under tf.distribute): the one map between the two, which
    Keras keeps private."""
    return optimizer._get_variable_index(variable)
