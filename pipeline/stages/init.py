"""`rnnpipe init`: look at a data set (`pipeline.data.detect`) and write the starter config it needs.

    findings = detect.inspect(["data/reviews.csv"])   # format, columns, labels and counts, sizes, encoding
    print("\\n".join(findings.summary()))
    write_new(Path("reviews.toml"), starter_config(findings, Path("reviews.toml")))

The starter config holds the task and the data section (format, paths, columns, encoding, a held-out test share
when the data has no test split) and nothing else: every other key comes from the task's recipe, so a config
written today gets tomorrow's better recipe.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import tomllib

from pipeline import recipes
from pipeline.config import config_from_dict
from pipeline.data.detect import TEST_FRACTION, Findings
from pipeline.errors import PipelineError


def starter_config(findings: Findings, output: Path | None = None, vectors: str = "", unlabelled: str = "") -> str:
    """The starter config as TOML: the task and the data section, with what was found as comments, and a word
    vectors file and unlabelled texts when given (sentiment). Checked to load as a config before it is
    returned."""
    words = recipes.get(findings.task).labelled  # the labelled task reads words; the other, characters
    if vectors and not words:
        raise PipelineError(f"--vectors: pretrained word vectors are for task sentiment, not {findings.task}")
    if unlabelled and not words:
        raise PipelineError(f"--unlabelled: unlabelled texts are for task sentiment's pretraining, not "
                            f"{findings.task}")  # fmt: skip
    if unlabelled and not Path(unlabelled).expanduser().exists() and not glob.glob(unlabelled):
        raise PipelineError(f"--unlabelled: {unlabelled} does not exist")
    if vectors and not Path(vectors).expanduser().is_file():
        raise PipelineError(f"--vectors: {vectors} is not a file")
    this = str(output) if output is not None else "<this file>"
    lines = [f"# Starter config written by `rnnpipe init` for {findings.data}. What it found:"]
    lines += [f"#   {line}" for line in findings.summary()]
    lines += [
        "# It sets only what the data needs; every other key is the task's default (the project's recipe):",
        f"# `rnnpipe config {this}` prints them all, each with what it means. Change one here or with --set.",
    ]
    if not all(os.path.isabs(os.path.expanduser(split.spec)) for split in findings.splits.values()):
        cwd = os.getcwd()
        lines.append(f"# Paths are relative to the directory rnnpipe runs in (init ran in {cwd}), not to this file.")
    lines += [
        f"task = {_toml(findings.task)}",
        "",
        "[data]",
    ]
    for key, value in findings.data_section().items():
        if key == "test_fraction":
            where = "the last" if findings.format == "text" else "a seeded"
            lines.append(f"# The data has no test split: {where} {TEST_FRACTION:.0%} of train is held out for test.")
        lines.append(f"{key} = {_toml(value)}")
    if unlabelled:
        lines += ["# Texts without labels: `rnnpipe run` pretrains the model on them (and the training texts) as",
                  "# language models before training it on the labelled ones (rnnpipe pretrain).",
                  f"unlabelled = {_toml(unlabelled)}"]  # fmt: skip
    if vectors:
        lines += ["", "[tokenize]", f"pretrained_vectors = {_toml(vectors)}"]
    elif words:
        lines += ["", "# Words can start from pretrained vectors (GloVe, word2vec or fastText; gzip or not):",
                  "# [tokenize]", '# pretrained_vectors = "glove.6B.300d.txt"']  # fmt: skip
    text = "\n".join(lines) + "\n"
    config_from_dict(tomllib.loads(text))  # a bug here must not leave the user a config that does not load
    return text


def check_new(path: Path) -> None:
    """A PipelineError unless a config can be written at `path` without replacing anything."""
    if path.exists() or path.is_symlink():
        raise PipelineError(f"{path} exists; rnnpipe init never replaces a file: choose another -o, or move it away")
    if not path.parent.is_dir():
        raise PipelineError(f"{path.parent} is not a folder: create it first, or choose another -o")


def write_new(path: Path, text: str) -> None:
    """Write `text` to `path`, which must not exist (also if it appears meanwhile)."""
    check_new(path)
    try:
        with open(path, "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise PipelineError(f"{path} exists; rnnpipe init never replaces a file: choose another -o") from None


def _toml(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's string escapes are a subset of TOML's
    return repr(value)
