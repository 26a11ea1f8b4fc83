"""`rnnpipe tune`: the search, its study and its run directories, on tiny data made here; two workers sharing a
study through its journal file and through a PostgreSQL server the test starts; a worker killed mid-trial."""

import csv
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.stages import evaluate, tune
from tests.pipeline.helpers import sentiment_csv, write_config

SPACE = """
[tune.space]
"train.learning_rate" = {low = 1e-3, high = 1e-2, log = true}
"model.units" = [4, 8]
"tokenize.max_ngram" = [0, 4]
"""


def tune_config(tmp_path: Path, trials: int = 3, space: str = SPACE, **sections) -> Path:
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    path = write_config(tmp_path / "s.toml", "sentiment", data, **sections)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"[tune]\ntrials = {trials}\n{space}")
    return path


def study_of(run_dir: Path, name: str = "tune") -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / "tune" / "study.journal"))
    )
    return optuna.load_study(study_name=name, storage=storage)


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_a_search_writes_its_trials_the_best_config_and_figures(tmp_path):
    path = tune_config(tmp_path)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["tune", str(path), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    root = run_dir / "tune"
    assert "tune: 3 trials finished, 3 in the study" in result.output
    assert "trial 0 (0 of 3 finished): train.learning_rate=" in result.output
    with open(root / "trials.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [row["state"] for row in rows] == ["complete"] * 3
    assert {float(row["val_loss"]) > 0 for row in rows} == {True}
    for row in rows:  # every sampled value is in the space
        assert 1e-3 <= float(row["train.learning_rate"]) <= 1e-2 and row["model.units"] in ("4", "8")
    # The best trial's config is a plain config: it loads, and it is the trial's own.
    best = min(rows, key=lambda row: float(row["val_loss"]))
    best_config = load_config(root / "best.toml")
    trial_config = load_config(Path(best["run_dir"]) / "config.toml")
    assert best_config == trial_config
    assert best_config.model.units == int(best["model.units"])
    assert (root / "optimization_history.png").stat().st_size > 1000
    assert (root / "param_importances.png").stat().st_size > 1000
    # One tokenize per distinct vocabulary setting, however many trials share it.
    max_ngrams = {row["tokenize.max_ngram"] for row in rows}
    assert len([p for p in (root / "tokenized").iterdir() if p.is_dir()]) == len(max_ngrams)
    # A trial is a run directory like any other: it evaluates.
    metrics = evaluate.run(trial_config, Path(best["run_dir"])).metrics
    assert metrics["examples"] == 32

    # Run again: the study has its trials, nothing runs; a larger budget continues it.
    again = CliRunner().invoke(main, ["tune", str(path), "--run-dir", str(run_dir)])
    assert again.exit_code == 0 and "tune: 3 trials finished, 3 in the study" in again.output
    assert "trial 3" not in again.output
    more = CliRunner().invoke(main, ["tune", str(path), "--run-dir", str(run_dir), "--trials", "4"])
    assert more.exit_code == 0 and "trial 3 (3 of 4 finished)" in more.output
    assert states(study_of(run_dir)) == ["COMPLETE"] * 4


def test_trials_are_scored_on_validation_and_never_evaluated(tmp_path):
    result = tune.run(load_config(tune_config(tmp_path, trials=1)), tmp_path / "run")
    run_dir = Path(result.rows[0]["run_dir"])
    with open(run_dir / "history.csv", newline="", encoding="utf-8") as f:
        best = min(float(row["val_loss"]) for row in csv.DictReader(f))
    assert result.rows[0]["value"] == pytest.approx(best)
    assert not (run_dir / "metrics.json").exists()


def test_no_trial_starts_once_the_time_budget_is_spent(tmp_path):
    path = tune_config(tmp_path, trials=3)
    result = CliRunner().invoke(main, ["tune", str(path), "--run-dir", str(tmp_path / "r"), "--timeout", "1e-9"])
    assert result.exit_code == 0, result.output
    assert "tune: the time budget (1e-09 s) is spent; no new trial starts" in result.output
    assert "tune: 0 trials finished, 0 in the study" in result.output
    assert not (tmp_path / "r" / "tune" / "best.toml").exists()


def test_a_failed_trial_is_recorded_and_the_search_goes_on(tmp_path, monkeypatch):
    real = tune.train.run

    def out_of_memory_on_trial_1(config, run_dir, **kwargs):
        if Path(run_dir).name == "1":
            raise MemoryError("out of memory")
        return real(config, run_dir, **kwargs)

    monkeypatch.setattr(tune.train, "run", out_of_memory_on_trial_1)
    lines = []
    result = tune.run(load_config(tune_config(tmp_path, trials=3)), tmp_path / "run", on_event=lines.append)
    assert [row["state"] for row in result.rows] == ["complete", "fail", "complete", "complete"]
    assert result.rows[1]["note"] == "MemoryError: out of memory"
    assert "trial 1: failed: MemoryError: out of memory" in lines


def test_failures_in_a_row_stop_the_search_with_one_line(tmp_path, monkeypatch):
    def broken(config, run_dir, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(tune.train, "run", broken)
    result = CliRunner().invoke(main, ["tune", str(tune_config(tmp_path, trials=5)), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"error: tune: 3 trials in a row failed, the last with: RuntimeError: a bug; see {tmp_path}/r/tune/trials.csv"
    )


def test_a_pruned_trial_stops_after_the_epoch_the_pruner_rejects():
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    first = study.ask()
    for step in range(3):
        first.report(0.5, step)
    study.tell(first, 0.5)

    class Model:
        stop_training = False

    better = tune._Pruning(study.ask(), "val_loss")
    better.set_model(Model())
    better.on_epoch_end(0, {"val_loss": 0.4})
    better.on_epoch_end(1, {"val_loss": 0.45})  # the pruner compares the trial's best value so far
    assert not better.pruned and not better.model.stop_training and better.steps == 2
    worse = tune._Pruning(study.ask(), "val_loss")
    worse.set_model(Model())
    worse.on_epoch_end(0, {"val_loss": float("nan")})  # not reported
    worse.on_epoch_end(1, {"val_loss": 0.9})
    assert worse.pruned and worse.model.stop_training and worse.steps == 1
    # Before train.min_steps training steps, nothing is pruned (the plateau of a small data set's first steps).
    waiting = tune._Pruning(study.ask(), "val_loss", min_steps=100)
    model = Model()
    model.optimizer = type("Optimizer", (), {"iterations": np.int64(60)})()
    waiting.set_model(model)
    waiting.on_epoch_end(0, {"val_loss": 0.9})
    assert not waiting.pruned
    model.optimizer.iterations = np.int64(120)
    waiting.on_epoch_end(1, {"val_loss": 0.9})
    assert waiting.pruned


def test_the_search_prunes_a_lagging_trial_only_once_it_stops_improving():
    # Five finished trials that fell fast; a sixth on a slow start that is still improving is kept, one that has
    # stopped improving is pruned.
    study = optuna.create_study(pruner=tune._pruner())
    for _ in range(5):
        trial = study.ask()
        for step, value in enumerate([0.6, 0.48, 0.46, 0.47]):
            trial.report(value, step)
        study.tell(trial, 0.46)
    slow = study.ask()
    for step, value in enumerate([0.692, 0.684, 0.652, 0.596]):
        slow.report(value, step)
        assert not slow.should_prune()
    stuck = study.ask()
    pruned = []
    for step, value in enumerate([0.692, 0.691, 0.690, 0.690]):
        stuck.report(value, step)
        pruned.append(stuck.should_prune())
    assert pruned == [False, False, True, True]


def test_a_study_refuses_another_config(tmp_path):
    path = tune_config(tmp_path, trials=1)
    run_dir = tmp_path / "run"
    tune.run(load_config(path), run_dir)
    with pytest.raises(ConfigError, match=r"study 'tune' was started from another config \(model.cell: 'lstm' -> "):
        tune.run(load_config(path, ["model.cell=gru"]), run_dir)
    # The budget is not part of it; another study name starts afresh.
    tune.run(load_config(path, ["tune.trials=2"]), run_dir)
    assert len(tune.run(load_config(path, ["model.cell=gru"]), run_dir, study_name="gru").rows) == 1


@pytest.mark.parametrize(
    "option, message",
    [
        (["--storage", "."], "error: --storage: "),
        (
            ["--storage", "postgresql://user:secret@127.0.0.1:1/db"],
            "error: --storage: cannot use postgresql://user:***@",
        ),
        (["--trials", "0"], "error: Invalid value for '--trials'"),
        (["--set", "tune.space.model.unit=[1, 2]"], "error: unknown key 'tune.space.model.unit' (did you mean"),
        (["--set", "tune.space.data.train=['x']"], "error: tune.space.data.train: a search varies keys of the"),
        (["--set", "tune.space={}"], "error: tune.space: empty; name the keys to search"),
    ],  # fmt: skip
)
def test_bad_options_are_one_line(tmp_path, option, message):
    result = CliRunner().invoke(main, ["tune", str(tune_config(tmp_path)), "--run-dir", str(tmp_path / "r"), *option])
    assert result.exit_code != 0
    assert result.output.startswith(message), result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "secret" not in result.output


def test_a_trial_of_a_killed_worker_is_failed_and_queued_with_its_run_directory(tmp_path):
    root = tmp_path / "tune"
    root.mkdir()
    config = load_config(tune_config(tmp_path, trials=2))
    study = tune._study(config, tune._storage(root, ""), "tune")
    trial = study.ask({"model.units": optuna.distributions.CategoricalDistribution([4, 8])})
    trial.set_user_attr("worker", f"{socket.gethostname()}:999999999")  # no such process
    trial.set_user_attr("worker_lock", str(root / "workers" / "gone"))
    trial.set_user_attr("run_dir", str(root / "trials" / "0"))
    tune._fail_abandoned(study)
    failed, queued = study.get_trials(deepcopy=False)
    assert failed.state == optuna.trial.TrialState.FAIL
    assert queued.state == optuna.trial.TrialState.WAITING
    assert queued.user_attrs["run_dir"] == str(root / "trials" / "0") and queued.user_attrs["retry_of"] == 0
    # The queued trial is the next one asked, with the failed one's value; a live worker's trial is left alone.
    with tune._worker(root) as lock:
        live = study.ask()
        assert tune.trial_config(config, live).model.units == trial.params["model.units"]
        live.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        live.set_user_attr("worker_lock", str(lock))
        tune._fail_abandoned(study)
        assert study.get_trials(deepcopy=False)[-1].state == optuna.trial.TrialState.RUNNING


# --- several processes -----------------------------------------------------------------------------------------


def rnnpipe(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)  # fmt: skip


def finished(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out


def trained_once(run_dirs: list[Path]) -> None:
    """Each trial's run directory trained once: no epoch of its history repeats."""
    for run_dir in run_dirs:
        with open(run_dir / "history.csv", newline="", encoding="utf-8") as f:
            epochs = [row["epoch"] for row in csv.DictReader(f)]
        assert epochs and len(epochs) == len(set(epochs)), (run_dir, epochs)


@pytest.mark.slow
def test_two_workers_on_one_machine_share_the_study(tmp_path):
    path = tune_config(tmp_path, trials=6)
    run_dir = tmp_path / "run"
    workers = [rnnpipe("tune", path, "--run-dir", run_dir) for _ in range(2)]
    outputs = [finished(worker) for worker in workers]
    study = study_of(run_dir)
    counted = [t for t in study.get_trials(deepcopy=False) if t.state in tune.FINISHED]
    assert len(counted) == 6
    assert len({t.number for t in counted}) == 6 and len({t.user_attrs["run_dir"] for t in counted}) == 6
    assert {t.user_attrs["worker"] for t in counted} == {f"{socket.gethostname()}:{w.pid}" for w in workers}
    others = [t.user_attrs.get("note", "") for t in study.get_trials() if t.state not in tune.FINISHED]
    assert all(note.startswith("not run") for note in others), others
    trained_once([Path(t.user_attrs["run_dir"]) for t in counted])
    assert any("tune: 6 trials finished, 6 in the study" in out for out in outputs)


@pytest.mark.slow
def test_a_search_killed_mid_trial_resumes_it_on_rerun(tmp_path):
    # Long enough trials to be killed in: up to 60 epochs of the tiny model, no early stop.
    path = tune_config(tmp_path, trials=2, train={"epochs": 60, "patience": 0})
    run_dir = tmp_path / "run"
    worker = rnnpipe("tune", path, "--run-dir", run_dir)
    history = run_dir / "tune" / "trials" / "0" / "history.csv"
    deadline = time.monotonic() + 300
    while not (history.exists() and history.read_text().count("\n") >= 4):
        assert time.monotonic() < deadline and worker.poll() is None, "the first trial never got going"
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    again = finished(rnnpipe("tune", path, "--run-dir", run_dir))
    assert "trial 1 (0 of 2 finished, again after trial 0)" in again
    trials = study_of(run_dir).get_trials(deepcopy=False)
    assert [t.state.name for t in trials[:2]] == ["FAIL", "COMPLETE"]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["run_dir"] == str(history.parent)
    assert len([t for t in trials if t.state in tune.FINISHED]) == 2
    # The retried trial resumed the killed one's training: its history goes on from where the kill left it.
    with open(history, newline="", encoding="utf-8") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert sorted(set(epochs)) == list(range(60)) and len(epochs) < 2 * 60


def _postgres_binaries() -> Path | None:
    for folder in [Path(p).parent for p in filter(None, [shutil.which("pg_ctl")])] + sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), reverse=True
    ):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


@pytest.fixture
def postgres_url():
    """A PostgreSQL server of its own, in a temporary folder, on a free local port; stopped afterwards."""
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl; Debian's postgresql package)")
    folder = Path(tempfile.mkdtemp(prefix="rnnpipe-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root: Debian's package has a postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no postgres user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    subprocess.run([*as_user, binaries / "initdb", "-D", data, "-U", "rnnpipe", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, binaries / "pg_ctl", "-D", data, "-o", options, "-l", folder / "server.log", "-w",
                    "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://rnnpipe@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_study_through_postgresql(tmp_path, postgres_url):
    path = tune_config(tmp_path, trials=6)
    # Two machines, as far as the workers can tell: each its own run directory, the study in the database.
    run_dirs = [tmp_path / "machine-a", tmp_path / "machine-b"]
    workers = [rnnpipe("tune", path, "--run-dir", d, "--storage", postgres_url, "--study", "mr") for d in run_dirs]
    for worker in workers:
        finished(worker)
    study = optuna.load_study(study_name="mr", storage=postgres_url)
    counted = [t for t in study.get_trials(deepcopy=False) if t.state in tune.FINISHED]
    assert len(counted) == 6 and len({t.number for t in counted}) == 6
    used = {Path(t.user_attrs["run_dir"]).parents[2] for t in counted}
    assert used == set(run_dirs)  # both workers ran trials
    trained_once([Path(t.user_attrs["run_dir"]) for t in counted])
    assert not (run_dirs[0] / "tune" / "study.journal").exists()
