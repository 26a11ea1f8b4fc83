"""predictions.csv: any text reads back as it was (quotes, commas, line breaks, non-ASCII), in the split's order."""

import csv

import numpy as np
import pytest
import tensorflow as tf

from pipeline.tasks.sentiment.task import PREDICTION_COLUMNS, write_predictions

TEXTS = ["plain", 'a "quoted", comma', "two\nlines\r\nand a CR", "café naïve – ünïcode", ""]


def split(texts):
    return tf.data.Dataset.from_tensor_slices({"text": texts, "label": ["pos"] * len(texts)})


def test_every_text_reads_back_as_written(tmp_path):
    path = tmp_path / "predictions.csv"
    probability = np.linspace(0.5, 1.0, len(TEXTS))
    write_predictions(split(TEXTS), ["pos"] * 5, ["neg", "pos", "neg", "pos", "neg"], probability, path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == PREDICTION_COLUMNS
    assert [row[0] for row in rows[1:]] == TEXTS
    assert [float(row[3]) for row in rows[1:]] == pytest.approx(probability, abs=1e-6)


def test_a_count_that_differs_from_the_split_writes_nothing(tmp_path):
    path = tmp_path / "predictions.csv"
    with pytest.raises(ValueError):
        write_predictions(split(TEXTS), ["pos"] * 4, ["pos"] * 4, [0.9] * 4, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
