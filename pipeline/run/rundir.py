"""The run directory: one folder per experiment holding everything a later stage, or a user, needs to reuse it.

    <run_dir>/
      run.json                 task and rnnpipe version that created the folder (guards against mixing tasks)
      config.toml              the resolved config of the last stage run, every key written out
      stages.json              what produced each stage's results (pipeline.run.freshness): skipped when unchanged
      vocabulary.json          tokenize: tokens (index = id) and the settings that produced them
      labels.json              tokenize (sentiment): class names, index = class id
      vectors.npy, vectors.json  tokenize, with pretrained vectors: a row per token, and what the file covered
      checkpoints/best.keras   train: the best model on `train.monitor`
      checkpoints/backup/      train: Keras BackupAndRestore state, for resuming an interrupted run
      history.csv, training_curves.png, logs/ (TensorBoard)
      train_state.json         train: how training ended (completed, time budget, early stop, diverged, interrupted)
      calibration.json         train (sentiment, train.calibration): the temperature fitted on the validation split
      pretrain/                pretrain (data.unlabelled): encoder.weights.h5 (the language models' best weights),
                               state.json (perplexities, how it ended), history.csv, training_curves.png,
                               backup/ while it runs
      members/<k>/             train, model.ensemble > 1: member k's checkpoints, history, logs and train_state.json
      metrics.json             evaluate (plus, for sentiment, confusion_matrix.png and predictions.csv: each
                               example's text, label, predicted class and its probability)
      evaluations/<name>/      evaluate --data: the same files for another file, and inputs.json (what made them)
      export/<name>/<version>/ export: SavedModel in the TF Serving layout
      .lock                    held while a stage writes here; names the process holding it

Paths recorded inside the folder are relative to it, so a copied folder is self-contained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tomllib

from pipeline import __version__
from pipeline.config import Config, config_from_dict, config_to_dict, flatten, to_toml
from pipeline.errors import ConfigError, RunDirError, shorten
from pipeline.run import artifacts, cluster

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunDir:
    path: Path
    # The open lock file while this process holds the folder's lock (see `opened`); not part of the identity.
    lock: object = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def run_info(self) -> Path:
        return self.path / "run.json"

    @property
    def config(self) -> Path:
        return self.path / "config.toml"

    @property
    def stages(self) -> Path:
        return self.path / "stages.json"

    @property
    def vocabulary(self) -> Path:
        return self.path / "vocabulary.json"

    @property
    def labels(self) -> Path:
        return self.path / "labels.json"

    @property
    def vectors(self) -> Path:
        return self.path / "vectors.npy"

    @property
    def vectors_report(self) -> Path:
        return self.path / "vectors.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_model(self) -> Path:
        return self.checkpoints / "best.keras"

    @property
    def backup(self) -> Path:
        return self.checkpoints / "backup"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def curves(self) -> Path:
        return self.path / "training_curves.png"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def calibration(self) -> Path:
        return self.path / "calibration.json"

    @property
    def reliability_diagram(self) -> Path:
        return self.path / "reliability_diagram.png"

    @property
    def train_state(self) -> Path:
        return self.path / "train_state.json"

    @property
    def pretrain(self) -> Path:
        return self.path / "pretrain"

    @property
    def pretrained_encoder(self) -> Path:
        return self.pretrain / "encoder.weights.h5"

    @property
    def members(self) -> Path:
        """An ensemble's members, each trained in members/<k>/ laid out like a run directory of its own."""
        return self.path / "members"

    def member(self, k: int) -> RunDir:
        return RunDir(self.members / str(k), self.lock)

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def confusion_matrix(self) -> Path:
        return self.path / "confusion_matrix.png"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.csv"

    @property
    def exports(self) -> Path:
        return self.path / "export"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    def relative(self, path: Path) -> str:
        """`path` as recorded inside the folder: relative to it."""
        return os.path.relpath(path, self.path)

    def resolve(self, recorded: str) -> Path:
        """A path recorded inside the folder, made absolute again."""
        return self.path / recorded

    def require(self, path: Path, stage: str) -> Path:
        """`path`, or a RunDirError telling the user which stage makes it."""
        if not path.exists():
            raise RunDirError(f"{path} not found: run `rnnpipe {stage}` on this run directory first")
        return path

    def read_labels(self) -> tuple[str, ...]:
        """The class names tokenize recorded, or () for a task without classes."""
        return tuple(artifacts.read_json(self.labels)) if self.labels.exists() else ()


_NOT_LOCKED_WORKER = "worker"


