"""Training reliability: determinism, divergence, time budget, and resuming after SIGKILL / Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import load_config, replace
from pipeline.errors import RunDirError
from pipeline.stages import evaluate, tokenize, train
from pipeline.training.callbacks import EarlyStopping, Stopper
from tests.pipeline.helpers import plain_text, sentiment_csv, write_config


def tiny_run(tmp_path, name, **sections):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = load_config(write_config(tmp_path / f"{name}.toml", "sentiment", data, **sections), [])
    run_dir = tmp_path / name
    tokenize.run(config, run_dir)
    result = train.run(config, run_dir)
    return config, run_dir, result


@pytest.mark.slow
def test_same_seed_same_vocabulary_and_metrics(tmp_path):
    """Tolerance: 1e-6 on every metric (CPU kernels are deterministic for a fixed thread count)."""
    runs = [tiny_run(tmp_path, f"run{i}", train={"epochs": 2}) for i in range(2)]
    vocabularies = [(run_dir / "vocabulary.json").read_text() for _, run_dir, _ in runs]
    assert vocabularies[0] == vocabularies[1]
    metrics = [evaluate.run(config, run_dir).metrics for config, run_dir, _ in runs]
    for key in ("accuracy", "macro_f1", "roc_auc"):
        assert metrics[0][key] == pytest.approx(metrics[1][key], abs=1e-6)
    assert runs[0][2].best == pytest.approx(runs[1][2].best, abs=1e-6)


@pytest.mark.slow
def test_progress_is_one_line_per_epoch_when_stdout_is_not_a_terminal(tmp_path, capsys):
    tiny_run(tmp_path, "run", train={"epochs": 2})
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b[" not in out
    epochs = [line for line in out.splitlines() if "val_loss" in line]
    assert len(epochs) == 2 and "Epoch 2/2" in out


@pytest.mark.slow
def test_nan_loss_before_any_checkpoint_is_one_clear_error_and_keeps_the_old_checkpoint(tmp_path):
    config, run_dir, first = tiny_run(tmp_path, "run", train={"epochs": 1})
    good = (run_dir / "checkpoints" / "best.keras").read_bytes()
    # Adam moves every weight by about the learning rate per step; at 1e38 the next products overflow float32,
    # so the loss turns NaN whatever the kernels' rounding (1e30 left it huge but finite).
    exploding = replace(config, **{"train.epochs": 3, "train.learning_rate": 1e38, "train.clipnorm": 0.0})
    with pytest.raises(RunDirError, match=r"diverged \(loss nan\) before its first checkpoint; lower train.learning"):
        train.run(exploding, run_dir, overwrite=True)
    assert (run_dir / "checkpoints" / "best.keras").read_bytes() == good


@pytest.mark.parametrize("min_steps, stopped_after", [(0, 3), (50, 7), (55, 8)])
def test_early_stopping_waits_for_min_steps(min_steps, stopped_after):
    """A validation loss that only rises (a small data set's class-balance plateau): patience 2 stops after the
    third epoch, or, with 10 steps per epoch, two epochs after the first epoch ending at >= min_steps steps."""
    from types import SimpleNamespace

    model = SimpleNamespace(optimizer=SimpleNamespace(iterations=0), stop_training=False)
    stopper = EarlyStopping("val_loss", patience=2, mode="min", min_steps=min_steps)
    stopper.set_model(model)
    stopper.on_train_begin()
    for epoch in range(20):
        model.optimizer.iterations += 10
        stopper.on_epoch_end(epoch, {"val_loss": 0.69 + 0.01 * epoch})
        if model.stop_training:
            break
    assert epoch + 1 == stopped_after


@pytest.mark.slow
def test_time_budget_stops_mid_epoch(tmp_path):
    _, run_dir, result = tiny_run(tmp_path, "run", train={"epochs": 50, "max_seconds": 1.0})
    assert result.status == "time_budget" and result.epochs < 50
    assert (run_dir / "checkpoints" / "best.keras").exists()


@pytest.mark.slow
def test_ensemble_trains_members_then_joins_them_and_resumes_by_member(tmp_path):
    """Each member is an ordinary run in members/<k>/ with its own seed; best.keras is their probability average
    (checked against the members' own checkpoints); a rerun keeps finished members and trains only missing ones."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pipeline.data.text import Vocabulary, encode_words, lookup_table, ngram_table

    config, run_dir, result = tiny_run(tmp_path, "run", model={"ensemble": 3}, train={"epochs": 2})
    assert len(result.members) == 3 and result.epochs == sum(m["epochs"] for m in result.members)
    assert "ensemble of 3" in result.summary()
    members = [keras.saving.load_model(run_dir / "members" / str(k) / "checkpoints" / "best.keras") for k in range(3)]
    for k in range(3):
        assert (run_dir / "members" / str(k) / "history.csv").exists()
    assert not np.allclose(members[0].get_weights()[0], members[1].get_weights()[0])  # different training seeds
    joined = keras.saving.load_model(run_dir / "checkpoints" / "best.keras")
    vocab = Vocabulary.load(run_dir / "vocabulary.json")
    tokens = encode_words(tf.constant(["superb film", "dull boring plot"]), vocab, lookup_table(vocab),
                          ngram_table(vocab)).numpy()  # fmt: skip
    mean_probability = np.mean([np.asarray(keras.ops.softmax(m(tokens))) for m in members], axis=0)
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(joined(tokens))), mean_probability, rtol=1e-5)
    state = json.loads((run_dir / "train_state.json").read_text())
    assert [m["status"] for m in state["members"]] == [m["status"] for m in result.members]
    curve = state["ensemble_curve"]
    assert [point["members"] for point in curve] == [1, 2, 3]
    assert curve[-1]["val_loss"] == pytest.approx(result.best, abs=1e-9)
    # The one-member point is member 0 scored the way Keras scored it while training.
    assert curve[0]["val_loss"] == pytest.approx(result.members[0]["best"], abs=1e-4)

    # Member 0 trained with the config's seed: the same model a single run trains.
    _, single_dir, _ = tiny_run(tmp_path, "single", train={"epochs": 2})
    single = keras.saving.load_model(single_dir / "checkpoints" / "best.keras")
    np.testing.assert_allclose(members[0](tokens), single(tokens), atol=1e-6)
    # evaluate scores the members alone beside the ensemble: member 0 alone is that single run.
    scored = evaluate.run(config, run_dir)
    assert len(scored.metrics["members"]) == 3 and "its 3 members alone: accuracy" in scored.summary()
    alone = evaluate.run(load_config(single_dir.with_suffix(".toml"), []), single_dir).metrics
    assert scored.metrics["members"][0] == {"accuracy": alone["accuracy"], "macro_f1": alone["macro_f1"]}
    # evaluate joins the members' logits itself: the same scores as the ensemble's own forward pass.
    whole = keras.Sequential([keras.Input((None,), dtype="int32"), joined])  # no "member_" layers: one forward pass
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate, "load_checkpoint", lambda path: whole)
        direct = evaluate.run(config, run_dir, overwrite=True).metrics
    assert scored.metrics["confusion_matrix"] == direct["confusion_matrix"]
    for key in ("accuracy", "macro_f1", "roc_auc"):
        assert scored.metrics[key] == pytest.approx(direct[key], abs=1e-6), key

    # An ensemble interrupted in its last member: the rerun keeps members 0 and 1 byte for byte.
    kept = [(run_dir / "members" / str(k) / "checkpoints" / "best.keras").read_bytes() for k in range(2)]
    import shutil

    shutil.rmtree(run_dir / "members" / "2")
    (run_dir / "train_state.json").unlink()
    (run_dir / "checkpoints" / "best.keras").unlink()  # the members are joined only once all are trained
    again = train.run(config, run_dir)
    assert not again.skipped and len(again.members) == 3
    assert [(run_dir / "members" / str(k) / "checkpoints" / "best.keras").read_bytes() for k in range(2)] == kept
    assert again.best == pytest.approx(result.best, abs=1e-6)  # member 2 retrained with the same seed


