"""Every `error:` message the README's troubleshooting table quotes is the message the code gives in that case.

Each quoted message has a case here that makes it happen through the command line, in a folder laid out as the
README's examples are (reviews.csv, runs/x, ...); "..." in a quote stands for any text. A quote added to the README
without a case, or a case whose message drifted from its quote, fails.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import REPO
from tests.pipeline.helpers import sentiment_csv, write_config
from tests.pipeline.run.test_rundir import read_only


def quoted_errors() -> list[str]:
    """The messages the troubleshooting table quotes; a continuation ("... is empty") is one too."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`(error: (?:[^`]|`[^`|]*`(?=[^|]))*?|\.\.\. [^`]*)`(?:[,;/ ]|$)", table, re.M)


def matches(quote: str, message: str) -> bool:
    if quote.startswith("... "):
        quote = "error: " + quote
    pattern = ".*".join(re.escape(part) for part in quote.split("..."))
    return re.fullmatch(pattern, message) is not None


def invoke(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.exit_code != 0 and len(errors) == 1, (args, result.output)
    return errors[0]


def sentiment_config(path: str = "x.toml", train: str = "reviews.csv", **data) -> Path:
    lines = ['task = "sentiment"', "[data]", f'train = "{train}"'] + [f"{k} = {json.dumps(v)}" for k, v in
                                                                      data.items()]  # fmt: skip
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def table(name: str, header: str, rows: list[str]) -> str:
    Path(name).write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return name


def tiny_trained(tmp_path: Path) -> Path:
    data = {"train": str(sentiment_csv(tmp_path / "reviews.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "x.toml", "sentiment", data, train={"epochs": 1})
    assert CliRunner().invoke(main, ["tokenize", str(config)]).exit_code == 0
    assert CliRunner().invoke(main, ["train", str(config)]).exit_code == 0
    return config


def case_unknown_key(tmp_path, _):
    return invoke("config", sentiment_config(), "--set", "model.unit=3")


def case_wrong_type(tmp_path, _):
    return invoke("config", sentiment_config(), "--set", "model.units=many")


def case_not_finite(tmp_path, _):
    return invoke("config", sentiment_config(), "--set", "train.learning_rate=nan")


def case_no_test_split(tmp_path, _):
    sentiment_csv(tmp_path / "reviews.csv")
    return invoke("evaluate", sentiment_config(), "--set", "data.test_fraction=0")


def case_missing_file(tmp_path, _):
    return invoke("tokenize", sentiment_config(train="data/reviews.csv"))


def case_empty_file(tmp_path, _):
    Path("data").mkdir()
    Path("data/reviews.csv").write_text("")
    return invoke("tokenize", sentiment_config(train="data/reviews.csv"))


def vectors_case(content: bytes) -> str:
    sentiment_csv(Path("reviews.csv"))
    Path("glove.txt").write_bytes(content)
    config = sentiment_config(test_fraction=0.2)
    return invoke("tokenize", config, "--set", "tokenize.pretrained_vectors=glove.txt")


def case_vectors_dimension(tmp_path, _):
    return vectors_case(b"the " + b"0.1 " * 49 + b"0.1\nfilm " + b"0.1 " * 49 + b"0.1\ngood " + b"0.1 " * 48 + b"0.1\n")


def case_vectors_empty(tmp_path, _):
    return vectors_case(b"")


def case_vectors_garbage(tmp_path, _):
    return vectors_case(b"PK\x03\x04 zip archive\n" + bytes(range(256)))


def case_no_column(tmp_path, _):
    table("reviews.csv", "review,stars", [f"text {i},{i % 5}" for i in range(50)])
    return invoke("tokenize", sentiment_config())


def case_empty_label(tmp_path, _):
    table("train.csv", "text,label", ["a,pos", "b,neg", "c,", "d,pos"])
    return invoke("tokenize", sentiment_config(train="train.csv"))


def case_continuous(tmp_path, _):
    table("reviews.csv", "text,label", [f"text {i},{i / 7:.3f}" for i in range(300)])
    return invoke("tokenize", sentiment_config())


def case_one_class(tmp_path, _):
    table("reviews.csv", "text,label", [f"text {i},x" for i in range(50)])
    return invoke("tokenize", sentiment_config())


def case_label_case(tmp_path, _):
    table("reviews.csv", "text,label", [f"text {i},{label}" for i, label in enumerate(["pos", "POS"] * 20)])
    return invoke("tokenize", sentiment_config())


def case_tsv_two_ways(tmp_path, _):
    table("x.tsv", "text\tlabel", ["plain\tpos", '"quoted"\tneg', "more\tpos"])
    return invoke("tokenize", sentiment_config(train="x.tsv"))


def case_encoding(tmp_path, shared_data):
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        shutil.copy(shared_data / "mr" / name, name)
    return invoke("tokenize", sentiment_config(train="rt-polarity.*"))


def case_tfds_name(tmp_path, _):
    return invoke("tokenize", sentiment_config(source="tfds", name="imdb_review"))


def case_tfds_offline(tmp_path, _):
    from tensorflow_datasets.core.download import downloader

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(downloader, "MAX_RETRIES", 0)  # this machine has no route to the dataset's host
        patch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
        return invoke("tokenize", sentiment_config(source="tfds", name="imdb_reviews", data_dir=str(tmp_path)))


def case_changed_config(tmp_path, _):
    config = tiny_trained(tmp_path)
    config.write_text(config.read_text().replace("units = 8", "units = 150"))
    assert CliRunner().invoke(main, ["train", str(config), "--overwrite"]).exit_code == 0
    config.write_text(config.read_text().replace("units = 150", "units = 256"))
    return invoke("train", config)


def case_stage_before(tmp_path, _):
    sentiment_csv(tmp_path / "reviews.csv")
    return invoke("train", sentiment_config())


def case_in_use(tmp_path, _):
    from pipeline.config import load_config
    from pipeline.run import rundir

    sentiment_csv(tmp_path / "reviews.csv")
    config = sentiment_config()
    with rundir.opened("runs/x", load_config(config)):
        holder = {
            "pid": 4242,
            "host": "host",
            "started": "2026-12-01T10:00:00+00:00",
            "command": "rnnpipe train x.toml",
        }
        Path("runs/x/.lock").write_text(json.dumps(holder) + "\n")
        return invoke("tokenize", config)


def case_read_only(tmp_path, _):
    sentiment_csv(tmp_path / "reviews.csv")
    config = sentiment_config()
    assert CliRunner().invoke(main, ["tokenize", str(config)]).exit_code == 0
    with read_only(Path("runs/x")):
        return invoke("tokenize", config, "--overwrite")


def case_diverged(tmp_path, _):
    config = tiny_trained(tmp_path)
    # Adam moves every weight by about the learning rate per step: at 1e38 the next products overflow float32.
    return invoke("train", config, "--overwrite", "--set", "train.learning_rate=1e38", "--set", "train.clipnorm=0",
                  "--set", "train.epochs=3")  # fmt: skip


def case_length(tmp_path, next_char_export):
    return invoke("generate", next_char_export, "--prompt", "a", "--length", "100000000")


def case_temperature(tmp_path, _):
    return invoke("generate", "runs/x", "--prompt", "a", "--temperature", "inf")


def case_top_p(tmp_path, _):
    return invoke("generate", "runs/x", "--prompt", "a", "--top-p", "2")


def case_seed(tmp_path, _):
    return invoke("generate", "runs/x", "--prompt", "a", "--seed", str(2**63))


def case_input_encoding(tmp_path, _):
    Path("texts.txt").write_bytes(b"fine\nna\xefve\n")
    return invoke("predict", "runs/x", "--input", "texts.txt")


def case_not_an_export(tmp_path, _):
    Path("runs/x").mkdir(parents=True)
    return invoke("predict", "runs/x", "hello")


CASES = {
    "error: unknown key 'model.unit'": case_unknown_key,
    "error: model.units: expected int": case_wrong_type,
    "error: train.learning_rate: must be a finite": case_not_finite,
    "error: evaluate.split: 'test', but": case_no_test_split,
    "error: data.train: data/reviews.csv does not exist": case_missing_file,
    "... is empty": case_empty_file,
    "error: data.train: reviews.csv has no column": case_no_column,
    "error: glove.txt: line 3": case_vectors_dimension,
    "... empty; a vectors file": case_vectors_empty,
    "... line 1 is neither": case_vectors_garbage,
    "error: data.train: train.csv line 4 has no label": case_empty_label,
    "... holds 300 distinct numbers": case_continuous,
    "... holds 1 class(es)": case_one_class,
    "... holds labels that differ only by case": case_label_case,
    "error: data.train: x.tsv: line 3 reads two ways": case_tsv_two_ways,
    "error: rt-polarity.neg: line 32": case_encoding,
    "error: data.name: no TFDS dataset named": case_tfds_name,
    "error: cannot download/prepare TFDS dataset": case_tfds_offline,
    "error: train: model.units: 150 -> 256": case_changed_config,
    "error: runs/x/vocabulary.json not found": case_stage_before,
    "error: run directory runs/x is in use": case_in_use,
    "error: run directory runs/x is read-only": case_read_only,
    "error: training diverged": case_diverged,
    "error: --length 100,000,000": case_length,
    "error: --temperature": case_temperature,
    "error: --top-p": case_top_p,
    "error: --seed": case_seed,
    "error: --input texts.txt": case_input_encoding,
    "error: runs/x is not a SavedModel export": case_not_an_export,
}


def test_every_quoted_error_has_a_case():
    quotes = quoted_errors()
    assert len(quotes) == len(CASES)
    for quote in quotes:
        assert sum(quote.startswith(key) for key in CASES) == 1, quote


@pytest.fixture(scope="module")
def next_char_export(tmp_path_factory):
    from pipeline.config import load_config
    from pipeline.stages import export, tokenize, train
    from tests.pipeline.helpers import plain_text

    root = tmp_path_factory.mktemp("next_char")
    data = {"train": str(plain_text(root / "corpus.txt")), "test_fraction": 0.1}
    config = load_config(write_config(root / "c.toml", "next_char", data, train={"epochs": 1}), [])
    tokenize.run(config, root / "run")
    train.run(config, root / "run")
    return export.run(config, root / "run").path


@pytest.mark.slow
@pytest.mark.parametrize("quote", quoted_errors())
def test_the_quoted_error_is_the_real_one(quote, tmp_path, monkeypatch, request):
    (case,) = [case for key, case in CASES.items() if quote.startswith(key)]
    extra = None
    if case is case_encoding:
        extra = request.getfixturevalue("shared_data")
    elif case is case_length:
        extra = request.getfixturevalue("next_char_export")
    monkeypatch.chdir(tmp_path)
    message = case(tmp_path, extra).replace(str(tmp_path) + os.sep, "")
    assert matches(quote, message), (quote, message)
