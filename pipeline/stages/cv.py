"""`rnnpipe cv`: K-fold cross-validation of a sentiment config.

The labelled training data is split into K stratified folds (seeded by the config's seed: `data.cv_folds`,
`data.cv_fold`, pipeline.data.splits). Fold k is a run directory of its own, <run_dir>/cv<K>/fold<k>/, that
tokenizes and trains on the other folds (holding out `data.validation_fraction` of them for validation) and is
scored on fold k, which replaces the test split: every example is scored once, by the model that did not see it.
The folds run one after the other with the usual stages, so an interrupted run resumes where it stopped (finished
folds are kept, an interrupted training resumes) and a rerun with the same config only re-reads the results.

    <run_dir>/cv<K>/summary.json   every fold's metrics, their mean and standard deviation, and "pooled": the
                                   figures of every example's out-of-fold prediction (the folds' confusion matrices
                                   and reliability tables summed; each example scored by the fold that held it out)
    <run_dir>/cv<K>/predictions.csv
                                   every example's out-of-fold prediction: the folds' predictions.csv, with a
                                   column for the fold
    <run_dir>/cv<K>/folds.png, confusion_matrix.png, reliability_diagram.png
                                   each fold's figures beside their mean; the pooled confusion matrix and, with
                                   calibration, the pooled reliability diagram (each fold's own temperature)
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline import recipes
from pipeline.config import Config, replace
from pipeline.errors import ConfigError
from pipeline.run import artifacts
from pipeline.run.rundir import RunDir
from pipeline.stages import evaluate, tokenize, train
from pipeline.training import calibration, metrics, plots

logger = logging.getLogger(__name__)

# The figures summarized across folds (those a fold's metrics hold), and, for two classes, ROC AUC.
FIGURES = ("accuracy", "macro_f1", "balanced_accuracy")
BINARY_FIGURES = ("roc_auc",)
MAX_FOLDS = 100
# Classes whose F1 the terminal summary lists (summary.json has them all).
SHOWN_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class CVResult:
    folds: list[dict]  # per fold: its metrics (as metrics.json) and seconds
    summary: dict  # figure -> {"mean", "std", "min", "max"}; "pooled": the out-of-fold figures
    path: str
    written: tuple[str, ...] = ()  # the figures and pooled predictions beside summary.json

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
        if "roc_auc" in self.summary:
            rows.append(f"ROC AUC: {self.summary['roc_auc']['mean']:.4f} ± {self.summary['roc_auc']['std']:.4f}")
        if "ece_before" in self.summary:
            rows.append(f"calibration: ECE {self.summary['ece_before']['mean']:.4f} -> "
                        f"{self.summary['ece_after']['mean']:.4f} (mean over the folds)")  # fmt: skip
        pooled = self.summary.get("pooled")
        if pooled:
            ece = (f"; ECE {pooled['ece_before']:.4f} -> {pooled['ece_after']:.4f}" if "ece_before" in pooled
                   else "")  # fmt: skip
            rows.append(f"out of fold ({pooled['examples']:,} examples, each scored once): accuracy "
                        f"{pooled['accuracy']:.4f}, macro F1 {pooled['macro_f1']:.4f}, balanced accuracy "
                        f"{pooled['balanced_accuracy']:.4f}{ece}")  # fmt: skip
        return rows + [
            f"cv: {len(self.folds)} folds, {self.summary['train_seconds']:.0f} s of training in all -> {self.path}"
            + (f" and {', '.join(Path(f).name for f in self.written)}" if self.written else "")
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
        scores = evaluate.run(fold_config, fold_dir, overwrite=overwrite).metrics
        result = {**scores, "fold": k, "train_seconds": trained.seconds, "seconds": round(time.monotonic() - start, 1)}
        results.append(result)
        if on_fold:
            on_fold(k, result)
    summary = summarize(results)
    artifacts.write_json(root / "summary.json", {"folds": folds, "seed": config.seed, "summary": summary,
                                                 "per_fold": results})  # fmt: skip
    figures = draw(summary, results, root)
    predictions = pool_predictions([RunDir(root / f"fold{k}").predictions for k in range(folds)], root)
    return CVResult(results, summary, str(root / "summary.json"), figures + predictions)


def pool_predictions(sources: list[Path], root: Path) -> tuple[str, ...]:
    """<root>/predictions.csv from the folds' predictions.csv, each row led by its fold; none (and nothing written)
    when a fold has none, as one evaluated before evaluate wrote them."""
    missing = [str(source) for source in sources if not source.exists()]
    if missing:
        logger.info("no pooled predictions.csv: %s missing (evaluate the fold again to write it)", missing[0])
        return ()
    target = root / "predictions.csv"
    with artifacts.staged_path(target) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        for k, source in enumerate(sources):
            with open(source, newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader)
                if k == 0:
                    writer.writerow(("fold", *header))
                writer.writerows((k, *row) for row in reader)
    return (str(target),)


def draw(summary: dict, results: list[dict], root: Path) -> tuple[str, ...]:
    """The figures of the module docstring; the paths written."""
    written = [root / "folds.png"]
    plots.fold_figures({name: [r[name] for r in results] for name in _figures(results)}, written[0])
    pooled = summary.get("pooled")
    if pooled:
        written.append(root / "confusion_matrix.png")
        plots.confusion_matrix_of_counts(pooled["confusion_matrix"], pooled["labels"], written[-1])
        if "reliability_before" in pooled:
            written.append(root / "reliability_diagram.png")
            plots.reliability_diagram(calibration.reliability_of(pooled["reliability_before"]),
                                      calibration.reliability_of(pooled["reliability_after"]),
                                      "after (each fold's temperature)", written[-1])  # fmt: skip
    return tuple(str(path) for path in written)


def check(config: Config, folds: int) -> None:
    if not recipes.get(config.task).labelled:
        raise ConfigError(f"cv: cross-validation needs labelled examples (task sentiment), not task {config.task!r}")
    if not 2 <= folds <= MAX_FOLDS:
        raise ConfigError(f"--folds must be from 2 to {MAX_FOLDS}, got {folds}")
    replace(config, **{"data.cv_folds": folds})  # the config's own checks: local files, no data.test


def _figures(results: list[dict]) -> tuple[str, ...]:
    """FIGURES, and BINARY_FIGURES where every fold has them (a fold of two classes)."""
    return FIGURES + tuple(name for name in BINARY_FIGURES if all(name in r for r in results))


def summarize(results: list[dict]) -> dict:
    """Per figure, and per class's F1: mean, sample standard deviation, min and max over the folds."""

    def stats(values: list[float]) -> dict:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return {"mean": statistics.fmean(values), "std": std, "min": min(values), "max": max(values)}

    summary = {name: stats([r[name] for r in results]) for name in _figures(results)}
    for label in results[0]["per_class"]:
        summary[f"f1 {label}"] = stats([r["per_class"][label]["f1"] for r in results])
    if all("calibration" in r for r in results):
        for name in ("ece_before", "ece_after"):
            summary[name] = stats([r["calibration"][name] for r in results])
    summary["train_seconds"] = math.fsum(r["train_seconds"] for r in results)
    # Up to metrics.MATRIX_CLASSES classes, and only matrices of the same classes add up.
    if all("confusion_matrix" in r for r in results) and len({tuple(r["labels"]) for r in results}) == 1:
        pooled = metrics.matrix_metrics(np.sum([r["confusion_matrix"] for r in results], axis=0), results[0]["labels"])
        tables = [r.get("calibration", {}) for r in results]
        if all("reliability_before" in t for t in tables):
            for when in ("before", "after"):
                pooled[f"reliability_{when}"] = calibration.add_sums([t[f"reliability_{when}"] for t in tables])
                pooled[f"ece_{when}"] = calibration.ece_of(pooled[f"reliability_{when}"])
        summary["pooled"] = pooled
    return summary
