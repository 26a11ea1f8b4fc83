"""Stage 3: evaluate the best checkpoint on `evaluate.split` and write metrics.json (the task's metrics: see
pipeline/tasks/)."""

from __future__ import annotations

import dataclasses
import time

from pipeline import tasks
from pipeline.config import Config
from pipeline.data.text import Vocabulary
from pipeline.errors import DataError
from pipeline.run import artifacts, freshness, preflight, rundir
from pipeline.training.model import load_checkpoint


@dataclasses.dataclass(frozen=True)
class EvaluateResult:
    metrics: dict
    line: str  # the task's one-line summary of the metrics
    skipped: bool = False

    def summary(self) -> str:
        return f"evaluate: up to date, kept: {self.line}" if self.skipped else f"evaluate: {self.line}"


def run(config: Config, run_dir, overwrite: bool = False) -> EvaluateResult:
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
        metrics = task.evaluate(model, config, data, vocab, rd.read_labels(), rd)
        metrics = {"split": split, **metrics, "seconds": round(time.monotonic() - start, 2)}
        artifacts.write_json(rd.metrics, metrics)
        freshness.record(rd, "evaluate", config)
        return EvaluateResult(metrics, task.summary(metrics))
