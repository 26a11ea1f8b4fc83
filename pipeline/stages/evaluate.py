"""Stage 3: evaluate the best checkpoint on `evaluate.split` and write metrics.json (the task's metrics: see
pipeline/tasks/).

With `data`, the checkpoint is scored on that file instead (labelled examples for sentiment, a text for next_char,
read with the config's data settings), and its results go to their own folder, never into the stage's:

    <run_dir>/evaluations/<name>/   metrics.json, the task's files (sentiment: predictions.csv and the figures) and
                                    inputs.json (the file's digest and the checkpoint's: what they were made from)

Like a stage, it is skipped while the file and the checkpoint are unchanged, and refuses to replace results made
from other inputs without `overwrite`.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pipeline import tasks
from pipeline.config import Config
from pipeline.data.text import Vocabulary
from pipeline.errors import DataError, RunDirError
from pipeline.run import artifacts, freshness, preflight, rundir
from pipeline.run.rundir import RunDir
from pipeline.training.model import load_checkpoint

# Where `rnnpipe evaluate --data` writes, inside the run directory.
EVALUATIONS = "evaluations"


@dataclasses.dataclass(frozen=True)
class EvaluateResult:
    metrics: dict
    line: str  # the task's one-line summary of the metrics
    skipped: bool = False
    path: Path | None = None  # the folder of an evaluation of another file (`data`)

    def summary(self) -> str:
        where = f" -> {self.path}" if self.path else ""
        return (f"evaluate: up to date, kept: {self.line}" if self.skipped else f"evaluate: {self.line}") + where


def run(config: Config, run_dir, overwrite: bool = False, data: str = "",
        progress: Callable[[int, int], None] | None = None) -> EvaluateResult:  # fmt: skip
    """Evaluate the run's best checkpoint on `evaluate.split`, or with `data` on that file (module docstring).
    `progress(done, total)` follows the scoring (examples, or characters for next_char)."""
    if data:
        return _run_on_file(config, run_dir, data, overwrite, progress)
    preflight.check(config, "evaluate")
    with rundir.opened(run_dir, config) as rd:
        task = tasks.get(config.task)
        complete = rd.metrics.exists() and all(path.exists() for path in task.evaluation_files(rd))
        decision = freshness.decide(rd, "evaluate", config, complete, overwrite)
        if not decision.run:
            metrics = artifacts.read_json(rd.metrics)
            return EvaluateResult(metrics, task.summary(metrics), skipped=True)
        vocab = Vocabulary.load(rd.require(rd.vocabulary, "tokenize"))
        model = load_checkpoint(rd.require(rd.best_model, "train"))
        splits = task.load_splits(config)
        split = config.evaluate.split
        data = {"train": splits.train, "validation": splits.validation, "test": splits.test}[split]
        if data is None:
            raise DataError(f"evaluate.split: the data has no {split!r} split (set data.test / data.test_fraction)")
        start = time.monotonic()
        metrics = task.evaluate(model, config, data, vocab, rd.read_labels(), rd, progress=progress)
        metrics = {"split": split, **metrics, "seconds": round(time.monotonic() - start, 2)}
        artifacts.write_json(rd.metrics, metrics)
        freshness.record(rd, "evaluate", config)
        return EvaluateResult(metrics, task.summary(metrics))


def _run_on_file(config: Config, run_dir, spec: str, overwrite: bool,
                 progress: Callable[[int, int], None] | None) -> EvaluateResult:  # fmt: skip
    preflight.check(config, "evaluate", spec)
    with rundir.opened(run_dir, config) as rd:
        task = tasks.get(config.task)
        # The checkpoint must be what this config trains; evaluate.split does not reach these results.
        freshness.require_inputs(rd, "evaluate", config)
        inputs = {key: value for key, value in freshness.inputs(rd, "evaluate", config).items()
                  if key != "evaluate.split"}  # fmt: skip
        inputs.update(freshness.file_inputs(spec))
        out = RunDir(rd.path / EVALUATIONS / _folder_name(spec))
        record = out.path / "inputs.json"
        if record.exists():
            recorded = artifacts.read_json(record)
            changes = freshness.differences(recorded["inputs"], inputs, rd)
            complete = out.metrics.exists() and all(path.exists() for path in task.evaluation_files(out))
            if not changes and complete:
                metrics = artifacts.read_json(out.metrics)
                return EvaluateResult(metrics, task.summary(metrics), skipped=True, path=out.path)
            if changes and not overwrite:
                what = (f"of {recorded['data']}, not of {spec}" if recorded["data"] != spec else
                        f"made from other inputs ({'; '.join(changes[:3])})")  # fmt: skip
                raise RunDirError(f"evaluate --data: {out.path} holds the evaluation {what}; use --overwrite to "
                                  f"replace it")  # fmt: skip
        elif out.path.exists() and not overwrite:
            raise RunDirError(f"evaluate --data: {out.path} exists and was not written by evaluate; use --overwrite "
                              f"to replace it")  # fmt: skip
        vocab = Vocabulary.load(rd.require(rd.vocabulary, "tokenize"))
        labels = rd.read_labels()
        split = task.read_file(config, spec, labels)
        model = load_checkpoint(rd.require(rd.best_model, "train"))
        start = time.monotonic()
        # Written beside the folder and moved in whole: an evaluation that fails leaves the one before it as it was.
        with artifacts.staged_path(out.path) as staged:
            staged.mkdir()
            metrics = task.evaluate(model, config, split, vocab, labels, rd, into=RunDir(staged), progress=progress)
            # "split" names what was scored, for the task's summary line: here the file, as given.
            metrics = {"split": spec, **metrics, "seconds": round(time.monotonic() - start, 2)}
            artifacts.write_json(staged / "metrics.json", metrics)
            artifacts.write_json(staged / "inputs.json", {"data": spec, "inputs": inputs})
            shutil.rmtree(out.path, ignore_errors=True)
        return EvaluateResult(metrics, task.summary(metrics), path=out.path)


def _folder_name(spec: str) -> str:
    """The evaluation folder of a file, folder or glob: its name without the extension, in safe characters."""
    name = Path(spec).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "data"
