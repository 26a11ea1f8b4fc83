"""The `rnnpipe` CLI: stages through click's CliRunner on tiny data, and every bad input as one line on stderr."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import REPO
from tests.pipeline.helpers import plain_text, sentiment_csv, write_config


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def sentiment_config(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    return write_config(tmp_path / "sentiment.toml", "sentiment", data, train={"epochs": 1})


def test_help_and_version():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("tokenize", "train", "evaluate", "export", "run", "predict", "generate"):
        assert command in result.output
    assert invoke("train", "--help").output.count("--set") >= 1
    assert invoke("--version").output.startswith("rnnpipe")


@pytest.mark.slow
def test_stages_one_by_one_then_skip_and_overwrite(sentiment_config, tmp_path):
    run_dir = tmp_path / "run"
    assert "tokenize: built" in invoke("tokenize", sentiment_config, "--run-dir", run_dir).output
    trained = invoke("train", sentiment_config, "--run-dir", run_dir)
    assert trained.exit_code == 0 and "train: completed after 1 epoch(s)" in trained.output
    assert "accuracy" in invoke("evaluate", sentiment_config, "--run-dir", run_dir).output
    assert "exported:" in invoke("export", sentiment_config, "--run-dir", run_dir).output
    for name in ("config.toml", "vocabulary.json", "labels.json", "history.csv", "training_curves.png",
                 "metrics.json", "confusion_matrix.png", "checkpoints/best.keras", "train_state.json"):  # fmt: skip
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "roc_auc", "split", "examples", "seconds"} <= set(
        metrics
    )
    again = invoke("train", sentiment_config, "--run-dir", run_dir)
    assert "train: up to date" in again.output, "a finished stage is kept"
    # Eight epochs: the tiny model's sub-word vectors (means over n-grams) need them to separate the classes below.
    changed = CliRunner().invoke(main, ["train", str(sentiment_config), "--run-dir", str(run_dir), "--set",
                                        "train.epochs=8"])  # fmt: skip
    assert changed.exit_code == 1 and "train.epochs: 1 -> 8" in changed.stderr and "--overwrite" in changed.stderr
    redo = invoke("train", sentiment_config, "--run-dir", run_dir, "--overwrite", "--set", "train.epochs=8")
    assert "completed after 8 epoch(s)" in redo.output
    assert "exported: " in invoke("export", sentiment_config, "--run-dir", run_dir, "--set", "train.epochs=8").output
    assert (run_dir / "export" / "model" / "2").is_dir(), "the retrained model is a new version"

    predictions = invoke("predict", run_dir / "export" / "model", "superb brilliant film", "awful dull plot")
    lines = [json.loads(line) for line in predictions.output.splitlines()]
    assert [line["label"] for line in lines] == ["pos", "neg"]
    assert set(lines[0]["probabilities"]) == {"neg", "pos"}


@pytest.mark.slow
def test_next_char_run_and_generate(tmp_path):
    data = {"train": str(plain_text(tmp_path / "corpus.txt")), "test_fraction": 0.1}
    config = write_config(tmp_path / "chars.toml", "next_char", data, train={"epochs": 1})
    run_dir = tmp_path / "run"
    result = invoke("run", config, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    assert "bits/char" in result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["bits_per_char"] == pytest.approx(metrics["loss"] / 0.6931471805599453)
    text = invoke("generate", run_dir / "export" / "model", "--prompt", "to be", "--length", "40", "--seed", "3")
    assert text.exit_code == 0 and text.output.startswith("to be") and len(text.output.rstrip("\n")) == 45
    same = invoke("generate", run_dir / "export" / "model", "--prompt", "to be", "--length", "40", "--seed", "3")
    assert same.output == text.output


def bad_inputs(tmp_path):
    """(name, argv, expected fragment of the one stderr line, exit code or None: any non-zero) for every kind of bad
    input."""
    good_csv = sentiment_csv(tmp_path / "good.csv")
    cases = []

    def config(name, data=None, task="sentiment", text=None, **sections):
        path = tmp_path / f"{name}.toml"
        if text is not None:
            path.write_text(text, encoding="utf-8")
            return path
        return write_config(path, task, {"test_fraction": 0.2, **(data or {"train": str(good_csv)})}, **sections)

    def data_file(name, text=None, raw=None):
        path = tmp_path / name
        path.write_bytes(raw if raw is not None else text.encode("utf-8"))
        return path

    empty = data_file("empty.csv", "")
    empty_lines = data_file("empty.txt", "")
    columns = data_file("columns.csv", "review,stars\nnice,5\nbad,1\n")
    one_class = data_file("one.csv", "text,label\na,x\nb,x\nc,x\n")
    latin = data_file("latin.csv", raw="text,label\ncaf\xe9,x\nok,y\nfine,x\nyes,y\n".encode("latin-1"))
    no_label = data_file("nolabel.csv", 'text,label\ngood,pos\nbad,neg\n"no label",\nfine,pos\n')
    scores = data_file("scores.csv", "text,label\n" + "".join(f"text {i},{i * 0.37 + 0.5:.2f}\n" for i in range(300)))
    toml = 'task = "sentiment"\n[data]\ntrain = "x.csv"\ntest_fraction = 0.2\n'
    not_utf8 = data_file("latin.txt", raw=b"great film\nna\xefve plot\n")
    short_vector = data_file("short.vec", "the 1 2 3\nfilm 1 2 3\ngood 1 2\n")
    garbage = data_file("garbage.bin", raw=bytes(range(256)) * 64)
    cases += [
        ("missing_config", ["train", tmp_path / "nope.toml"], "nope.toml", 2),
        ("toml_syntax", ["train", config("syntax", text="task = 'sentiment\n")], "TOML", 2),
        ("unknown_key", ["train", config("unknown", text='task = "sentiment"\n[model]\nunits_ = 3\n')],
         "model.units_", 2),
        ("wrong_type", ["train", config("type", text='task = "sentiment"\n[model]\nunits = "many"\n')],
         "model.units", 2),
        ("bad_set", ["train", config("set"), "--set", "train.epochs=lots"], "train.epochs", 2),
        ("learning_rate_nan", ["train", config("nan", text=toml + "[train]\nlearning_rate = nan\n")],
         "train.learning_rate: must be a finite number, got nan", 2),
        ("learning_rate_inf", ["train", config("inf"), "--set", "train.learning_rate=inf"],
         "train.learning_rate: must be a finite number, got inf", 2),
        ("long_string", ["train", config("long", text=toml + f"[export]\nname = '{'x' * 100_000}'\n")],
         "export.name: a string of 100,000 characters; at most 4,096", 2),
        ("huge_config", ["train", config("huge", text=toml + f"[export]\nname = '{'x' * 50_000_000}'\n")],
         "huge.toml: 50,000,0", 2),
        ("deep_nesting", ["train", config("deep", text="a = " + "[" * 5000 + "]" * 5000 + "\n")],
         "nested too deeply", 2),
        ("no_test_split", ["tokenize", config("notest", {"train": str(good_csv), "test_fraction": 0.0})],
         "evaluate.split: 'test', but the data has no test split; set data.test or data.test_fraction", 2),
        ("no_validation", ["train", config("noval", {"train": str(good_csv), "validation_fraction": 0.0})],
         "data.validation_fraction: 0 and no data.validation", 2),
        ("missing_data", ["tokenize", config("missing", {"train": str(tmp_path / "none.csv")})], "does not exist", 1),
        ("empty_file", ["tokenize", config("empty", {"train": str(empty)})], "is empty", 1),
        ("csv_columns", ["tokenize", config("columns", {"train": str(columns)})],
         "its columns are ['review', 'stars']", 1),
        ("one_class", ["tokenize", config("one", {"train": str(one_class)})], "at least two", 1),
        ("missing_label", ["tokenize", config("nolabel", {"train": str(no_label)})],
         f"data.train: {no_label} line 4 has no label (column 'label' is empty)", 1),
        ("continuous_label", ["tokenize", config("scores", {"train": str(scores)})],
         f"data.label_column: column 'label' of {scores} holds 300 distinct numbers, some with a fraction", 1),
        ("strict_encoding", ["tokenize", config("latin", {"train": str(latin)})], "line 2, byte offset", 1),
        ("vectors_missing", ["tokenize", config("vmissing", tokenize={"pretrained_vectors": str(tmp_path / "v.txt")})],
         "tokenize.pretrained_vectors: ", 1),
        ("vectors_empty", ["tokenize", config("vempty", tokenize={"pretrained_vectors": str(empty)})],
         f"{empty}: empty; a vectors file has a line per word", 1),
        ("vectors_dimension", ["tokenize", config("vdim", tokenize={"pretrained_vectors": str(short_vector)})],
         f"{short_vector}: line 3: 2 values, expected 3 (as on line 1)", 1),
        ("vectors_binary", ["tokenize", config("vbin", tokenize={"pretrained_vectors": str(garbage)})],
         "not a vectors file", 1),
        ("next_char_vectors", ["tokenize", config("cvec", {"train": str(empty)}, task="next_char",
                                                  tokenize={"pretrained_vectors": str(empty)})],
         "tokenize.pretrained_vectors: next_char reads characters", 2),
        ("tfds_name", ["tokenize", config("tfds", {"source": "tfds", "name": "imdb_reviewz",
                                                  "data_dir": str(tmp_path / "tfds")})],
         "did you mean imdb_reviews", 1),
        ("no_checkpoint", ["export", config("nockpt"), "--run-dir", tmp_path / "fresh"],
         "run `rnnpipe tokenize` first", 1),
        ("not_saved_model", ["predict", tmp_path, "hello"], "is not a SavedModel export", 1),
        ("predict_not_utf8", ["predict", tmp_path, "--input", not_utf8],
         f"--input {not_utf8}: line 2 is not valid UTF-8 (byte 0xef at column 3)", 1),
        ("predict_empty_input", ["predict", tmp_path, "--input", empty_lines],
         f"--input {empty_lines} is empty: nothing to classify", 1),
        ("predict_empty_table", ["predict", tmp_path, "--input", empty, "--text-column", "text"],
         f"--input {empty} is empty: nothing to classify", 1),
        ("predict_nothing", ["predict", tmp_path], "give TEXT arguments or --input FILE", 2),
        ("predict_table_as_lines", ["predict", tmp_path, "--input", columns],
         f"--input {columns} is a CSV file, and predict reads one text per line; give --text-column C", 1),
        ("predict_no_such_column", ["predict", tmp_path, "--input", columns, "--text-column", "text"],
         f"--input {columns} has no column 'text'; its columns are ['review', 'stars']", 1),
        ("predict_column_of_nothing", ["predict", tmp_path, "hello", "--text-column", "text"],
         "--text-column reads a column of --input FILE", 2),
        ("evaluate_data_missing", ["evaluate", config("evaldata"), "--data", tmp_path / "nothing.csv"],
         f"--data: {tmp_path / 'nothing.csv'} does not exist", 1),
        ("generate_length", ["generate", tmp_path, "--prompt", "a", "--length", "-1"], "--length must be >= 0", None),
        ("generate_temperature", ["generate", tmp_path, "--prompt", "a", "--temperature", "0"],
         "--temperature must be > 0", None),
    ]  # fmt: skip
    return cases


def test_bad_inputs_give_one_line_and_nonzero_exit(tmp_path, monkeypatch):
    # Most cases use the default run directory, runs/<config name>, relative to the working directory: keep it in
    # tmp_path, not in the checkout the tests run from.
    monkeypatch.chdir(tmp_path)
    for name, argv, fragment, exit_code in bad_inputs(tmp_path):
        result = CliRunner().invoke(main, [str(a) for a in argv])
        assert result.exit_code == exit_code if exit_code else result.exit_code != 0, (name, result.exit_code)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (name, result.stderr[:2000])
        assert fragment in lines[0], (name, lines[0])
        assert len(lines[0]) <= 600, (name, len(lines[0]))
        assert "Traceback" not in result.output + result.stderr
        assert result.stdout == "", (name, result.stdout[:200])
        if exit_code == 2 and argv[0] in ("tokenize", "train"):  # a config error stops before anything is written
            assert not (tmp_path / "runs" / Path(argv[1]).stem).exists(), name


def test_run_dir_of_another_task_is_refused(sentiment_config, tmp_path):
    run_dir = tmp_path / "run"
    assert invoke("tokenize", sentiment_config, "--run-dir", run_dir).exit_code == 0
    chars = write_config(tmp_path / "c.toml", "next_char", {"train": str(plain_text(tmp_path / "t.txt")),
                                                            "test_fraction": 0.1})  # fmt: skip
    result = CliRunner().invoke(main, ["tokenize", str(chars), "--run-dir", str(run_dir)])
    assert result.exit_code != 0 and "holds a 'sentiment' run" in result.stderr


@pytest.mark.slow
def test_real_subprocess_end_to_end(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "e2e.toml", "sentiment", data, train={"epochs": 2})
    rnnpipe = Path(sys.executable).with_name("rnnpipe")
    command = [str(rnnpipe)] if rnnpipe.exists() else [sys.executable, "-m", "pipeline.cli"]
    result = subprocess.run(command + ["run", str(config), "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exported:" in result.stdout
    assert (tmp_path / "run" / "export" / "model" / "1" / "saved_model.pb").exists()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["accuracy"] > 0.8


def _rnnpipe(*args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the CLI's own choice, not ours
    return subprocess.run([str(Path(sys.executable).with_name("rnnpipe")), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env, **kwargs)  # fmt: skip


@pytest.mark.slow
def test_predict_and_generate_print_nothing_on_stderr(sentiment_run, next_char_run, tmp_path):
    """TensorFlow's C++ notices (oneDNN, CPU features, XLA) stay off stderr outside --debug; our errors do not."""
    predicted = _rnnpipe("predict", sentiment_run[3], "a wonderful film", "dull")
    assert predicted.returncode == 0 and predicted.stderr == "", predicted.stderr
    assert [json.loads(line)["text"] for line in predicted.stdout.splitlines()] == ["a wonderful film", "dull"]
    generated = _rnnpipe("generate", next_char_run[3], "--prompt", "to be", "--length", "20", "--seed", "1")
    assert generated.returncode == 0 and generated.stderr == "", generated.stderr
    assert generated.stdout.startswith("to be")
    refused = _rnnpipe("predict", tmp_path, "hello")
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    debug = _rnnpipe("--debug", "predict", sentiment_run[3], "a wonderful film")
    assert debug.returncode == 0 and "tensorflow" in debug.stderr.lower(), "--debug shows TensorFlow's log"


