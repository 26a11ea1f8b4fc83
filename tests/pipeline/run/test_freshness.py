"""When a stage is up to date: the same run twice does its work once, a changed key redoes its stage and the stages
after it (with --overwrite) or stops naming the difference, and a copied run directory stands on its own."""

import json
import shutil

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.run import freshness
from tests.pipeline.helpers import classes_csv, sentiment_csv, write_config


def rnnpipe(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def fingerprints(run_dir):
    stages = json.loads((run_dir / "stages.json").read_text())
    return {name: record["digest"] for name, record in stages.items()}


@pytest.mark.slow  # the stages end to end on tiny data
def test_same_run_twice_trains_once_and_exports_once(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 1})
    run_dir = tmp_path / "run"
    first = rnnpipe("run", config, "--run-dir", run_dir)
    assert first.exit_code == 0, first.output + first.stderr
    checkpoint = (run_dir / "checkpoints" / "best.keras").read_bytes()
    second = rnnpipe("run", config, "--run-dir", run_dir)
    assert second.exit_code == 0, second.stderr
    for stage in ("tokenize", "train", "evaluate", "export"):
        assert f"{stage}: up to date" in second.output, second.output
    assert (run_dir / "checkpoints" / "best.keras").read_bytes() == checkpoint
    assert sorted(p.name for p in (run_dir / "export" / "model").iterdir()) == ["1"]


@pytest.mark.slow  # the stages end to end on tiny data
def test_a_changed_model_key_retrains_but_keeps_the_vocabulary(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 1})
    run_dir = tmp_path / "run"
    assert rnnpipe("run", config, "--run-dir", run_dir).exit_code == 0
    before = fingerprints(run_dir)
    vocabulary = (run_dir / "vocabulary.json").stat().st_mtime_ns

    refused = rnnpipe("run", config, "--run-dir", run_dir, "--set", "model.units=6")
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1 and "model.units: 8 -> 6" in refused.stderr
    assert refused.stderr.strip().endswith("or use it as it is: --set model.units=8")
    assert fingerprints(run_dir) == before, "nothing changed by a refused run"

    redone = rnnpipe("run", config, "--run-dir", run_dir, "--set", "model.units=6", "--overwrite")
    assert redone.exit_code == 0, redone.stderr
    assert "tokenize: up to date" in redone.output
    after = fingerprints(run_dir)
    assert after["tokenize"] == before["tokenize"] and (run_dir / "vocabulary.json").stat().st_mtime_ns == vocabulary
    assert all(after[stage] != before[stage] for stage in ("train", "evaluate", "export"))
    assert sorted(p.name for p in (run_dir / "export" / "model").iterdir()) == ["1", "2"]


@pytest.mark.slow  # the stages end to end on tiny data
def test_a_changed_tokenize_key_redoes_every_stage(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 1})
    run_dir = tmp_path / "run"
    assert rnnpipe("run", config, "--run-dir", run_dir).exit_code == 0
    before = fingerprints(run_dir)
    # A stage after a changed one cannot run on the old results; the error names the earliest outdated stage.
    stale = rnnpipe("evaluate", config, "--run-dir", run_dir, "--set", "tokenize.max_tokens=50")
    assert stale.exit_code == 1 and "run `rnnpipe tokenize` first" in stale.stderr
    assert "tokenize.max_tokens: 200 -> 50" in stale.stderr
    assert stale.stderr.strip().endswith("or use it as it is: --set tokenize.max_tokens=200")
    redone = rnnpipe("run", config, "--run-dir", run_dir, "--set", "tokenize.max_tokens=50", "--overwrite")
    assert redone.exit_code == 0, redone.stderr
    after = fingerprints(run_dir)
    assert all(after[stage] != before[stage] for stage in ("tokenize", "train", "evaluate", "export"))
    assert len(json.loads((run_dir / "vocabulary.json").read_text())["tokens"]) == 28  # all 26 words fit


@pytest.mark.slow  # the stages end to end on tiny data
def test_changed_data_is_noticed(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 1})
    run_dir = tmp_path / "run"
    assert rnnpipe("tokenize", config, "--run-dir", run_dir).exit_code == 0
    sentiment_csv(tmp_path / "train.csv", n=200)
    refused = rnnpipe("tokenize", config, "--run-dir", run_dir)
    assert refused.exit_code == 1 and "train.csv changed" in refused.stderr


