"""`rnnpipe tune`: a hyperparameter search over the config's `tune.space`, with Optuna.

Each trial is the config with values sampled for the space's keys (TPE sampling), trained as `rnnpipe train`
trains it, in a run directory of its own; its value is the best `train.monitor` on the validation split, the
figure that chooses checkpoints. The test split is never read. With `tune.pruning`, a trial stops after an epoch
where its validation figure is worse than the median of the earlier trials' at that epoch and has stopped improving
(`_pruner`), once past `train.min_steps` training steps.

    <run_dir>/tune/               (another study than the default: <run_dir>/tune-<name>/)
      study.journal           the study (Optuna's journal file storage; `storage` names another)
      trials/<n>/             trial n: a run directory (evaluate or export it like any other)
      tokenized/<digest>/     one tokenize per distinct set of vocabulary keys, shared by the trials that have them
      workers/                one lock file per running worker: what tells a killed worker's trial from a live one
      trials.csv              one row per trial: state, value, seconds, the sampled keys
      best.toml               the best trial's config: `rnnpipe run` takes it
      optimization_history.png, param_importances.png

The study outlives the command. Run again, the command continues it until `tune.trials` trials have finished
(completed or pruned); several processes, on one machine or (with a database `storage`) on several, can work on it
at once: each trial runs once, and the count stops at the total. A trial whose worker was killed is marked failed
and queued again with the same values and run directory, so its training resumes from its backup; Ctrl-C does
the same for the trial it stops. A trial that fails (diverges, runs out of memory, an invalid combination of
values) is recorded as failed and the search goes on; `MAX_FAILURES_IN_A_ROW` failures in a row stop it.

Trials are repeatable one by one (each run directory's config.toml trains it again), not as a sequence: the sampler
of each worker is seeded from the config's seed and the worker, since workers sharing a study must not sample alike.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import json
import logging
import math
import os
import re
import socket
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import keras
import optuna

from pipeline.config import Config, config_to_dict, flatten, replace, to_toml
from pipeline.errors import ConfigError, RunDirError, describe, shorten
from pipeline.run import artifacts, freshness
from pipeline.run.rundir import RunDir
from pipeline.stages import tokenize, train
from pipeline.training import plots

logger = logging.getLogger(__name__)

DEFAULT_STUDY = "tune"
MAX_FAILURES_IN_A_ROW = 3
# A trial is RUNNING from Optuna's `ask` until it is told; its worker names itself in the trial at once, so a RUNNING
# trial without a worker this much later was left by a worker killed in between.
UNCLAIMED_SECONDS = 600
# Database storages: each running trial's heartbeat, and how long without one makes it stale (a worker on
# another machine that died).
HEARTBEAT_SECONDS = 60
# A trial is pruned only once its monitored value has improved by less than this over this many epochs (_pruner).
PRUNE_PATIENCE = 2
PRUNE_MIN_DELTA = 0.005
GRACE_SECONDS = 300
# Attempts to open a database storage whose tables another worker is creating at the same moment.
SCHEMA_ATTEMPTS = 5
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclasses.dataclass(frozen=True)
class TuneResult:
    rows: list[dict]  # per trial: number, state, value, seconds, params, note
    best: dict | None  # the best trial's row
    monitor: str
    root: str
    seconds: float
    figures: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        keys = sorted({key for row in self.rows for key in row["params"]})
        header = f"{'trial':>5}  {'state':<8}  {self.monitor:>12}  {'seconds':>7}  " + "  ".join(keys)
        lines = [header]
        for row in self.rows:
            value = f"{row['value']:>12.4f}" if row["value"] is not None else f"{'-':>12}"
            params = "  ".join(f"{_shown(row['params'].get(key)):>{len(key)}}" for key in keys)
            seconds = f"{row['seconds']:>7.0f}" if row["seconds"] is not None else f"{'-':>7}"
            note = f"  ({row['note']})" if row["note"] else ""
            lines.append(f"{row['number']:>5}  {row['state']:<8}  {value}  {seconds}  {params}{note}")
        finished = sum(row["state"] in ("complete", "pruned") for row in self.rows)
        if self.best:
            lines.append(f"best: trial {self.best['number']}, {self.monitor} {self.best['value']:.4f} -> "
                         f"{Path(self.root) / 'best.toml'} (run directory {self.best['run_dir']})")  # fmt: skip
        running = sum(row["state"] == "running" for row in self.rows)
        running = f", {running} running in other workers" if running else ""
        lines.append(f"tune: {finished} trials finished{running}, {len(self.rows)} in the study; this run took "
                     f"{self.seconds:.0f} s -> {self.root}")  # fmt: skip
        return lines


def study_folder(run_dir, study_name: str = DEFAULT_STUDY) -> Path:
    """<run_dir>/tune/ for the default study, <run_dir>/tune-<name>/ for another: each study's trials apart."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", study_name):
        raise ConfigError(f"--study: a name of letters, digits, '_', '.' and '-' (at most 100), got "
                          f"{shorten(repr(study_name), 60)}")  # fmt: skip
    folder = "tune" if study_name == DEFAULT_STUDY else f"tune-{study_name}"
    return Path(getattr(run_dir, "path", run_dir)).absolute() / folder