@contextlib.contextmanager
def opened(run_dir: RunDir | str | os.PathLike, config: Config) -> Iterator[RunDir]:
    """The run directory for `config`, created if needed, with this process holding its exclusive lock throughout.

    A RunDir this process already holds is used as it is, so `rnnpipe run` keeps the lock across all its stages.
    The folder must not hold a run of another task; the resolved config is recorded in config.toml."""
    if isinstance(run_dir, RunDir) and run_dir.lock is not None:
        yield run_dir
        return
    path = Path(run_dir.path if isinstance(run_dir, RunDir) else run_dir).absolute()
    if not cluster.is_chief_process():
        # Another worker of a multi-worker training writes only to its scratch folder; the chief holds the lock.
        yield RunDir(path, lock=_NOT_LOCKED_WORKER)
        return
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} exists and is not a folder")
    created = [folder for folder in (path, *path.parents) if not folder.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot create run directory {path}: {error.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunDirError(f"run directory {path} is read-only for this user; every stage records its state there "
                          f"(choose another --run-dir, or copy the folder somewhere writable)")  # fmt: skip
    try:
        with _exclusive_lock(path / ".lock") as lock:
            rd = RunDir(path, lock)
            _check_task(rd, config)
            _record_config(rd, config)
            yield rd
    except BaseException:
        _remove_if_nothing_made(created)
        raise


# What `opened` itself writes into a run directory; a folder it created that holds nothing else when the command
# fails is removed again, so that a command failing before any work leaves nothing behind.
_BOOKKEEPING = frozenset({".lock", "run.json", "config.toml"})


def _remove_if_nothing_made(created: list[Path]) -> None:
    if not created or not created[0].is_dir() or set(os.listdir(created[0])) - _BOOKKEEPING:
        return
    for name in _BOOKKEEPING:
        (created[0] / name).unlink(missing_ok=True)
    for folder in created:  # the run directory, then the parents made for it, while they are empty
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def _exclusive_lock(path: Path):
    """artifacts.flock on `path`, without waiting. The file names the holder for whoever finds it locked."""
    held = contextlib.ExitStack()
    try:
        handle = held.enter_context(artifacts.flock(path))
    except BlockingIOError:
        raise RunDirError(f"run directory {path.parent} is in use by {_holder(path.read_text(encoding='utf-8'))}; "
                          f"wait for it to finish or choose another --run-dir") from None  # fmt: skip
    except OSError as error:
        raise RunDirError(f"cannot write to run directory {path.parent}: {error.strerror}") from None
    with held:
        handle.seek(0)
        handle.truncate()
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        command = " ".join(["rnnpipe", *sys.argv[1:3]]) if sys.argv else "rnnpipe"
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started,
                                 "command": shorten(command, 80)}) + "\n")  # fmt: skip
        handle.flush()
        try:
            yield handle
        finally:
            handle.truncate(0)


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['started']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def _check_task(rd: RunDir, config: Config) -> None:
    if rd.run_info.exists():
        info = artifacts.read_json(rd.run_info)
        if info.get("task") != config.task:
            raise RunDirError(f"run directory {rd.path} holds a {info.get('task')!r} run; this config is task "
                              f"{config.task!r}: choose another --run-dir")  # fmt: skip
    else:
        artifacts.write_json(rd.run_info, {"task": config.task, "rnnpipe_version": __version__})


def _record_config(rd: RunDir, config: Config) -> None:
    if rd.config.exists():
        try:
            old = config_from_dict(tomllib.loads(rd.config.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, ConfigError):
            old = None
        if old is not None and old != config:
            logger.info("config differs from the one recorded in %s: %s", rd.config, differences(old, config))
    artifacts.write_text(rd.config, to_toml(config))


def differences(old: Config, new: Config, limit: int = 3) -> str:
    """'key: old -> new; ...' for the keys that differ, the first `limit` of them."""
    old_flat, new_flat = flatten(config_to_dict(old)), flatten(config_to_dict(new))
    changed = [f"{key}: {shorten(repr(old_flat[key]), 60)} -> {shorten(repr(new_flat[key]), 60)}"
               for key in new_flat if old_flat.get(key) != new_flat[key]]  # fmt: skip
    more = f"; and {len(changed) - limit} more" if len(changed) > limit else ""
    return "; ".join(changed[:limit]) + more


def default_run_dir(config_path: str | os.PathLike) -> Path:
    """runs/<config file stem>, relative to the working directory."""
    return Path("runs") / Path(config_path).stem