@pytest.mark.slow  # the stages end to end on tiny data
def test_a_copied_run_directory_is_self_contained(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 1})
    assert rnnpipe("run", config, "--run-dir", tmp_path / "run").exit_code == 0
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    shutil.rmtree(tmp_path / "run")
    again = rnnpipe("run", config, "--run-dir", tmp_path / "copy")
    assert again.exit_code == 0, again.stderr
    assert "train: up to date" in again.output and str(tmp_path / "run") not in again.output
    state = json.loads((tmp_path / "copy" / "train_state.json").read_text())
    assert state["best_model"] == "checkpoints/best.keras"


@pytest.mark.slow  # the stages end to end on tiny data
def test_another_config_in_a_run_directory_is_never_silently_reused(tmp_path):
    """A 3-class config run into a folder holding a finished 2-class run of the same task: `rnnpipe run` stops
    before any stage, prints nothing on stdout and one line on stderr naming the difference, and changes nothing;
    with --overwrite every stage is redone for the new classes."""
    two = write_config(tmp_path / "two.toml", "sentiment", {"train": str(sentiment_csv(tmp_path / "two.csv")),
                       "test_fraction": 0.2}, train={"epochs": 1})  # fmt: skip
    three = write_config(tmp_path / "three.toml", "sentiment", {"train": str(classes_csv(tmp_path / "three.csv", 3,
                         per_class=40)), "test_fraction": 0.2}, train={"epochs": 1})  # fmt: skip
    run_dir = tmp_path / "run"
    assert rnnpipe("run", two, "--run-dir", run_dir).exit_code == 0
    before = fingerprints(run_dir), (run_dir / "metrics.json").read_text()

    refused = rnnpipe("run", three, "--run-dir", run_dir)
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: tokenize: ")
    assert "data.train: " in refused.stderr and "three.csv" in refused.stderr and "--overwrite" in refused.stderr
    assert (fingerprints(run_dir), (run_dir / "metrics.json").read_text()) == before
    assert sorted(p.name for p in (run_dir / "export" / "model").iterdir()) == ["1"]
    # Each later stage on its own refuses the same way: none of them may use the 2-class results.
    for stage in ("train", "evaluate", "export"):
        alone = rnnpipe(stage, three, "--run-dir", run_dir)
        assert alone.exit_code == 1 and "run `rnnpipe tokenize` first" in alone.stderr, (stage, alone.stderr)
        assert "use it as it is" not in alone.stderr  # other data: no setting gives back what tokenize read

    redone = rnnpipe("run", three, "--run-dir", run_dir, "--overwrite")
    assert redone.exit_code == 0, redone.stderr
    assert "tokenize: built" in redone.output and "3 classes" in redone.output and "up to date" not in redone.output
    assert json.loads((run_dir / "labels.json").read_text()) == ["c0", "c1", "c2"]
    assert json.loads((run_dir / "metrics.json").read_text())["labels"] == ["c0", "c1", "c2"]
    assert sorted(p.name for p in (run_dir / "export" / "model").iterdir()) == ["1", "2"]


def test_a_key_added_since_a_record_counts_as_unchanged_at_its_code_default():
    recorded = {"model.units": 8, "stage tokenize": "abc"}
    current = {"model.units": 8, "train.lr_schedule": "constant", "stage tokenize": "abc"}
    assert freshness.differences(recorded, current) == []
    assert freshness.differences(recorded, {**current, "train.lr_schedule": "linear"}) == [
        "train.lr_schedule: 'constant' (not recorded, the default then) -> 'linear'"
    ]
    # The recipe's value is not the code's default: a key a recipe sets is compared as any other.
    assert freshness.differences(recorded, {**current, "model.recurrent_weight_dropout": 0.25}) != []
    # A key since removed from the config is not compared; other recorded inputs (an ensemble member) are.
    assert freshness.differences({**recorded, "model.gone": 1}, current) == []
    assert freshness.differences({**recorded, "member": 0}, {**current, "member": 1}) == ["member: 0 -> 1"]
    assert freshness.differences(recorded, {**current, "member": 1}) == ["member: not recorded -> 1"]


