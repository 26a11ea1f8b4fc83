"""Training curves and confusion matrices as PNG files (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pipeline import artifacts  # noqa: E402


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
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    _save(fig, path)


def confusion_matrix(matrix, labels, path: Path) -> None:
    n = len(labels)
    fig, ax = plt.subplots(figsize=(2 + 0.6 * n, 1.5 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(row) for row in matrix), default=0)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i][j]), ha="center", va="center", color="white" if matrix[i][j] > top / 2 else "black")
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with artifacts.staged_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
