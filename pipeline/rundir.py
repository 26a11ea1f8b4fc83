"""The run directory: one folder per experiment holding everything a later stage, or a user, needs to reuse it.

    <run_dir>/
      run.json                 task and rnnpipe version that created the folder (guards against mixing tasks)
      config.toml              the resolved config of the last stage run, every key written out
      vocabulary.json          tokenize: tokens (index = id) and the settings that produced them
      labels.json              tokenize (sentiment): class names, index = class id
      checkpoints/best.keras   train: the best model on validation loss
      checkpoints/backup/      train: Keras BackupAndRestore state, for resuming an interrupted run
      history.csv, training_curves.png, logs/ (TensorBoard)
      train_state.json         train: how training ended (completed, time budget, early stop, diverged, interrupted)
      members/<k>/             train, model.ensemble > 1: member k's checkpoints, history, logs and train_state.json
      metrics.json             evaluate (plus confusion_matrix.png for sentiment)
      export/<name>/<version>/ export: SavedModel in the TF Serving layout
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pipeline import __version__, artifacts
from pipeline.config import Config, flatten, config_from_dict, config_to_dict, to_toml
from pipeline.errors import RunDirError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_info(self) -> Path:
        return self.path / "run.json"

    @property
    def config(self) -> Path:
        return self.path / "config.toml"

    @property
    def vocabulary(self) -> Path:
        return self.path / "vocabulary.json"

    @property
    def labels(self) -> Path:
        return self.path / "labels.json"

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
    def train_state(self) -> Path:
        return self.path / "train_state.json"

    @property
    def members(self) -> Path:
        """An ensemble's members, each trained in members/<k>/ laid out like a run directory of its own."""
        return self.path / "members"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def confusion_matrix(self) -> Path:
        return self.path / "confusion_matrix.png"

    @property
    def exports(self) -> Path:
        return self.path / "export"

    def require(self, path: Path, stage: str) -> Path:
        """`path`, or a RunDirError telling the user which stage makes it."""
        if not path.exists():
            raise RunDirError(f"{path} not found: run `rnnpipe {stage}` on this run directory first")
        return path


def open_run_dir(path: str | os.PathLike, config: Config) -> RunDir:
    """Create or reopen a run directory for `config`, refusing one made for a different task, and record the
    resolved config."""
    run_dir = RunDir(Path(path).absolute())
    if run_dir.path.exists() and not run_dir.path.is_dir():
        raise RunDirError(f"run directory {run_dir.path} exists and is not a folder")
    if run_dir.run_info.exists():
        info = artifacts.read_json(run_dir.run_info)
        if info.get("task") != config.task:
            raise RunDirError(
                f"run directory {run_dir.path} holds a {info.get('task')!r} run; this config is task "
                f"{config.task!r}: choose another --run-dir"
            )
    else:
        artifacts.write_json(run_dir.run_info, {"task": config.task, "rnnpipe_version": __version__})
    if run_dir.config.exists():
        _log_config_changes(config_from_dict(tomllib.loads(run_dir.config.read_text(encoding="utf-8"))), config)
    artifacts.write_text(run_dir.config, to_toml(config))
    return run_dir


def _log_config_changes(old: Config, new: Config) -> None:
    old_flat, new_flat = flatten(config_to_dict(old)), flatten(config_to_dict(new))
    changed = [f"{key}: {old_flat[key]!r} -> {new_flat[key]!r}" for key in new_flat if old_flat[key] != new_flat[key]]
    if changed:
        logger.warning("config differs from the one recorded in the run directory; %s", "; ".join(changed))


def default_run_dir(config_path: str | os.PathLike) -> Path:
    """runs/<config file stem>, relative to the working directory."""
    return Path("runs") / Path(config_path).stem


def as_run_dir(run_dir: "RunDir | str | os.PathLike", config: Config) -> RunDir:
    """Stages accept an opened RunDir (from the CLI) or a path (from Python), which they open themselves."""
    return run_dir if isinstance(run_dir, RunDir) else open_run_dir(run_dir, config)
