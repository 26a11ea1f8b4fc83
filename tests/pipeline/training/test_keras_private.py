"""Each private Keras name in pipeline.training._keras_private exists and behaves as it is relied on.

A Keras release that moves or changes one of them fails here, by name, rather than somewhere deep in training.
"""

import json
import os

import keras
import numpy as np
import pytest

from pipeline.training import _keras_private


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


class JsonBackup(_keras_private.BackupAndRestore):
    def __init__(self, backup_dir):
        super().__init__(str(backup_dir))
        self.writes = []

    def write_backup(self, weights_path, metadata_path, metadata):
        os.makedirs(os.path.dirname(weights_path), exist_ok=True)
        self.model.save_weights(weights_path)
        with open(metadata_path, "w") as f:
            json.dump(metadata, f)
        self.writes.append(metadata)


class StopAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt("simulated interruption")


def test_backup_and_restore_resumes_and_reports_the_initial_epoch(tmp_path):
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 1), "float32")
    model = tiny_model()
    backup = JsonBackup(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[backup, StopAfter(2)])
    assert backup.writes and backup.writes[-1]["epoch"] == 2, "written through write_backup at each epoch's end"
    assert _keras_private.initial_epoch(model) == 0, "a fresh run starts at epoch 0"

    resumed = tiny_model()
    backup = JsonBackup(tmp_path / "backup")
    history = resumed.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[backup])
    assert _keras_private.initial_epoch(resumed) == 2
    assert history.epoch == [2, 3, 4]
    # save_now writes at once, through the same hook.
    backup.set_model(resumed)
    before = len(backup.writes)
    backup.save_now()
    assert len(backup.writes) == before + 1 and set(backup.writes[-1]) == {"epoch", "batch"}


def test_loss_tracker_is_the_mean_behind_the_reported_loss():
    model = tiny_model()
    tracker = _keras_private.loss_tracker(model)
    assert isinstance(tracker, keras.metrics.Mean)
    history = model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), epochs=1, batch_size=4, verbose=0)
    np.testing.assert_allclose(float(tracker.result()), history.history["loss"][0], rtol=1e-6)


def test_build_for_distributed_fit_builds_and_detaches_the_strategy():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("distribution strategies are TensorFlow's")
    model = tiny_model()
    _keras_private.build_for_distributed_fit(model, (np.ones((2, 3), "float32"), np.ones((2, 1), "float32")))
    assert model.built and model.optimizer.built
    assert model._distribute_strategy is None
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), epochs=1, verbose=0)


def test_adam_moment_variables_are_the_slots_adam_updates():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the moments' tf.Variables exist on TensorFlow only, where pipeline.training.fused_adam runs")
    variable = keras.Variable(np.zeros((2, 3), "float32"))
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.apply([keras.ops.ones((2, 3))], [variable])
    m, v = _keras_private.adam_moment_variables(optimizer, variable)
    np.testing.assert_allclose(m.numpy(), 0.1, rtol=1e-6)  # (1 - beta_1) * g
    np.testing.assert_allclose(v.numpy(), 0.001, rtol=1e-5)  # (1 - beta_2) * g^2


def test_variable_index_maps_the_keras_and_the_backend_variable_alike():
    first, second = keras.Variable(np.zeros(2, "float32")), keras.Variable(np.zeros(3, "float32"))
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build([first, second])
    assert [_keras_private.variable_index(optimizer, v) for v in (first, second)] == [0, 1]
    if keras.backend.backend() == "tensorflow":  # what update_step receives there
        assert _keras_private.variable_index(optimizer, second.value) == 1