def test_the_wrong_kind_of_export_is_named_with_the_command_it_needs(sentiment_run, next_char_run):
    predicted = CliRunner().invoke(main, ["predict", str(next_char_run[3]), "hello"])
    assert predicted.exit_code == 1
    assert predicted.output.strip().endswith("is a next_char model: use `rnnpipe generate`"), predicted.output
    generated = CliRunner().invoke(main, ["generate", str(sentiment_run[3]), "--prompt", "hello"])
    assert generated.exit_code == 1
    assert generated.output.strip().endswith("is a sentiment model: use `rnnpipe predict`"), generated.output


def test_predict_input_streams_lines_with_bom_crlf_and_undecodable_arguments(sentiment_run, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"\xef\xbb\xbfsuperb brilliant film\r\n\r\nawful dull plot\r\n")
    result = CliRunner().invoke(main, ["predict", str(sentiment_run[3]), "caf\udce9", "--input", str(texts)])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["caf\ufffd", "superb brilliant film", "", "awful dull plot"]
    assert [line["label"] for line in lines[1:2] + lines[3:]] == ["pos", "neg"]


def test_predict_reads_a_column_of_a_csv_or_tsv_as_the_pipeline_reads_tables(sentiment_run, tmp_path):
    texts = ["superb brilliant film", 'an "awful", dull\nplot', "", "caf\u00e9 \ttab"]
    table = tmp_path / "new.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("id", "text"), *((k, text) for k, text in enumerate(texts))])
    tsv = tmp_path / "new.tsv"
    with open(tsv, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t").writerows([("text", "id"), *((text, k) for k, text in enumerate(texts))])
    for path in (table, tsv):
        result = CliRunner().invoke(main, ["predict", str(sentiment_run[3]), "--input", str(path), "--text-column",
                                           "text"])  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == texts


@pytest.mark.slow
def test_predict_into_a_pipe_closed_early_stops_quietly(sentiment_run, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("a wonderful film\n" * 5000, encoding="utf-8")
    rnnpipe = Path(sys.executable).with_name("rnnpipe")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    with subprocess.Popen([str(rnnpipe), "predict", str(sentiment_run[3]), "--input", str(texts)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:  # fmt: skip
        assert json.loads(process.stdout.readline())["text"] == "a wonderful film"
        process.stdout.close()  # as `| head -1` does
        stderr = process.stderr.read()
        assert process.wait(timeout=300) == 128 + signal.SIGPIPE
    assert stderr == b""


def test_a_file_system_error_is_one_line_naming_the_file(sentiment_config, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "run" / "vocabulary.json"))

    monkeypatch.setattr("pipeline.stages.tokenize.run", refuse)
    result = CliRunner().invoke(main, ["tokenize", str(sentiment_config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.stderr == (f"error: Permission denied: {tmp_path / 'run' / 'vocabulary.json'} (run with --debug for "
                             f"the traceback)\n")  # fmt: skip


def test_a_long_error_is_cut_to_one_line(monkeypatch, sentiment_config):
    from pipeline.errors import DataError

    def fail(*args, **kwargs):
        raise DataError("first line\n" + "x" * 10_000)

    monkeypatch.setattr("pipeline.stages.tokenize.run", fail)
    result = CliRunner().invoke(main, ["tokenize", str(sentiment_config), "--run-dir", str(sentiment_config.parent)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: first line xxx") and len(result.stderr) < 520


# Each command as a user types it, run in a fresh interpreter; the script reports what got imported.
_IMPORTS_SCRIPT = """
import sys
from pipeline.cli import main
sys.argv = ["rnnpipe", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("tensorflow", "keras", "custom_layers", "tensorflow_datasets") if m in sys.modules)
print("IMPORTED", ",".join(heavy), "EXIT", code, file=sys.stderr)
"""


@pytest.mark.slow
def test_config_init_and_help_import_no_tensorflow(tmp_path):
    csv = sentiment_csv(tmp_path / "reviews.csv")
    commands = [["--help"], ["config", str(REPO / "configs" / "mr_lstm.toml")],
                ["init", str(csv), "-o", str(tmp_path / "reviews.toml")]]  # fmt: skip
    commands += [[name, "--help"] for name in main.commands]
    for command in commands:
        result = subprocess.run([sys.executable, "-c", _IMPORTS_SCRIPT, *command], capture_output=True, text=True,
                                cwd=tmp_path, timeout=120)  # fmt: skip
        report = result.stderr.strip().splitlines()[-1]
        assert report == "IMPORTED  EXIT 0", (command, result.stderr[-2000:])


def test_a_long_read_draws_progress_on_stderr_and_a_short_one_nothing(capsys):
    from pipeline.cli import _ProgressBar

    short = _ProgressBar()
    short(100, 100)
    assert capsys.readouterr().err == ""
    long = _ProgressBar("reading word vectors")
    for done in (10, 60, 100):
        long(done, 100)
    captured = capsys.readouterr()
    assert "reading word vectors" in captured.err and captured.out == ""
    # With a delay, work that ends sooner draws nothing, however many reports it makes.
    quick = _ProgressBar("evaluating", delay=60.0)
    for done in (10, 60, 100):
        quick(done, 100)
    assert capsys.readouterr().err == ""
