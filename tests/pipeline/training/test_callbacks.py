import math
import re

import keras
import numpy as np
import pytest

from pipeline.training import callbacks
from pipeline.training.callbacks import FineTuning, LearningRateDecay


class _RecordRate(keras.callbacks.Callback):
    """The learning rate each step ran with. Read at the step's end: on a data set of unknown length Keras begins
    one more batch at each epoch's end before it finds the data exhausted."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def _fit(schedule_callback, epochs=4, examples=40, batch_size=10, dataset_of_unknown_length=False):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x, y = np.ones((examples, 3), "float32"), np.zeros((examples, 1), "float32")
    data = (x, y)
    if dataset_of_unknown_length:
        import tensorflow as tf

        data = (tf.data.Dataset.from_tensor_slices(data).filter(lambda a, b: True).batch(batch_size),)
    record = _RecordRate()
    history = model.fit(*data, batch_size=None if dataset_of_unknown_length else batch_size, epochs=epochs,
                        callbacks=[schedule_callback, record], verbose=0)  # fmt: skip
    return record.rates, history.history


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_decays_to_zero_over_the_planned_steps(schedule):
    rates, history = _fit(LearningRateDecay(schedule, base=0.01, epochs=4))
    factor = callbacks.SCHEDULES[schedule]
    assert rates == pytest.approx([0.01 * factor(step / 16) for step in range(16)], rel=1e-5)
    assert history["learning_rate"] == pytest.approx(rates[3::4], rel=1e-5)


def test_a_data_set_of_unknown_length_keeps_the_rate_for_its_first_epoch_then_decays():
    rates, _ = _fit(LearningRateDecay("linear", base=0.01, epochs=4), dataset_of_unknown_length=True)
    assert rates[:4] == pytest.approx([0.01] * 4)  # the epoch's length is not known yet
    # Then down to about zero by the fourth epoch's end, a step at a time. The steps are Keras' iteration count,
    # which on such a data set also counts the attempt that finds each epoch's data exhausted (a double step at
    # each epoch's end here).
    assert len(rates) == 16 and np.all(np.diff(rates[4:]) < 0) and rates[-1] < 0.15 * 0.01
    assert rates[4:] == pytest.approx([0.01 * (1 - step / 16) for step in range(4, 16)], abs=0.01 / 16)


def test_the_time_budget_ends_the_decay_when_it_comes_first(monkeypatch):
    clock = iter(range(0, 10**6, 10))  # every reading of the clock is 10 s after the one before
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: next(clock))
    decay = LearningRateDecay("linear", base=0.01, epochs=1000, max_seconds=400.0, spent_before=100.0)
    rates, _ = _fit(decay, epochs=1, examples=30)
    # A budget of 400 s of which 100 were spent before this attempt: 1/4 done at the start, then 10 s a step.
    assert rates == pytest.approx([0.01 * (1 - (100 + 10 * k) / 400) for k in (1, 2, 3)], rel=1e-5)
    assert all(not math.isnan(r) for r in rates)


def test_constant_is_the_rate_itself_and_an_unknown_schedule_is_refused():
    rates, _ = _fit(LearningRateDecay("constant", base=0.01, epochs=4))
    assert rates == pytest.approx([0.01] * 16)
    with pytest.raises(ValueError, match="'step'"):
        LearningRateDecay("step", base=0.01, epochs=4)


class _Weights(keras.callbacks.Callback):
    """Each named layer's weights at each epoch's end."""

    def __init__(self, names):
        super().__init__()
        self.names, self.seen = names, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append({name: [w.copy() for w in self.model.get_layer(name).get_weights()] for name in self.names})


def _classifier():
    keras.utils.set_random_seed(0)
    tokens = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(20, 4, name="embedding")(tokens)
    x = keras.layers.LSTM(3, return_sequences=True, name="rnn_0")(x)
    x = keras.layers.LSTM(3, name="rnn_1")(x)
    return keras.Model(tokens, keras.layers.Dense(2, name="head")(x))


def test_layer_groups_run_from_the_head_down_to_the_embedding():
    from pipeline.training.model import layer_groups

    model = _classifier()
    names = [[v.path.split("/")[0] for v in group] for group in layer_groups(model)]
    assert [sorted(set(group)) for group in names] == [["head"], ["rnn_1"], ["rnn_0"], ["embedding"]]
    model.get_layer("rnn_1").trainable = False  # a frozen layer is no group
    assert len(layer_groups(model)) == 3


def test_gradual_unfreezing_moves_one_more_group_each_epoch_and_rates_fall_by_the_factor():
    from pipeline.training.fused_adam import FusedAdam
    from pipeline.training.model import layer_groups

    model = _classifier()
    schedule = FineTuning(layer_groups(model), factor=2.6, gradual=True)
    model.compile(FusedAdam(0.01, rate_scales=schedule.rate_scales), "sparse_categorical_crossentropy")
    names = ["head", "rnn_1", "rnn_0", "embedding"]
    weights = _Weights(names)
    start = {name: model.get_layer(name).get_weights() for name in names}
    x = np.random.default_rng(0).integers(1, 20, (16, 5)).astype("int32")
    y = np.arange(16) % 2
    model.fit(x, y, batch_size=8, epochs=4, callbacks=[schedule, weights], verbose=0)

    def moved(epoch, name):
        before = start[name] if epoch == 0 else weights.seen[epoch - 1][name]
        return any(not np.array_equal(a, b) for a, b in zip(before, weights.seen[epoch][name]))

    for epoch in range(4):
        assert [moved(epoch, name) for name in names] == [i <= epoch for i in range(4)], epoch
    assert [float(scale.numpy()) for _, scale in schedule.rate_scales] == pytest.approx([1, 1 / 2.6, 2.6**-2, 2.6**-3])
    with pytest.raises(ValueError, match="factor=0.5"):
        FineTuning([], factor=0.5)


def test_the_config_offers_exactly_the_schedules_there_are():
    from pipeline.config import config_from_dict
    from pipeline.errors import ConfigError

    def config(schedule):
        return config_from_dict(
            {"task": "next_char", "data": {"train": "corpus.txt"}, "train": {"lr_schedule": schedule}}
        )

    for name in callbacks.SCHEDULES:
        assert config(name).train.lr_schedule == name
    with pytest.raises(ConfigError, match="train.lr_schedule: must be one of constant, linear, cosine"):
        config("step")


class _Clock(keras.callbacks.Callback):
    """A clock that moves only when a training step ends, by `step` seconds: placed before TimedProgress, every step
    takes exactly that long."""

    def __init__(self, step: float):
        super().__init__()
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now

    def on_train_batch_end(self, batch, logs=None):
        self.now += self.step


def _progress_lines(epochs=4, dataset_of_unknown_length=False, **kwargs):
    """The lines of a fit of `epochs` epochs of 4 steps, each step 10 s, with a line due every 25 s; the loss is
    replaced by L."""
    clock, lines = _Clock(10.0), []
    progress = callbacks.TimedProgress(lines.append, "fit", every=25.0, clock=clock, **{"lines": True, **kwargs})
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((40, 3), "float32"), np.zeros((40, 1), "float32")
    data, batch_size = (x, y), 10
    if dataset_of_unknown_length:
        import tensorflow as tf

        data, batch_size = (tf.data.Dataset.from_tensor_slices(data).filter(lambda a, b: True).batch(10),), None
    model.fit(*data, batch_size=batch_size, epochs=epochs, callbacks=[clock, progress], shuffle=False, verbose=0)
    return [re.sub(r"loss \d+\.\d{4}", "loss L", line) for line in lines]


def test_progress_lines_come_every_so_many_seconds_with_the_time_spent_and_left():
    # A line is due at the third step of each epoch (30 s after the last line or the epoch's end). Before the first
    # epoch ends its speed is 10 s a step; then 40 s an epoch. 100 s were spent by an earlier attempt.
    assert _progress_lines(spent_before=100.0) == [
        "fit: epoch 1/4, step 3/4, loss L; 2m 10s so far, at most about 2m 10s to go",
        "fit: epoch 2/4, step 3/4, loss L; 2m 50s so far, at most about 1m 30s to go",
        "fit: epoch 3/4, step 3/4, loss L; 3m 30s so far, at most about 50s to go",
        "fit: epoch 4/4, step 3/4, loss L; 4m 10s so far, at most about 10s to go",
    ]


def test_a_budget_bounds_the_time_left():
    # 200 s, of which 100 were spent before: at 30 s into this attempt, 70 s are left (not the epochs' 130).
    lines = _progress_lines(max_seconds=200.0, spent_before=100.0)
    assert lines[0] == "fit: epoch 1/4, step 3/4, loss L; 2m 10s so far, at most about 1m 10s to go"


def test_a_data_set_of_unknown_length_is_measured_by_its_first_epoch_or_estimated():
    lines = _progress_lines(epochs=2, dataset_of_unknown_length=True)
    assert lines == ["fit: epoch 1/2, step 3, loss L; 30s so far", "fit: epoch 2/2, step 3/4, loss L; 1m 10s so far, "
                     "at most about 10s to go"]  # fmt: skip
    estimated = _progress_lines(epochs=2, dataset_of_unknown_length=True, expected_steps=5)
    assert estimated[0] == "fit: epoch 1/2, step 3 of about 5, loss L; 30s so far, at most about 1m 10s to go"


def test_the_hint_comes_once_when_the_stage_looks_long_and_alone_without_lines():
    assert _progress_lines(lines=False, hint="try less", hint_seconds=100.0) == [
        "\nfit: at most about 2m 10s to go; try less"  # below a terminal's bar, on a line of its own
    ]
    assert _progress_lines(lines=False, hint="try less", hint_seconds=200.0) == []


def test_durations_read_as_seconds_minutes_or_hours_and_a_bad_interval_is_refused():
    assert [callbacks.duration(s) for s in (0, 44.6, 60, 725, 3600, 11220)] == [
        "0s", "45s", "1m 00s", "12m 05s", "1h 00m", "3h 07m"]  # fmt: skip
    with pytest.raises(ValueError, match="every=0"):
        callbacks.TimedProgress(print, "fit", every=0)
