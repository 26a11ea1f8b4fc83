"""`rnnpipe predict`: what one line holds, bounded for a model of many classes."""

import json

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.clients import predict
from pipeline.config import load_config
from pipeline.stages import export, tokenize, train
from tests.pipeline.helpers import classes_csv, write_config


@pytest.fixture(scope="module")
def many_classes_export(tmp_path_factory):
    """A 10,000-class export, trained for one epoch (the classes need not be learnt: only counted)."""
    root = tmp_path_factory.mktemp("classes")
    data = {"train": str(classes_csv(root / "train.csv", 10_000, per_class=1)), "validation_fraction": 0.0,
            "validation": str(classes_csv(root / "validation.csv", 10, per_class=1)),
            "test": str(classes_csv(root / "test.csv", 10, per_class=1))}  # fmt: skip
    config = load_config(write_config(root / "c.toml", "sentiment", data, train={"epochs": 1, "batch_size": 256},
                                      tokenize={"max_tokens": 200, "max_ngram": 0}), [])  # fmt: skip
    run_dir = root / "run"
    tokenize.run(config, run_dir)
    train.run(config, run_dir)
    return export.run(config, run_dir).path


@pytest.mark.slow
def test_predict_on_ten_thousand_classes_prints_k_classes_per_line(many_classes_export):
    result = CliRunner().invoke(main, ["predict", str(many_classes_export), "w17 plain", "w4 words", "--top", "3"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 2
    for line in lines:
        probabilities = list(line["probabilities"].values())
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert line["label"] == next(iter(line["probabilities"]))
    default = CliRunner().invoke(main, ["predict", str(many_classes_export), "w17 plain"])
    assert len(json.loads(default.output)["probabilities"]) == predict.SHOWN_CLASSES
    assert len(default.output) < 2_000
    assert CliRunner().invoke(main, ["predict", str(many_classes_export), "x", "--top", "0"]).exit_code == 2


def test_few_classes_are_all_listed_in_the_models_order():
    import numpy as np

    names = ["neg", "neutral", "pos"]
    shown = predict._shown(names, np.array([0.2, 0.1, 0.7], "float32"), None)
    assert list(shown) == names
    assert list(predict._shown(names, np.array([0.2, 0.1, 0.7], "float32"), 2)) == ["pos", "neg"]
