"""Training and pretraining curves, confusion matrices, reliability diagrams and a search's figures as PNG files
(matplotlib, headless), of a bounded size whatever the run."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pipeline.run import artifacts  # noqa: E402

logger = logging.getLogger(__name__)

# A confusion-matrix figure shows at most this many classes (900 cells, about 2,000 x 2,000 pixels).
PLOT_CLASSES = 30
LABEL_CHARS = 24


def training_curves(rows: list[dict], path: Path) -> None:
    """rows: history.csv rows (epoch, loss, val_loss, accuracy, val_accuracy)."""
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            if key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], style, marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    _save(fig, path)


def pretraining_curves(rows: list[dict], path: Path, directions: int) -> None:
    """rows: pretrain's history.csv rows (epoch, word_loss, val_word_loss: each direction's mean loss per word, summed
    over the `directions`; or from before those, loss and val_loss), and the held-out perplexity, exp(val_word_loss /
    directions): the geometric mean of the directions' perplexities."""
    if not rows:
        return
    training, held = ("word_loss", "val_word_loss") if "val_word_loss" in rows[0] else ("loss", "val_loss")
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (losses, perplexity) = plt.subplots(1, 2, figsize=(10, 4))
    for key, style, label in ((training, "-", "training"), (held, "--", "held out")):
        if key in rows[0]:
            losses.plot(epochs, [float(r[key]) for r in rows], style, marker="o", label=label)
    losses.set_title(f"loss per word (nats, summed over {directions} direction{'s' if directions > 1 else ''})")
    held_out = [(epoch, math.exp(float(r[held]) / directions)) for epoch, r in zip(epochs, rows)
                if r.get(held) and math.isfinite(float(r[held]))]  # fmt: skip
    if held_out:
        perplexity.plot(*zip(*held_out), "--", marker="o", color="C1", label="held out")
        perplexity.legend()
    perplexity.set_title("perplexity" + (" (geometric mean of the directions)" if directions > 1 else ""))
    for ax in (losses, perplexity):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    losses.legend()
    _save(fig, path)


# How fold_figures titles the figures whose key does not read as their name.
FIGURE_TITLES = {"macro_f1": "macro F1", "roc_auc": "ROC AUC"}