@pytest.mark.slow
def test_run_directories_made_before_a_key_existed_stay_up_to_date(tmp_path):
    """A record without `train.lr_schedule` and `tokenize.vector_words` (as an older rnnpipe wrote it): evaluate and
    export still read it; setting one of the keys to another value does outdate it."""
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 1})
    run_dir = tmp_path / "run"
    assert rnnpipe("run", config, "--run-dir", run_dir).exit_code == 0
    stages_path = run_dir / "stages.json"
    stages = json.loads(stages_path.read_text())
    del stages["tokenize"]["inputs"]["tokenize.vector_words"]
    del stages["train"]["inputs"]["train.lr_schedule"]
    # As an older version digested them: the train record names the tokenize record it was made from.
    stages["tokenize"]["digest"] = freshness.digest(stages["tokenize"]["inputs"])
    stages["train"]["inputs"]["stage tokenize"] = stages["tokenize"]["digest"]
    stages["train"]["digest"] = freshness.digest(stages["train"]["inputs"])
    stages_path.write_text(json.dumps(stages))

    again = rnnpipe("run", config, "--run-dir", run_dir)
    assert again.exit_code == 0, again.stderr
    for stage in ("tokenize", "train", "evaluate", "export"):
        assert f"{stage}: up to date" in again.output, again.output
    changed = rnnpipe("evaluate", config, "--run-dir", run_dir, "--set", "train.lr_schedule=cosine")
    assert changed.exit_code == 1
    assert "train.lr_schedule: 'constant' (not recorded, the default then) -> 'cosine'" in changed.stderr
    # The refusal names the setting the run was made with (after an upgrade that changed a recipe default, the
    # user's way to use the run as it is), and that setting is accepted.
    assert changed.stderr.strip().endswith("or use it as it is: --set train.lr_schedule=constant")
    as_made = rnnpipe("evaluate", config, "--run-dir", run_dir, "--set", "train.lr_schedule=constant")
    assert as_made.exit_code == 0 and "evaluate: up to date" in as_made.output, as_made.stderr


def test_a_refusal_gives_the_settings_as_set_reads_them():
    recorded = {"model.units": 8, "data.text_column": "the text", "export.formats": ["saved_model", "litert"],
                "model.peephole": False, "train.learning_rate": 5e-05, "stage tokenize": "abc"}  # fmt: skip
    current = {"model.units": 9, "data.text_column": "text", "export.formats": ["saved_model"],
               "model.peephole": True, "train.learning_rate": 0.001, "stage tokenize": "abc"}  # fmt: skip
    settings = {change.setting for change in freshness._changes(recorded, current, None)}
    # An input that is not a config key (an ensemble member's index) is named, with no setting for it.
    assert [c.setting for c in freshness._changes({"member": 0}, {"member": 1}, None)] == [""]
    assert settings == {"model.units=8", "'data.text_column=the text'", "export.formats=saved_model,litert",
                        "model.peephole=false", "train.learning_rate=5e-05"}  # fmt: skip
    config = load_config(None, ["data.train=x.csv", *(s.strip("'") for s in settings)])
    assert (config.model.units, config.data.text_column, config.export.formats, config.model.peephole,
            config.train.learning_rate) == (8, "the text", ("saved_model", "litert"), False, 5e-05)  # fmt: skip


def test_the_hint_holds_a_recipe_changes_keys_and_not_another_config():
    keys = ["pretrain.epochs", "pretrain.learning_rate", "pretrain.weight_decay", "pretrain.activation_penalty",
            "model.units", "model.embedding_dim", "train.batch_size"]  # fmt: skip
    recorded = {key: 1 for key in keys}
    current = {key: 2 for key in keys}
    recipe = freshness._changes({k: recorded[k] for k in keys[:4]}, {k: current[k] for k in keys[:4]}, None)
    assert freshness._as_they_are(recipe).count("--set ") == 4  # as many keys as pretraining's defaults
    assert len(keys) > freshness.HINT_SETTINGS
    assert freshness._as_they_are(freshness._changes(recorded, current, None)) == ""


def test_the_classifier_head_is_no_input_of_pretraining(tmp_path):
    """One pretrained encoder serves every head: pooling, feature_norm and the ensemble size are train's inputs,
    not pretrain's, so changing them retrains without pretraining again."""
    from pipeline.config import load_config
    from pipeline.run.rundir import RunDir

    path = tmp_path / "c.toml"
    path.write_text('task = "sentiment"\n[data]\nsource = "files"\ntrain = "t.csv"\nunlabelled = "u.txt"\n')
    rd = RunDir(tmp_path / "run")
    base = load_config(path)
    head = load_config(path, ["model.feature_norm=true", "model.pooling=mean", "model.ensemble=3"])
    assert freshness.inputs(rd, "pretrain", base) == freshness.inputs(rd, "pretrain", head)
    assert freshness.differences(freshness.inputs(rd, "train", base), freshness.inputs(rd, "train", head))
