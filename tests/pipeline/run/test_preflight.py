"""Checks before any work: a config that cannot get to its end fails at once, before tokenize, naming the key."""

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import config_from_dict
from pipeline.errors import ConfigError, DataError
from pipeline.run import preflight
from tests.conftest import REPO
from tests.pipeline.helpers import plain_text


def test_shakespeare_config_switched_to_local_files_fails_before_any_work(tmp_path, monkeypatch):
    """The shipped config reads TFDS's test split. Pointed at a local file, it holds out the task's default test
    share of it; told to hold out none, it stops before any work, since evaluate needs a test split."""
    monkeypatch.chdir(tmp_path)
    corpus = plain_text(tmp_path / "input.txt")
    switched = ["--set", "data.source=files", "--set", f"data.train={corpus}"]
    shown = CliRunner().invoke(main, ["config", str(REPO / "configs" / "shakespeare_char_lstm.toml"), *switched])
    assert shown.exit_code == 0 and "test_fraction = 0.1" in shown.output
    result = CliRunner().invoke(main, ["run", str(REPO / "configs" / "shakespeare_char_lstm.toml"), *switched,
                                       "--set", "data.test_fraction=0"])  # fmt: skip
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == ("error: evaluate.split: 'test', but the data has no test split; set data.test or "
                             "data.test_fraction, or evaluate.split = 'validation'\n")  # fmt: skip
    assert not (tmp_path / "runs").exists(), "nothing is created before the config can work"


def config(**data):
    task = data.pop("task", "sentiment")
    return config_from_dict({"task": task, "data": {"train": "x.csv", "test_fraction": 0.1, **data}})


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"test_fraction": 0.0}, "evaluate.split: 'test', but the data has no test split"),
        ({"source": "tfds", "name": "imdb_reviews", "test_split": ""},
         "evaluate.split: 'test', but the data has no test split; set data.test_split, or evaluate.split"),
        ({"validation_fraction": 0.0}, "data.validation_fraction: 0 and no data.validation"),
        ({"source": "tfds", "name": "imdb_reviews", "train_split": "train[:50%]"},
         "data.validation_split: required when data.train_split is already sliced"),
    ],
    ids=["files_no_test", "tfds_no_test", "no_validation", "tfds_sliced_train"],
)  # fmt: skip
def test_contradicting_keys_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        preflight.check(config(**settings), "tokenize")
    preflight.check(config(**settings), "export")  # export reads only the run directory


def test_next_char_from_tfds_needs_a_validation_split():
    # A task's own rule: checked with the config, whatever the stage.
    with pytest.raises(ConfigError, match="data.validation_split: required for task 'next_char'"):
        config(task="next_char", source="tfds", name="tiny_shakespeare")


def test_a_test_split_is_not_needed_to_evaluate_on_validation(tmp_path):
    train = plain_text(tmp_path / "t.txt")
    preflight.check(config_from_dict({"task": "next_char", "data": {"train": str(train)},
                                      "evaluate": {"split": "validation"}}), "train")  # fmt: skip


def test_data_paths_are_checked_before_any_work(tmp_path):
    (tmp_path / "a.pos").write_text("good\n")
    preflight.check(config(train=str(tmp_path / "a.*")), "train")
    with pytest.raises(DataError, match=r"data.train: no file matches .*nothing\.\*"):
        preflight.check(config(train=str(tmp_path / "nothing.*")), "train")
    with pytest.raises(DataError, match=r"data.test: .*gone\.csv does not exist"):
        preflight.check(config(train=str(tmp_path / "a.pos"), test=str(tmp_path / "gone.csv")), "evaluate")
    with pytest.raises(DataError, match="is a folder, not a file"):
        preflight.check(config(train=str(tmp_path), format="csv"), "tokenize")


def test_a_fraction_that_holds_nothing_out_fails_at_tokenize(tmp_path):
    from pipeline.stages import tokenize

    corpus = plain_text(tmp_path / "t.txt", chars=400)
    tiny = config_from_dict({"task": "next_char", "data": {"train": str(corpus), "test_fraction": 0.001}})
    with pytest.raises(DataError, match=r"data.test_fraction: 0.001 of the 400 characters .* holds none out"):
        tokenize.run(tiny, tmp_path / "run")
    assert not (tmp_path / "run" / "vocabulary.json").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.toml")))
def test_shipped_configs_pass(name, monkeypatch):
    monkeypatch.chdir(REPO)  # their data paths are relative to the repository, as the README runs them
    from pipeline.config import load_config

    config = load_config(REPO / "configs" / name)
    try:
        preflight.check(config, "run")
    except DataError as error:  # the shared data folder beside the repository, which CI provides
        pytest.skip(f"data not found: {error}")