def _shown(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run(config: Config, run_dir, storage: str = "", study_name: str = DEFAULT_STUDY,
        on_event: Callable[[str], None] | None = None) -> TuneResult:  # fmt: skip
    """Search `config.tune.space` until `config.tune.trials` trials of the study have finished, or
    `config.tune.timeout` seconds have passed (module docstring); `on_event(line)` for each trial's start and end.
    `storage`: an SQLAlchemy URL (postgresql://..., sqlite:///...) or a journal file path; default the run
    directory's journal."""
    if not config.tune.space:
        raise ConfigError("tune.space: empty; name the keys to search in a [tune.space] table")
    root = study_folder(run_dir, study_name)
    say = on_event or (lambda line: None)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures reach the user as our one-line notes
    start = time.monotonic()
    backend = _storage(root, storage)  # a bad --storage is refused before anything is written
    with _worker(root) as worker:
        study = _study(config, backend, study_name)
        try:
            _search(study, config, root, worker, start, say)
        except KeyboardInterrupt:
            for line in report(study, config, root, time.monotonic() - start).lines():
                say(line)
            raise
    return report(study, config, root, time.monotonic() - start)


def _search(study: optuna.Study, config: Config, root: Path, worker: str, start: float, say) -> None:
    failures = 0
    while True:
        _fail_abandoned(study)
        if _active(study) >= config.tune.trials:
            return
        if config.tune.timeout and time.monotonic() - start >= config.tune.timeout:
            say(f"tune: the time budget ({config.tune.timeout:g} s) is spent; no new trial starts")
            return
        objective = _Objective(config, root, worker, say)
        try:
            study.optimize(objective, n_trials=1, catch=(_TrialFailed, _Surplus))
        except KeyboardInterrupt:
            if objective.trial is not None:
                frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == objective.trial.number)
                _retry(study, frozen, "interrupted (Ctrl-C)")
            raise
        if objective.surplus:
            return
        failures = failures + 1 if objective.failed else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise RunDirError(f"tune: {failures} trials in a row failed, the last with: {objective.failed}; see "
                              f"{root / 'trials.csv'}")  # fmt: skip


class _TrialFailed(Exception):
    """A trial that failed; the reason is in the trial's "note" attribute."""


class _Surplus(Exception):
    """Another worker started the study's last trial first."""


