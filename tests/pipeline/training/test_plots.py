"""Figures of a bounded size whatever the run: a confusion matrix of many classes is summarised, not drawn cell by
cell."""

import struct
import time

import numpy as np

from pipeline.training import plots


def png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_few_classes_are_drawn_whole(tmp_path):
    labels = ["neg", "neutral", "pos"]
    plots.confusion_matrix(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), labels, tmp_path / "c.png")
    width, height = png_size(tmp_path / "c.png")
    assert 300 < width < 800 and 300 < height < 800


def test_a_thousand_classes_give_a_summary_of_bounded_size(tmp_path):
    labels = [f"class number {k} with a rather long name" for k in range(1000)]
    truth = np.repeat(np.arange(1000), 2)
    predicted = (truth + (np.arange(2000) % 7 == 0)) % 1000  # some mistakes, spread over many classes
    started = time.monotonic()
    plots.confusion_matrix(truth, predicted, labels, tmp_path / "c.png")
    assert time.monotonic() - started < 30
    width, height = png_size(tmp_path / "c.png")
    assert width <= 2100 and height <= 2100  # 30 classes, whatever the total


def test_the_summary_shows_the_most_confused_classes():
    truth = np.array([0, 0, 1, 2, 3, 3, 3, 4, 5, 5])
    predicted = np.array([0, 0, 1, 2, 4, 4, 3, 4, 5, 0])
    # mistakes: 3 -> 4 twice (3: 2 made, 4: 2 received), 5 -> 0 once (5: 1 made, 0: 1 received)
    assert plots.most_confused(truth, predicted, 6, 3).tolist() == [0, 3, 4]
    assert plots.most_confused(truth, predicted, 6, 4).tolist() == [0, 3, 4, 5]
    assert plots.most_confused(truth, predicted, 6, 10).tolist() == list(range(6))
    # Without mistakes, the classes with the most examples.
    assert plots.most_confused(truth, truth, 6, 1).tolist() == [3]


def test_training_curves(tmp_path):
    rows = [{"epoch": str(e), "loss": str(1 / (e + 1)), "val_loss": str(1.2 / (e + 1)), "accuracy": "0.5",
             "val_accuracy": "0.4"} for e in range(3)]  # fmt: skip
    plots.training_curves(rows, tmp_path / "t.png")
    assert png_size(tmp_path / "t.png") == (1000, 400)


def test_pretraining_curves_show_the_held_out_perplexity_of_finite_epochs(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path, **_: drawn.update(fig=fig, path=path))
    rows = [{"epoch": "0", "loss": "13.0", "val_loss": "12.0", "word_loss": "12.0", "val_word_loss": "11.0"},
            {"epoch": "1", "loss": "11.0", "val_loss": "inf", "word_loss": "10.0", "val_word_loss": "inf"},
            {"epoch": "2", "loss": "10.0", "val_loss": "10.5", "word_loss": "9", "val_word_loss": "10.0"}]  # fmt: skip
    plots.pretraining_curves(rows, tmp_path / "p.png", directions=2)
    losses, perplexity = drawn["fig"].axes
    assert [list(line.get_ydata()) for line in losses.lines] == [[12.0, 10.0, 9.0], [11.0, float("inf"), 10.0]]
    (line,) = perplexity.lines
    assert list(line.get_xdata()) == [1, 3]
    np.testing.assert_allclose(line.get_ydata(), np.exp([5.5, 5.0]))  # exp(val_word_loss / directions)
    assert "geometric mean" in perplexity.get_title()
    # A history from before the per-word losses: Keras' own.
    plots.pretraining_curves([{k: r[k] for k in ("epoch", "loss", "val_loss")} for r in rows], tmp_path / "p.png", 2)
    np.testing.assert_allclose(drawn["fig"].axes[1].lines[0].get_ydata(), np.exp([6.0, 5.25]))


def test_pretraining_curves_are_a_png(tmp_path):
    rows = [{"epoch": str(e), "loss": str(9 - e), "val_loss": str(8 - e)} for e in range(3)]
    plots.pretraining_curves(rows, tmp_path / "p.png", directions=1)
    assert png_size(tmp_path / "p.png") == (1000, 400)
    plots.pretraining_curves([], tmp_path / "none.png", directions=1)
    assert not (tmp_path / "none.png").exists()


def test_a_confusion_matrix_of_counts_draws_what_the_examples_draw(tmp_path, monkeypatch):
    """Cross-validation draws its pooled matrix from the folds' counts: the same cells and classes as from the
    examples themselves, for few classes and for more than PLOT_CLASSES."""
    drawn = []
    monkeypatch.setattr(plots, "_draw_confusion", lambda matrix, names, classes, path: drawn.append((matrix, names)))
    rng = np.random.default_rng(6)
    for n in (3, plots.PLOT_CLASSES + 8):
        truth, predicted = rng.integers(0, n, 2000), rng.integers(0, n, 2000)
        predicted[:1000] = truth[:1000]
        labels = [f"class {k}" for k in range(n)]
        counts = np.zeros((n, n), np.int64)
        np.add.at(counts, (truth, predicted), 1)
        plots.confusion_matrix(truth, predicted, labels, tmp_path / "a.png")
        plots.confusion_matrix_of_counts(counts, labels, tmp_path / "b.png")
        (from_examples, names), (from_counts, names_too) = drawn[-2:]
        np.testing.assert_array_equal(from_examples, from_counts)
        assert names == names_too and len(names) == min(n, plots.PLOT_CLASSES)


def test_fold_figures(tmp_path):
    plots.fold_figures({"accuracy": [0.8, 0.82, 0.79], "macro_f1": [0.78, 0.8, 0.77]}, tmp_path / "f.png")
    assert png_size(tmp_path / "f.png") == (700, 350)
