import math

import keras
import numpy as np
import pytest

from pipeline.training import callbacks
from pipeline.training.callbacks import LearningRateDecay


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