class _Objective:
    def __init__(self, config: Config, root: Path, worker: Path, say):
        self.config, self.root, self.worker, self.say = config, root, worker, say
        self.trial = None
        self.failed = ""
        self.surplus = False

    def __call__(self, trial: optuna.Trial) -> float:
        self.trial = trial
        # The lock first: another worker takes a trial that names its worker but no lock for an abandoned one.
        trial.set_user_attr("worker_lock", str(self.worker))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if _rank(trial) >= self.config.tune.trials:
            self.surplus = True
            trial.set_user_attr("note", "not run: the study had its trials")
            raise _Surplus()
        run_dir = Path(trial.user_attrs.get("run_dir") or self.root / "trials" / str(trial.number))
        trial.set_user_attr("run_dir", str(run_dir))
        started = time.monotonic()
        try:
            config = trial_config(self.config, trial)
            shown = ", ".join(f"{key}={_shown(value)}" for key, value in trial.params.items())
            finished = len(trial.study.get_trials(deepcopy=False, states=FINISHED))
            retry = f", again after trial {trial.user_attrs['retry_of']}" if "retry_of" in trial.user_attrs else ""
            self.say(f"trial {trial.number} ({finished} of {self.config.tune.trials} finished{retry}): {shown}")
            _tokenized(config, self.root, run_dir)
            pruning = _Pruning(trial, config.train.monitor, config.train.min_steps)
            result = train.run(config, run_dir, callbacks=[pruning])
        except Exception as error:  # a setting that fails (out of memory among them); MAX_FAILURES_IN_A_ROW stops a bug
            return self._fail(trial, _one_line(error), started)
        seconds = round(time.monotonic() - started, 1)
        trial.set_user_attr("seconds", seconds)
        if result.status == "diverged":
            return self._fail(trial, f"diverged (best {result.monitor} {result.best:.4f} before it)", started)
        if pruning.pruned:
            trial.set_user_attr("note", f"pruned after epoch {pruning.steps}")
            self.say(f"trial {trial.number}: pruned after epoch {pruning.steps}, {config.train.monitor} "
                     f"{result.best:.4f}, {seconds:.0f} s")  # fmt: skip
            raise optuna.TrialPruned()
        best = _best_value(trial.study)
        better = best is None or (result.best > best if _maximize(config) else result.best < best)
        self.say(f"trial {trial.number}: {config.train.monitor} {result.best:.4f}"
                 f"{' (best so far)' if better else f' (best {best:.4f})'}, {seconds:.0f} s")  # fmt: skip
        return result.best

    def _fail(self, trial, note: str, started: float):
        self.failed = note
        trial.set_user_attr("note", note)
        trial.set_user_attr("seconds", round(time.monotonic() - started, 1))
        self.say(f"trial {trial.number}: failed: {note}")
        raise _TrialFailed(note)


def _one_line(error: BaseException) -> str:
    return shorten(describe(error), 300)


def trial_config(config: Config, trial: optuna.Trial) -> Config:
    """The config with the trial's values for the keys of its space (a ConfigError for a combination the config
    refuses)."""
    values = {}
    for key in config.tune.space:
        if key.choices:
            values[key.key] = trial.suggest_categorical(key.key, list(key.choices))
        elif isinstance(key.low, int):
            values[key.key] = trial.suggest_int(key.key, key.low, key.high, step=key.step or 1, log=key.log)
        else:
            values[key.key] = trial.suggest_float(key.key, key.low, key.high, step=key.step, log=key.log)
    return replace(config, **values)


class _Pruning(keras.callbacks.Callback):
    """Reports the monitored validation figure after each epoch (numbered on across an ensemble's members) and
    stops training when the pruner says so; the stage's own callbacks have checkpointed that epoch by then. Like
    early stopping, it waits for `min_steps` training steps (`train.min_steps`): a small data set's first steps sit
    at the majority class, a plateau that says nothing of where a trial ends."""

    def __init__(self, trial: optuna.Trial, monitor: str, min_steps: int = 0):
        super().__init__()
        self.trial, self.monitor, self.min_steps = trial, monitor, min_steps
        self.steps = 0
        self.pruned = False

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), self.steps)
        self.steps += 1
        if self.min_steps and int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) < self.min_steps:
            return
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


def _tokenized(config: Config, root: Path, run_dir: Path) -> None:
    """Tokenize once per distinct set of tokenize inputs (shared by the trials that have them, and by the workers:
    the first to need it builds it while the others wait), then give the trial's run directory those results."""
    key = freshness.digest(freshness.inputs(RunDir(root), "tokenize", config))[:16]
    shared = root / "tokenized" / key
    shared.parent.mkdir(parents=True, exist_ok=True)
    with artifacts.flock(shared.parent / f"{key}.lock", wait=True):  # held while reading it too: `opened` never waits
        tokenize.run(config, shared)
        tokenize.reuse(config, shared, run_dir)


# --- the study -------------------------------------------------------------------------------------------------


