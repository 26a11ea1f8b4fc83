import dataclasses
from pathlib import Path

import pytest
import tomllib

from pipeline import recipes
from pipeline.config import Config, config_from_dict, config_to_dict, flatten, load_config, replace, to_toml
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_then_file_then_overrides(tmp_path):
    path = write(
        tmp_path,
        """
        task = "sentiment"
        [data]
        train = "train.csv"
        [model]
        units = 64
        layers = 2
        """,
    )
    config = load_config(path, ["model.units=128", "train.learning_rate=0.01", "data.encoding=windows-1252"])
    assert config.model.units == 128  # --set beats the file
    assert config.model.layers == 2  # the file beats the default
    assert config.model.embedding_dim == recipes.SENTIMENT_DEFAULTS["model.embedding_dim"]  # the task's default
    assert config.model.peephole == Config().model.peephole  # the code default
    assert config.train.learning_rate == 0.01
    assert config.data.encoding == "windows-1252"
    assert Path(config.data.train).is_absolute()


def test_config_is_immutable(tmp_path):
    config = load_config(write(tmp_path, '[data]\ntrain = "x"'))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.model.units = 3


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("[model]\nunit = 3", [], "unknown key 'model.unit' (did you mean 'model.units'?)"),
        ("[modle]\nunits = 3", [], "unknown key 'modle'"),
        ("[model]\nunits = '3'", [], "model.units: expected int, got str '3'"),
        ("[model]\nunits = true", [], "model.units: expected int, got bool True"),
        ("[model]\nbidirectional = 1", [], "model.bidirectional: expected bool, got int 1"),
        ("model = 3", [], "model: expected a table of settings, got int 3"),
        ("", ["model.units=abc"], "model.units: expected int, got str 'abc'"),
        ("", ["model.units"], "--set expects KEY=VALUE, got 'model.units'"),
        ("", ["train.nope=1"], "unknown key 'train.nope'"),
        ("", ["model.cell=tcn"], "model.cell: must be one of lstm, simple_rnn"),
        ("", ["model.units=0"], "model.units: must be > 0, got 0"),
        ("", ["model.dropout=1.0"], "model.dropout: must be in [0, 1), got 1.0"),
        ("", ["model.recurrent_weight_dropout=-0.1"], "model.recurrent_weight_dropout: must be in [0, 1), got -0.1"),
        ("", ["model.ensemble=0"], "model.ensemble: must be > 0, got 0"),
        ("", ["pretrain.weight_decay=-0.1"], "pretrain.weight_decay: must be >= 0, got -0.1"),
        ("", ["pretrain.softmax_samples=-1"], "pretrain.softmax_samples: must be >= 0, got -1"),
        ("", ["pretrain.activation_penalty=-1"], "pretrain.activation_penalty: must be >= 0, got -1.0"),
        ("", ["train.word_dropout=1"], "train.word_dropout: must be in [0, 1), got 1.0"),
        ("", ["task=next_char", "train.word_dropout=0.1"], "train.word_dropout: only sentiment training drops words"),
        ("", ["train.random_offset=true"], "train.random_offset: only next_char cuts its text into windows"),
        ("", ["task=next_char", "model.feature_norm=true"], "model.feature_norm: next_char predicts from every step"),
        ("", ["task=next_char", "model.ensemble=3"], "model.ensemble: only sentiment models are ensembled"),
        ("", ["tokenize.max_ngram=2"], "tokenize.max_ngram: must be 0 (off) or from tokenize.min_ngram (3) to 10"),
        ("", ["tokenize.max_ngram=11"], "got 11"),
        ("", ["tokenize.max_ngram=-1"], "tokenize.max_ngram: must be 0 (off) or from"),
        ("", ["tokenize.ngrams_per_word=0"], "tokenize.ngrams_per_word: must be > 0, got 0"),
        ("", ["task=next_char", "tokenize.max_ngram=4"], "tokenize.max_ngram: only sentiment reads words as sub-words"),
        ("", ["data.encoding=klingon"], "data.encoding: unknown encoding 'klingon'"),
        ("", ["data.source=tfds"], "data.name: required when data.source = 'tfds'"),
    ],
)
def test_errors_name_the_key(tmp_path, text, overrides, message):
    if "data.source" not in "".join(overrides):
        text += '\n[data]\ntrain = "x"\n'  # every other case needs some training data to get past validation
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), overrides)
    assert message in str(info.value)


def test_missing_file_and_syntax_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_config(write(tmp_path, "[model\nunits = 3"))


def test_next_char_rejects_bidirectional(tmp_path):
    with pytest.raises(ConfigError, match="model.bidirectional"):
        load_config(write(tmp_path, 'task = "next_char"\n[data]\ntrain = "x.txt"\n[model]\nbidirectional = true'))


def test_override_values_parse_as_toml_or_plain_strings(tmp_path):
    config = load_config(
        write(tmp_path, '[data]\ntrain = "x"'),
        ["export.name=123", "model.bidirectional=true", "train.max_seconds=600", 'data.name="a=b"'],
    )
    assert config.export.name == "123"  # a str field keeps the text as written
    assert config.model.bidirectional is True
    assert config.train.max_seconds == 600.0
    assert config.data.name == '"a=b"'


def test_toml_round_trip_keeps_every_value(tmp_path):
    config = load_config(
        write(tmp_path, '[data]\ntrain = "dir/with \\"quotes\\"\\\\ and \\t tab"'), ["model.dropout=0.25"]
    )
    again = config_from_dict(tomllib.loads(to_toml(config)))
    assert again == config
    assert replace(config, **{"train.epochs": 3}).train.epochs == 3
    assert config_to_dict(config)["model"]["dropout"] == 0.25


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.toml")))
def test_shipped_configs_load(name):
    load_config(REPO / "configs" / name)