def fold_figures(figures: dict[str, list[float]], path: Path) -> None:
    """Cross-validation: per figure (accuracy, ...), each fold's value as a point, their mean as a line and one
    standard deviation either side as a band."""
    names = list(figures)
    fig, axes = plt.subplots(1, len(names), figsize=(3.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        values = np.asarray(figures[name], np.float64)
        folds = np.arange(1, len(values) + 1)
        mean = values.mean()
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        ax.axhspan(mean - std, mean + std, color="C0", alpha=0.15, label="± 1 std")
        ax.axhline(mean, color="C0", label=f"mean {mean:.4f}")
        ax.plot(folds, values, "o", color="C1", label="fold")
        ax.set_xticks(folds)
        ax.set_xlabel("fold")
        ax.set_title(FIGURE_TITLES.get(name, name.replace("_", " ")))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _save(fig, path)


def confusion_matrix(truth, predicted, labels, path: Path) -> None:
    """The confusion matrix (rows = true class, columns = predicted, each cell's count written in it) of at most
    PLOT_CLASSES classes: all of them, or with more classes the PLOT_CLASSES most confused ones (most mistakes made
    or received, then most examples), counting only the examples between those. The figure's size is bounded
    whatever the number of classes; class names are cut to LABEL_CHARS characters."""
    truth, predicted = np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    n = len(labels)
    shown = most_confused(truth, predicted, n, PLOT_CLASSES)
    position = np.full(n, -1)
    position[shown] = np.arange(shown.size)
    rows, columns = position[truth], position[predicted]
    kept = (rows >= 0) & (columns >= 0)
    matrix = np.zeros((shown.size, shown.size), dtype=np.int64)
    np.add.at(matrix, (rows[kept], columns[kept]), 1)
    _draw_confusion(matrix, [labels[k] for k in shown], n, path)


def confusion_matrix_of_counts(matrix, labels, path: Path) -> None:
    """`confusion_matrix` from the counts themselves ([true class, predicted class], as metrics.json holds them)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    wrong = matrix - np.diag(np.diag(matrix))
    shown = _ranked(wrong.sum(axis=1) + wrong.sum(axis=0), matrix.sum(axis=1), PLOT_CLASSES)
    _draw_confusion(matrix[np.ix_(shown, shown)], [labels[k] for k in shown], len(labels), path)


def _draw_confusion(matrix: np.ndarray, names: list[str], classes: int, path: Path) -> None:
    k = len(names)
    title = ""
    if classes > k:
        title = f"the {k} most confused of {classes:,} classes (examples between them only)"
    fig, ax = plt.subplots(figsize=(2 + 0.6 * k, 1.5 + 0.6 * k))
    ax.imshow(matrix, cmap="Blues")
    names = [_cut(name) for name in names]
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    top = matrix.max(initial=0)
    for i in range(k):
        for j in range(k):
            color = "white" if matrix[i, j] > top / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
    _save(fig, path)


def reliability_diagram(before: dict, after: dict, after_label: str, path: Path) -> None:
    """Accuracy against mean confidence per confidence bin (`pipeline.training.calibration.reliability_of`), before
    and after temperature scaling (`after_label` names it); the diagonal is perfect calibration, the bars below show
    how many examples each bin holds."""
    bins = len(before["count"])
    edges = np.linspace(0, 1, bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for table, style, name in ((before, "o--", "before"), (after, "s-", after_label)):
        filled = table["count"] > 0
        ax.plot(table["confidence"][filled], table["accuracy"][filled], style, label=name)
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    width = 1 / bins
    counts.bar(centers - width / 4, before["count"], width / 2, label="before")
    counts.bar(centers + width / 4, after["count"], width / 2, label="after")
    counts.set_xlabel("confidence of the predicted class")
    counts.set_ylabel("examples")
    _save(fig, path)


def most_confused(truth: np.ndarray, predicted: np.ndarray, n: int, k: int) -> np.ndarray:
    """The ids of the `k` classes (all, if n <= k) with the most mistakes made or received, then the most
    examples, then the lowest ids; in id order."""
    wrong = truth != predicted
    mistakes = np.bincount(truth[wrong], minlength=n) + np.bincount(predicted[wrong], minlength=n)
    return _ranked(mistakes, np.bincount(truth, minlength=n), k)


def _ranked(mistakes: np.ndarray, support: np.ndarray, k: int) -> np.ndarray:
    n = len(support)
    if n <= k:
        return np.arange(n)
    return np.sort(np.lexsort((np.arange(n), -support, -mistakes))[:k])


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "\u2026"


def study_figures(study, folder: Path, value: str) -> tuple[str, ...]:
    """An Optuna study's optimization history (each trial's `value` and the best so far), and its parameter
    importances once two trials have completed: optimization_history.png, param_importances.png in `folder`."""
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots

    written = [folder / "optimization_history.png"]
    _save(optuna_plots.plot_optimization_history(study, target_name=value).figure, written[0], legend_outside=True)
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 2:
        try:
            axes = optuna_plots.plot_param_importances(study, target_name=value)
        except (ValueError, RuntimeError, ZeroDivisionError) as e:  # values that tell nothing apart (all equal)
            logger.info("no parameter importances: %s", e)
        else:
            written.append(folder / "param_importances.png")
            _save(axes.figure, written[-1], legend_outside=True)
    return tuple(str(path) for path in written)


def _save(fig, path: Path, legend_outside: bool = False) -> None:
    fig.tight_layout()
    with artifacts.staged_path(path) as tmp:
        # A legend beside the axes lies outside the figure's box: the tight box takes it in.
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight" if legend_outside else None)
    plt.close(fig)