def _study(config: Config, backend, name: str) -> optuna.Study:
    worker = f"{socket.gethostname()}:{os.getpid()}"
    sampler = optuna.samplers.TPESampler(seed=zlib.crc32(f"{config.seed}:{worker}".encode()), constant_liar=True)
    pruner = _pruner() if config.tune.pruning else optuna.pruners.NopPruner()
    direction = "maximize" if _maximize(config) else "minimize"
    try:
        study = optuna.create_study(storage=backend, study_name=name, sampler=sampler, pruner=pruner,
                                    direction=direction, load_if_exists=True)  # fmt: skip
    except ValueError as e:  # a study of that name with another direction
        raise ConfigError(f"tune: study {name!r}: {e}; use --study NAME for a new one") from None
    if study.direction.name.lower() != direction:
        raise ConfigError(f"tune: study {name!r} was started to {study.direction.name.lower()} its value; this "
                          f"config's train.monitor {config.train.monitor!r} asks to {direction} it: use --study NAME "
                          f"for a new study")  # fmt: skip
    settings = _settings(config)
    recorded = study.user_attrs.get("config")
    if recorded is None:
        study.set_user_attr("config", settings)
    else:
        changed = _changed(recorded, settings)
        if changed:
            raise ConfigError(f"tune: study {name!r} was started from another config ({changed}); use --study NAME "
                              f"for a new study, or the config it was started from")  # fmt: skip
    return study


def _storage(root: Path, storage: str):
    if not storage:
        root.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(root / "study.journal")))
    if "://" not in storage:
        path = Path(storage).expanduser().absolute()
        if path.is_dir():
            raise ConfigError(f"--storage: {shorten(str(path))} is a folder; a journal storage is a file")
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    import sqlalchemy.exc

    shown = "the URL"
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            shown = sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat's
                return optuna.storages.RDBStorage(
                    storage, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=lambda study, trial: _retry(study, trial,
                                                                               "its worker went silent"),
                )  # fmt: skip
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            # Workers started together on an empty database each create Optuna's tables; all but one lose the
            # race. Their next attempt finds the tables.
            error = e
            time.sleep(0.5 * (attempt + 1))
        except (sqlalchemy.exc.SQLAlchemyError, ValueError, ImportError) as e:
            error = e
            break
    raise ConfigError(f"--storage: cannot use {shorten(shown, 120)}: {_one_line(error)}") from None


def _pruner() -> optuna.pruners.BasePruner:
    """Median pruning, once five trials have finished, of a trial that has also stopped improving: worse at an
    epoch than the median of the finished trials there, and better by less than PRUNE_MIN_DELTA over its last
    PRUNE_PATIENCE epochs. The median alone stopped trials still on the slow start a small data set's first
    epochs can have, among them the best of a 20-trial search on MR (docs/recipes.md, "A search on MR")."""
    return _Stalled(optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))


class _Stalled(optuna.pruners.BasePruner):
    """Defers to `pruner` only for a trial whose best value of its last PRUNE_PATIENCE reports improves on its best
    before them by less than PRUNE_MIN_DELTA. (Optuna's PatientPruner defers only once the value got worse, so a
    trial creeping along a plateau is never pruned.)"""

    def __init__(self, pruner: optuna.pruners.BasePruner):
        self.pruner = pruner

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        values = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
        if len(values) <= PRUNE_PATIENCE:
            return False
        before, recent = values[:-PRUNE_PATIENCE], values[-PRUNE_PATIENCE:]
        if study.direction == optuna.study.StudyDirection.MINIMIZE:
            gain = min(before) - min(recent)
        else:
            gain = max(recent) - max(before)
        return gain < PRUNE_MIN_DELTA and self.pruner.prune(study, trial)


def _settings(config: Config) -> dict:
    """What must stay the same across the workers and runs of one study, as JSON values: everything but the
    budget."""
    flat = flatten(config_to_dict(config))
    flat["tune.space"] = {key.key: key.spec() for key in config.tune.space}
    kept = {key: value for key, value in flat.items() if key not in ("tune.trials", "tune.timeout")}
    return json.loads(json.dumps(kept))  # tuples as lists, as the storage gives them back


def _changed(recorded: dict, current: dict) -> str:
    """The keys both know that differ, as freshness describes them (a key of a newer or older rnnpipe is not a
    difference): '' when none."""
    common = [key for key in current if key in recorded and recorded[key] != current[key]]
    if not common:
        return ""
    return freshness.describe_changes({k: recorded[k] for k in common}, {k: current[k] for k in common})


def _maximize(config: Config) -> bool:
    return config.train.monitor == "val_accuracy"