def _command(stage, config, run_dir):
    return [str(Path(sys.executable).with_name("rnnpipe")), stage, str(config), "--run-dir", str(run_dir)]


def _train_command(config, run_dir):
    return _command("train", config, run_dir)


def _tokenize(config, run_dir):
    subprocess.run(_command("tokenize", config, run_dir), check=True, capture_output=True, timeout=300)


@pytest.mark.slow
def test_sigkill_mid_training_then_same_command_resumes(tmp_path):
    data = {"train": str(plain_text(tmp_path / "corpus.txt", chars=40_000)), "test_fraction": 0.1}
    config = write_config(tmp_path / "chars.toml", "next_char", data,
                          train={"epochs": 6, "batch_size": 8, "backup_every_steps": 5})  # fmt: skip
    reference = tmp_path / "reference"
    interrupted = tmp_path / "interrupted"
    for run_dir in (reference, interrupted):
        _tokenize(config, run_dir)
    subprocess.run(_train_command(config, reference), check=True, capture_output=True, timeout=600)

    process = subprocess.Popen(_train_command(config, interrupted), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    history = interrupted / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        rows = history.read_text().count("\n") - 1 if history.exists() else 0
        if rows >= 2 and (interrupted / "checkpoints" / "backup").exists():
            break
        time.sleep(0.2)
    assert process.poll() is None, "training finished before it could be killed; make it longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_epochs = history.read_text().count("\n") - 1
    assert 2 <= killed_epochs < 6

    resumed = subprocess.run(_train_command(config, interrupted), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    state = json.loads((interrupted / "train_state.json").read_text())
    expected = json.loads((reference / "train_state.json").read_text())
    assert state["status"] == expected["status"] == "completed"
    assert state["epochs"] == expected["epochs"] == 6
    # Same data and seed; the resumed run repeats part of one epoch with a different shuffle, hence a 20% tolerance.
    assert state["monitor"] == "val_loss"
    assert state["best"] == pytest.approx(expected["best"], rel=0.2)


@pytest.mark.slow
def test_sigint_stops_cleanly_after_saving(tmp_path):
    data = {"train": str(plain_text(tmp_path / "corpus.txt", chars=40_000)), "test_fraction": 0.1}
    config = write_config(tmp_path / "chars.toml", "next_char", data,
                          train={"epochs": 500, "patience": 500, "batch_size": 8, "backup_every_steps": 5})  # fmt: skip
    run_dir = tmp_path / "run"
    _tokenize(config, run_dir)
    # A shell that starts jobs in the background makes them ignore SIGINT; give the child the default disposition,
    # as in an interactive terminal.
    # PYTHONFAULTHANDLER: should the child ever hang after the interrupt, SIGABRT makes it print every thread's stack.
    process = subprocess.Popen(_train_command(config, run_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                               env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # fmt: skip
    history = run_dir / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (history.exists() and history.read_text().count("\n") >= 2):
        time.sleep(0.2)  # interrupt mid-training, after the first epoch, not while the step is being compiled
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate(timeout=60)
        pytest.fail(f"train did not exit within 300 s of SIGINT; its threads then:\n{stderr[-8000:]}")
    assert process.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert json.loads((run_dir / "train_state.json").read_text())["status"] == "interrupted"
    assert any((run_dir / "checkpoints" / "backup").iterdir())


@pytest.mark.slow
def test_time_budget_counts_across_a_resume_after_ctrl_c(tmp_path, monkeypatch):
    """Ctrl-C after the first epoch, then the same command: the resumed run is given what is left of
    train.max_seconds, not the whole budget again, and reports the time of both attempts."""
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = load_config(write_config(tmp_path / "c.toml", "sentiment", data,
                                      train={"epochs": 3, "max_seconds": 600.0}), [])  # fmt: skip
    run_dir = tmp_path / "run"
    tokenize.run(config, run_dir)
    end_of_epoch = train._Progress.on_epoch_end

    def interrupt_after_first_epoch(self, epoch, logs=None):
        end_of_epoch(self, epoch, logs)
        raise KeyboardInterrupt  # what Python raises on SIGINT

    with monkeypatch.context() as patch:
        patch.setattr(train._Progress, "on_epoch_end", interrupt_after_first_epoch)
        with pytest.raises(KeyboardInterrupt):
            train.run(config, run_dir)
    state = json.loads((run_dir / "train_state.json").read_text())
    assert state["status"] == "interrupted"
    spent = state["seconds"]
    assert spent > 0

    budgets = []
    stopper_init = Stopper.__init__
    monkeypatch.setattr(
        Stopper, "__init__", lambda self, seconds: (budgets.append(seconds), stopper_init(self, seconds))[1]
    )
    started = time.monotonic()
    result = train.run(config, run_dir)
    took = time.monotonic() - started
    assert budgets == [pytest.approx(600.0 - spent)]
    assert result.status == "completed" and result.epochs == 3
    assert spent < result.seconds <= spent + took + 0.5
