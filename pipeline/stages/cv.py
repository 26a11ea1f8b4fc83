"""`rnnpipe cv`: K-fold cross-validation of a sentiment config.

The labelled training data is split into K stratified folds (seeded by the config's seed: `data.cv_folds`,
`data.cv_fold`, pipeline.data.splits). Fold k is a run directory of its own, <run_dir>/cv<K>/fold<k>/, that
tokenizes and trains on the other folds (holding out `data.validation_fraction` of them for validation) and is
scored on fold k, which replaces the test split: every example is scored once, by the model that did not see it.
The folds run one after the other with the usual stages, so an interrupted run resumes where it stopped (finished
folds are kept, an interrupted training resumes) and a rerun with the same config only re-reads the results.

    <run_dir>/cv<K>/summary.json   every fold's metrics, and their mean and standard deviation
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pipeline import recipes
from pipeline.config import Config, replace
from pipeline.errors import ConfigError
from pipeline.run import artifacts
from pipeline.stages import evaluate, tokenize, train

# The figures summarized across folds (those a fold's metrics hold).
FIGURES = ("accuracy", "macro_f1", "balanced_accuracy")
MAX_FOLDS = 100
# Classes whose F1 the terminal summary lists (summary.json has them all).
SHOWN_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class CVResult:
    folds: list[dict]  # per fold: its metrics (as metrics.json) and seconds
    summary: dict  # figure -> {"mean", "std", "min", "max"}
    path: str

    def lines(self) -> list[str]:
        header = f"{'fold':>4}  " + "  ".join(f"{name:>17}" for name in FIGURES) + "  examples"
        rows = [header]
        for k, fold in enumerate(self.folds):
            rows.append(f"{k:>4}  " + "  ".join(f"{fold[name]:>17.4f}" for name in FIGURES) +
                        f"  {fold['examples']:>8,}")  # fmt: skip
        rows.append(f"{'mean':>4}  " + "  ".join(f"{self.summary[n]['mean']:>9.4f} ± {self.summary[n]['std']:.4f}"
                                                 for n in FIGURES))  # fmt: skip
        per_class = [
            (name.removeprefix("f1 "), value) for name, value in self.summary.items() if name.startswith("f1 ")
        ]
        if per_class:
            shown = ", ".join(f"{label} {v['mean']:.4f} ± {v['std']:.4f}" for label, v in per_class[:SHOWN_CLASSES])
            more = f" (and {len(per_class) - SHOWN_CLASSES} more in the file)" if len(per_class) > SHOWN_CLASSES else ""
            rows.append(f"F1 per class: {shown}{more}")
        if "ece_before" in self.summary:
            rows.append(f"calibration: ECE {self.summary['ece_before']['mean']:.4f} -> "
                        f"{self.summary['ece_after']['mean']:.4f} (mean over the folds)")  # fmt: skip
        return rows + [
            f"cv: {len(self.folds)} folds, {self.summary['train_seconds']:.0f} s of training in all -> {self.path}"
        ]


def run(config: Config, run_dir, folds: int, overwrite: bool = False,
        on_fold: Callable[[int, dict], None] | None = None, on_progress: Callable[[str], None] | None = None
        ) -> CVResult:  # fmt: skip
    """Train and score each of `folds` folds in turn (module docstring); `on_fold(k, metrics)` after each, and
    `on_progress` takes train's progress lines."""
    check(config, folds)
    root = Path(getattr(run_dir, "path", run_dir)) / f"cv{folds}"
    results = []
    for k in range(folds):
        fold_config = replace(config, **{"data.cv_folds": folds, "data.cv_fold": k, "evaluate.split": "test"})
        fold_dir = root / f"fold{k}"
        start = time.monotonic()
        tokenize.run(fold_config, fold_dir, overwrite=overwrite)
        trained = train.run(fold_config, fold_dir, overwrite=overwrite, on_progress=on_progress)
        metrics = evaluate.run(fold_config, fold_dir, overwrite=overwrite).metrics
        result = {**metrics, "fold": k, "train_seconds": trained.seconds, "seconds": round(time.monotonic() - start, 1)}
        results.append(result)
        if on_fold:
            on_fold(k, result)
    summary = summarize(results)
    artifacts.write_json(root / "summary.json", {"folds": folds, "seed": config.seed, "summary": summary,
                                                 "per_fold": results})  # fmt: skip
    return CVResult(results, summary, str(root / "summary.json"))


def check(config: Config, folds: int) -> None:
    if not recipes.get(config.task).labelled:
        raise ConfigError(f"cv: cross-validation needs labelled examples (task sentiment), not task {config.task!r}")
    if not 2 <= folds <= MAX_FOLDS:
        raise ConfigError(f"--folds must be from 2 to {MAX_FOLDS}, got {folds}")
    replace(config, **{"data.cv_folds": folds})  # the config's own checks: local files, no data.test


def summarize(results: list[dict]) -> dict:
    """Per figure, and per class's F1: mean, sample standard deviation, min and max over the folds."""

    def stats(values: list[float]) -> dict:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return {"mean": statistics.fmean(values), "std": std, "min": min(values), "max": max(values)}

    summary = {name: stats([r[name] for r in results]) for name in FIGURES}
    for label in results[0]["per_class"]:
        summary[f"f1 {label}"] = stats([r["per_class"][label]["f1"] for r in results])
    if all("calibration" in r for r in results):
        for name in ("ece_before", "ece_after"):
            summary[name] = stats([r["calibration"][name] for r in results])
    summary["train_seconds"] = math.fsum(r["train_seconds"] for r in results)
    return summary