@pytest.mark.parametrize("task", recipes.TASKS)
def test_a_config_of_task_and_data_gets_the_task_defaults(tmp_path, task):
    config = load_config(write(tmp_path, f'task = "{task}"\n[data]\ntrain = "x"'))
    flat = flatten(config_to_dict(config))
    flat["tune.space"] = {key.key: key.spec() for key in flat["tune.space"]}  # as the recipe writes it
    defaults = recipes.get(task).defaults
    assert {key: flat[key] for key in defaults} == dict(defaults)


@pytest.mark.parametrize("task", recipes.TASKS)
def test_every_recipe_has_its_task(task):
    from pipeline import tasks

    assert tasks.get(task).name == task


def test_bad_values_are_config_errors_of_one_short_line(tmp_path):
    cases = [
        ("[train]\nlearning_rate = nan", "train.learning_rate: must be a finite number"),
        ("[train]\nlearning_rate = inf", "train.learning_rate: must be a finite number"),
        ("seed = 99999999999999999999", "seed: 99999999999999999999 is out of range"),
        ("seed = -1", "seed: must be in [0, 2**31)"),
        ("[data]\nname = '" + "x" * 50_000 + "'", "data.name: a string of 50,000 characters"),
        ("a = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ]
    for text, message in cases:
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, text + '\n[data]\ntrain = "x"\n' if "[data]" not in text else text), [])
        assert message in str(info.value), (text[:40], str(info.value))
        assert len(str(info.value)) < 400 and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="train.epochs: .* out of range"):
        load_config(write(tmp_path, '[data]\ntrain = "x"'), ["train.epochs=" + str(2**70)])
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 2_000_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="a config is at most"):
        load_config(big)


def test_the_cell_names_and_options_are_those_of_custom_layers():
    import inspect

    import custom_layers
    from pipeline.config import CELL_OPTIONS, CELLS

    assert CELLS == tuple(custom_layers.LAYERS)
    for option, cells in CELL_OPTIONS.items():
        having = tuple(name for name, layer in custom_layers.LAYERS.items()
                       if option in inspect.signature(layer).parameters)  # fmt: skip
        assert cells == having, option


# --- tune.space ------------------------------------------------------------------------------------------------


def test_a_search_space_is_read_in_either_toml_form_and_written_back(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'task = "sentiment"\n[data]\ntrain = "x"\n[tune]\ntrials = 7\n[tune.space]\n'
        '"train.learning_rate" = {low = 1e-4, high = 1e-2, log = true}\n"model.pooling" = ["max", "mean"]\n'
        "[tune.space.model]\nunits = {low = 50, high = 250, step = 50}\n"
    )
    config = load_config(path)
    assert config.tune.trials == 7
    assert [key.spec() for key in config.tune.space] == [
        {"low": 1e-4, "high": 1e-2, "log": True},
        ["max", "mean"],
        {"low": 50, "high": 250, "step": 50},
    ]
    assert config_from_dict(tomllib.loads(to_toml(config))) == config
    # A space in the file replaces the recipe's whole; --set replaces the file's.
    assert [key.key for key in config.tune.space] == ["train.learning_rate", "model.pooling", "model.units"]
    assert [k.key for k in load_config(path, ["tune.space.model.dropout=[0.1, 0.2]"]).tune.space][-1] == "model.dropout"
    assert len(load_config(write(tmp_path, 'task = "sentiment"\n[data]\ntrain = "x"')).tune.space) == 7


@pytest.mark.parametrize(
    "override, message",
    [
        ("tune.space.model.unit=[1]", "unknown key 'tune.space.model.unit' (did you mean 'model.units'?)"),
        ("tune.space.data.train=['a']", "tune.space.data.train: a search varies keys of the tokenize, model, train"),
        ("tune.space.seed=[1, 2]", "tune.space.seed: not a config key"),
        ("tune.space.model.units={low = 1.5, high = 3}", "tune.space.model.units.low: expected int, got float 1.5"),
        ("tune.space.model.units={low = 8}", "tune.space.model.units: a range has low, high and optionally log"),
        ("tune.space.model.units={low = 8, high = 4}", "tune.space.model.units: low must be below high"),
        ("tune.space.model.pooling={low = 1, high = 2}", "tune.space.model.pooling: a str key is searched over a list"),
        ("tune.space.model.pooling=['max', 'sum']", "tune.space.model.pooling: 'sum' is not a value the key takes"),
        ("tune.space.model.dropout={low = 0.1, high = 1.0}", "tune.space.model.dropout: 1.0 is not a value the key"),
        ("tune.space.train.learning_rate={low = 0, high = 1, log = true}", "a log scale needs low > 0, got 0.0"),
        ("tune.space.train.learning_rate={low = 1e-4, high = 1, log = true, step = 0.1}", "on a linear scale"),
        ("tune.space.model.units=[]", "tune.space.model.units: a list of 1 to 256 choices, got 0"),
        ("tune.space.model.units=[8, 8]", "tune.space.model.units: the choices repeat a value"),
        ("tune.space.model.units=8", "tune.space.model.units: expected a range {low = ..., high = ...} or a list"),
        ("tune.trials=0", "tune.trials: must be > 0, got 0"),
        ("tune.trials=100000", "tune.trials: at most 10,000 in one study"),
        ("tune.timeout=-1", "tune.timeout: must be >= 0"),
    ],  # fmt: skip
)
def test_a_bad_search_space_names_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, 'task = "sentiment"\n[data]\ntrain = "x"'), [override])
    assert message in str(error.value)