def _active(study: optuna.Study) -> int:
    """Trials that count towards the total: finished, or running."""
    states = (*FINISHED, optuna.trial.TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states))


def _rank(trial: optuna.Trial) -> int:
    """The trial's place among the counted trials, in the order they started: two workers that started the last
    trial at once agree on which of them is one too many."""
    states = (*FINISHED, optuna.trial.TrialState.RUNNING)
    trials = trial.study.get_trials(deepcopy=False, states=states)
    order = sorted(trials, key=lambda t: (t.datetime_start or datetime.datetime.max, t.number))
    return [t.number for t in order].index(trial.number)


def _best_value(study: optuna.Study) -> float | None:
    try:
        return study.best_value
    except ValueError:  # no completed trial yet
        return None


def _retry(study: optuna.Study, trial: optuna.trial.FrozenTrial, why: str) -> None:
    """Mark `trial` failed (if it is not already) and queue it again with its values; on this machine also its run
    directory, so that its training resumes from its backup."""
    if trial.state == optuna.trial.TrialState.RUNNING:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    attrs = {"retry_of": trial.number, "retry_reason": why}
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir and str(trial.user_attrs.get("worker", "")).startswith(socket.gethostname() + ":"):
        attrs["run_dir"] = run_dir
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
    logger.info("trial %d %s: queued again", trial.number, why)


def _fail_abandoned(study: optuna.Study) -> None:
    """Trials left RUNNING by a worker of this machine that no longer runs (killed): failed, and queued again."""
    host = socket.gethostname() + ":"
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker is None:
            started = trial.datetime_start or now
            if (now - started).total_seconds() > UNCLAIMED_SECONDS:
                _retry(study, trial, "abandoned before it started")
            continue
        if worker.startswith(host) and not artifacts.locked(trial.user_attrs.get("worker_lock", "/nonexistent")):
            _retry(study, trial, "its worker stopped (killed?)")


# --- workers ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _worker(root: Path):
    """This process as a worker of the study: a lock file held for its lifetime (the kernel drops it however the
    process ends), which its trials name and `artifacts.locked` tests."""
    path = root / "workers" / f"{socket.gethostname()}-{os.getpid()}".replace("/", "-")
    path.parent.mkdir(parents=True, exist_ok=True)
    with artifacts.flock(path, wait=False):
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)


# --- the report ------------------------------------------------------------------------------------------------


def report(study: optuna.Study, config: Config, root: Path, seconds: float) -> TuneResult:
    """trials.csv, best.toml and the figures from the study as it stands (any worker may write them)."""
    rows = []
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"]: t for t in trials if "retry_of" in t.user_attrs}
    for trial in trials:
        note = trial.user_attrs.get("note", "")
        if trial.number in retried:
            again = retried[trial.number]
            note = f"{again.user_attrs.get('retry_reason', 'failed')}; queued again as trial {again.number}"
        rows.append({
            "number": trial.number, "state": trial.state.name.lower(),
            "value": trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
            "seconds": trial.user_attrs.get("seconds"), "params": dict(trial.params),
            "note": note, "run_dir": trial.user_attrs.get("run_dir", ""),
        })  # fmt: skip
    keys = [key.key for key in config.tune.space]
    with artifacts.staged_path(root / "trials.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "state", config.train.monitor, "seconds", *keys, "note", "run_dir"])
        for row in rows:
            writer.writerow([row["number"], row["state"], row["value"], row["seconds"],
                             *(row["params"].get(key) for key in keys), row["note"], row["run_dir"]])  # fmt: skip
    best = None
    figures: tuple[str, ...] = ()
    if _best_value(study) is not None:
        trial = study.best_trial
        best = next(row for row in rows if row["number"] == trial.number)
        best_config = replace(config, **trial.params)
        header = (f"# The best trial of study {study.study_name!r} ({root}): trial {trial.number}, "
                  f"{config.train.monitor} {trial.value:.4f} on the validation split.\n"
                  f"# Train it, evaluate it and export it: rnnpipe run best.toml\n")  # fmt: skip
        artifacts.write_text(root / "best.toml", header + to_toml(best_config))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            figures = plots.study_figures(study, root, f"{config.train.monitor} (validation)")
    return TuneResult(rows, best, config.train.monitor, str(root), seconds, figures)
