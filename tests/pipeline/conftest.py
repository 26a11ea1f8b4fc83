"""Trained tiny run directories, shared by the export / predict / generate / evaluate tests (built once)."""

import pytest

from pipeline.config import load_config
from pipeline.stages import evaluate, export, tokenize, train
from tests.pipeline.helpers import plain_text, sentiment_csv, write_config


def _trained_run(tmp_path_factory, task):
    root = tmp_path_factory.mktemp(task)
    if task == "sentiment":
        data = {"train": str(sentiment_csv(root / "train.csv")), "test_fraction": 0.2}
    else:
        data = {"train": str(plain_text(root / "corpus.txt")), "test_fraction": 0.1}
    # Sentiment's sub-word vectors are means over a word's n-grams and learn more slowly than one vector per word:
    # eight epochs for the tiny model to separate the classes.
    sections = {"train": {"epochs": 8}} if task == "sentiment" else {}
    config = load_config(write_config(root / f"{task}.toml", task, data, **sections), [])
    run_dir = root / "run"
    tokenize.run(config, run_dir)
    train.run(config, run_dir)
    metrics = evaluate.run(config, run_dir).metrics
    return config, run_dir, metrics, export.run(config, run_dir).path


@pytest.fixture(scope="session")
def sentiment_run(tmp_path_factory):
    """(config, run_dir, metrics, export_dir) of a tiny trained sentiment run."""
    return _trained_run(tmp_path_factory, "sentiment")


@pytest.fixture(scope="session")
def next_char_run(tmp_path_factory):
    return _trained_run(tmp_path_factory, "next_char")
