"""`rnnpipe init`: each data layout inspected and its starter config run unedited; what it cannot decide, refuses or
rejects as one line on stderr."""

import json
import random
from pathlib import Path

import pytest
import tomllib
from click.testing import CliRunner

from pipeline import tasks
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.data import detect
from pipeline.errors import PipelineError
from pipeline.stages import init
from tests.pipeline.helpers import FILLER, NEGATIVE, POSITIVE, plain_text, sentiment_csv

# Tiny-model and epoch settings only (the data keys always come from the written config), so each run takes seconds.
TINY = {
    "model.embedding_dim": 8, "model.units": 8, "model.dropout": 0.0, "model.output_dropout": 0.0,
    "train.epochs": 1, "train.batch_size": 16, "train.sequence_length": 20, "train.backup_every_steps": 50,
    "train.adversarial_epsilon": 0.0, "train.virtual_adversarial_epsilon": 0.0, "train.word_dropout": 0.0,
    "tokenize.max_tokens": 200, "tokenize.sequence_length": 16,
}  # fmt: skip


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sentence(rng, label, extra=()):
    words = rng.sample(FILLER, 4) + rng.sample(POSITIVE if label == "pos" else NEGATIVE, 2) + list(extra)
    rng.shuffle(words)
    return " ".join(words)


def mr_like(folder: Path, n: int = 80) -> Path:
    """reviews.pos / reviews.neg, one sentence a line, in Windows-1252 (accents and dashes that are not UTF-8)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for label in ("pos", "neg"):
        lines = [sentence(rng, label, ["café"] if i % 3 else ["naïve", "—"]) for i in range(n)]
        (folder / f"reviews.{label}").write_bytes(("\n".join(lines) + "\n").encode("windows-1252"))
    return folder


def table(path: Path, n: int = 160, delimiter: str = ",", header=("id", "review", "sentiment"), bom=False) -> Path:
    """An id column (a value per row), the text, and the class; labels alternate."""
    rng = random.Random(2)
    lines = [delimiter.join(header)]
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        lines.append(delimiter.join([str(1000 + i), sentence(rng, label), label]))
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def class_folders(root: Path, splits=("train", "test"), per_class=(60, 15)) -> Path:
    rng = random.Random(3)
    for split, n in zip(splits, per_class):
        for label in ("pos", "neg"):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                (root / split / label / f"{i}.txt").write_text(sentence(rng, label), encoding="utf-8")
    return root


def run_unedited(tmp_path, monkeypatch, data: str, expect_test: int | None, *init_args) -> str:
    """`rnnpipe init DATA -o starter.toml && rnnpipe run starter.toml` from one directory, as a user would;
    returns init's output."""
    monkeypatch.chdir(tmp_path)
    made = invoke("init", data, "-o", "starter.toml", *init_args)
    assert made.exit_code == 0, made.output
    text = Path("starter.toml").read_text(encoding="utf-8")
    assert f"Paths are relative to the directory rnnpipe runs in (init ran in {tmp_path})" in text
    written = tomllib.loads(text)
    assert set(written) == {"task", "data"}, "only what the data needs; the rest is the task's defaults"
    assert not Path(written["data"]["train"]).is_absolute(), "a relative DATA stays relative"
    overrides = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    ran = invoke("run", "starter.toml", *overrides)
    assert ran.exit_code == 0, ran.output
    metrics = json.loads(Path("runs/starter/metrics.json").read_text())
    if expect_test is not None:
        assert metrics["split"] == "test" and metrics["examples"] == expect_test
    assert Path("runs/starter/export/model/1").is_dir()
    return made.output


# --- each layout, inspected and run unedited --------------------------------------------------------------------


@pytest.mark.slow
def test_class_files_in_windows_1252(tmp_path, monkeypatch):
    mr_like(tmp_path / "data")
    out = run_unedited(tmp_path, monkeypatch, "data/reviews.*", 16)
    assert "one file per class (label = file extension)" in out
    assert "encoding Windows-1252: not UTF-8" in out and "160 examples in 2 classes: neg 80, pos 80" in out
    written = tomllib.loads((tmp_path / "starter.toml").read_text())
    assert written == {"task": "sentiment", "data": {"format": "class_files", "train": "data/reviews.*",
                                                     "encoding": "windows-1252", "test_fraction": 0.1}}  # fmt: skip


@pytest.mark.slow
def test_csv_with_other_column_names(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    table(tmp_path / "data" / "reviews.csv")
    out = run_unedited(tmp_path, monkeypatch, "data/reviews.csv", 16)
    assert "text 'review' (only text-like column), label 'sentiment' (only class-like column)" in out
    data = tomllib.loads((tmp_path / "starter.toml").read_text())["data"]
    assert data["format"] == "csv" and data["text_column"] == "review" and data["label_column"] == "sentiment"


@pytest.mark.slow
def test_tsv_with_byte_order_mark(tmp_path, monkeypatch):
    table(tmp_path / "train.tsv", n=120, delimiter="\t", header=("id", "sentence", "label"), bom=True)
    out = run_unedited(tmp_path, monkeypatch, "train.tsv", 12)
    assert "TSV" in out and "UTF-8 with a byte-order mark" in out
    data = tomllib.loads((tmp_path / "starter.toml").read_text())["data"]
    assert (data["format"], data["encoding"], data["text_column"]) == ("tsv", "utf-8", "sentence")


@pytest.mark.slow
def test_class_folders_with_a_test_folder(tmp_path, monkeypatch):
    class_folders(tmp_path / "reviews")
    (tmp_path / "reviews" / "README").write_text("about this data set\n")
    out = run_unedited(tmp_path, monkeypatch, "reviews", 30)
    assert "one folder per class" in out and "test: reviews/test: 30 examples" in out and "ignored README" in out
    data = tomllib.loads((tmp_path / "starter.toml").read_text())["data"]
    assert data == {"format": "class_dirs", "train": "reviews/train", "test": "reviews/test", "encoding": "utf-8"}


@pytest.mark.slow
def test_plain_text_is_next_char(tmp_path, monkeypatch):
    plain_text(tmp_path / "corpus.txt", chars=12000)
    out = run_unedited(tmp_path, monkeypatch, "corpus.txt", None)
    assert "plain text" in out and "12,000 characters" in out and "task next_char (one plain text" in out
    written = tomllib.loads((tmp_path / "starter.toml").read_text())
    assert written["task"] == "next_char" and written["data"]["test_fraction"] == 0.1
    metrics = json.loads((tmp_path / "runs/starter/metrics.json").read_text())
    assert metrics["split"] == "test" and 1000 < metrics["examples"] <= 1200, "the last 10% is the test split"


def test_real_mr_is_inspected_and_its_config_loads(shared_data, tmp_path):
    mr = shared_data / "mr"
    if not mr.is_dir():
        pytest.skip(f"{mr} not found")
    result = invoke("init", mr, "-o", tmp_path / "mr.toml")
    assert result.exit_code == 0, result.output
    assert "Windows-1252" in result.output and "neg 5,331, pos 5,331" in result.output
    config = load_config(tmp_path / "mr.toml")
    assert (config.task, config.data.format, config.data.encoding) == ("sentiment", "class_files", "windows-1252")
    assert config.data.test_fraction == 0.1
    splits = tasks.get("sentiment").load_splits(config)  # the whole of both files decodes as chosen
    sizes = [sum(1 for _ in split) for split in (splits.train, splits.validation, splits.test)]
    assert sum(sizes) == 10662 and sizes[2] == 1066 and splits.labels == ("neg", "pos")


# --- what it cannot decide, refuses or rejects: one line, non-zero, nothing written --------------------------------


def one_error_line(result) -> str:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_several_candidate_label_columns_name_the_flag(tmp_path):
    rng = random.Random(4)
    rows = [f"{sentence(rng, label)},{label},{rng.choice(['web', 'news', 'blog'])}"
            for label in ("pos", "neg") * 40]  # fmt: skip
    path = tmp_path / "mixed.csv"
    path.write_text("text,sentiment,source\n" + "\n".join(rows) + "\n", encoding="utf-8")
    line = one_error_line(invoke("init", path, "-o", tmp_path / "mixed.toml"))
    assert "cannot tell the label column" in line and "'sentiment'" in line and "'source'" in line
    assert "--label-column" in line
    assert not (tmp_path / "mixed.toml").exists()
    chosen = invoke("init", path, "-o", tmp_path / "mixed.toml", "--label-column", "sentiment")
    assert chosen.exit_code == 0, chosen.output
    assert load_config(tmp_path / "mixed.toml").data.label_column == "sentiment"


def test_several_candidate_text_columns_name_the_flag(tmp_path):
    rng = random.Random(5)
    rows = [f"{sentence(rng, label)},{sentence(rng, label)},{label}" for label in ("pos", "neg") * 20]
    path = tmp_path / "pairs.csv"
    path.write_text("premise,hypothesis,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    line = one_error_line(invoke("init", path))
    assert "cannot tell the text column" in line and "--text-column" in line


def test_continuous_or_per_row_label_columns_are_flagged(tmp_path):
    rng = random.Random(6)
    rows = [f"{sentence(rng, 'pos')},{(i * 37 % 60) / 60 + 0.001:.4f},{i}" for i in range(60)]
    path = tmp_path / "scores.csv"
    path.write_text("text,score,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    # A column named "label" is held to training's rule, which takes 60 integer classes; init says what it sees.
    per_row = invoke("init", path, "-o", tmp_path / "scores.toml")
    assert per_row.exit_code == 0, per_row.output
    assert "label column 'label' has a value for nearly every row (60 distinct in 60 rows)" in per_row.output
    continuous = one_error_line(invoke("init", path, "--label-column", "score"))
    assert "label column 'score' holds 60 distinct numbers, some with a fraction" in continuous


def _labels_csv(path: Path, labels: list[str], label_column: str = "label") -> Path:
    rng = random.Random(7)
    rows = [f"{sentence(rng, 'pos')},{label}" for label in labels for _ in range(3)]
    path.write_text(f"text,{label_column}\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _training_accepts(path: Path, label_column: str) -> bool:
    """What training decides on the file: its reader and label rule, as pipeline.data.splits applies them first."""
    from pipeline.config import DataConfig
    from pipeline.data import files
    from pipeline.errors import DataError

    data = DataConfig(format="csv", train=str(path), label_column=label_column)
    try:
        files.check_labels((label for _, label in files.read_examples(data, "data.train", data.train, "csv")), "train")
    except DataError:
        return False
    return True


@pytest.mark.parametrize(
    "labels",
    [
        [str(i) for i in range(20)],
        [str(i) for i in range(21)],
        [str(i) for i in range(50)],
        [str(i) for i in range(60)],
        [f"{i}.5" for i in range(20)],  # fractional numbers: classes up to training's CONTINUOUS_DISTINCT ...
        [f"{i}.5" for i in range(21)],  # ... a continuous target beyond
        ["1.5", "2", "3"],
        ["only"],
    ],
    ids=["20-int", "21-int", "50-int", "60-int", "20-fraction", "21-fraction", "mixed", "one-class"],
)
@pytest.mark.parametrize("named", ["by-flag", "by-name"])
def test_a_named_label_column_is_held_to_trainings_rule_exactly(tmp_path, labels, named):
    column = "stars" if named == "by-flag" else "label"
    path = _labels_csv(tmp_path / "labels.csv", labels, column)
    flag = ["--label-column", column] if named == "by-flag" else []
    result = invoke("init", path, "-o", tmp_path / "labels.toml", *flag)
    assert (result.exit_code == 0) == _training_accepts(path, column), result.output
    if result.exit_code == 0:
        assert load_config(tmp_path / "labels.toml").data.label_column == column


def test_a_guessed_label_column_is_stricter_and_says_so(tmp_path):
    path = _labels_csv(tmp_path / "stars.csv", [str(i) for i in range(60)], "stars")
    line = one_error_line(invoke("init", path))
    assert "'stars': looks continuous" in line and "--label-column" in line and "training's rule" in line
    assert invoke("init", path, "-o", tmp_path / "stars.toml", "--label-column", "stars").exit_code == 0


def test_an_existing_output_is_never_replaced(tmp_path):
    data = sentiment_csv(tmp_path / "train.csv")
    existing = tmp_path / "mine.toml"
    existing.write_text("# my own config\n", encoding="utf-8")
    line = one_error_line(invoke("init", data, "-o", existing))
    assert "mine.toml exists" in line and "never replaces" in line
    assert existing.read_text(encoding="utf-8") == "# my own config\n"
    with pytest.raises(PipelineError, match="exists"):
        init.write_new(existing, "task = 'sentiment'\n")


def test_without_output_the_config_goes_to_stdout_and_the_findings_to_stderr(tmp_path):
    data = sentiment_csv(tmp_path / "train.csv")
    result = invoke("init", data)
    assert result.exit_code == 0, result.output
    config = tomllib.loads(result.stdout)
    assert config["task"] == "sentiment" and config["data"]["train"] == str(data)
    assert "160 rows in 2 classes: neg 80, pos 80" in result.stderr and "task = " not in result.stderr
    assert "rnnpipe config <this file>" in result.stdout


@pytest.mark.parametrize("content, fragment", [
    (b"\x1f\x8b\x08\x00" + bytes(40), "gzip-compressed"),
    (b"PK\x03\x04" + bytes(40), "zip archive"),
    (b"text,label\nfine\x00,pos\n", "NUL byte at offset 15"),
    (b"text,label\n" + bytes(range(1, 32)) * 4 + b",pos\n", "control characters"),
    (b"text,label\nok \x81\x8d,pos\nfine,neg\n", "byte 0x81 at offset 14: neither UTF-8 nor Windows-1252"),
], ids=["gzip", "zip", "nul", "control-characters", "undecodable"])  # fmt: skip
def test_binary_and_undecodable_files_are_rejected(tmp_path, content, fragment):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    assert fragment in one_error_line(invoke("init", path))


def test_task_and_data_that_do_not_fit(tmp_path):
    csv_path = sentiment_csv(tmp_path / "train.csv")
    text_path = plain_text(tmp_path / "corpus.txt")
    assert "--format text reads the file as one plain text" in one_error_line(
        invoke("init", csv_path, "--task", "next_char")
    )
    assert "sentiment needs labelled data" in one_error_line(invoke("init", text_path, "--task", "sentiment"))
    assert "does not exist" in one_error_line(invoke("init", tmp_path / "missing.csv"))
    assert "no file matches" in one_error_line(invoke("init", str(tmp_path / "nothing.*")))
    assert "has no column 'stars'" in one_error_line(invoke("init", csv_path, "--label-column", "stars"))
    headerless = tmp_path / "rows.csv"
    headerless.write_text("a really wonderful film from start to end,pos\nawful,neg\n", encoding="utf-8")
    assert "add a header row" in one_error_line(invoke("init", headerless))


# --- layouts, encodings and bounds, inspected only ------------------------------------------------------------


def test_folder_of_class_files_and_the_shell_expanded_glob_agree(tmp_path):
    folder = mr_like(tmp_path / "my[data]")  # glob characters in the folder name are escaped in the pattern
    (folder / "LICENSE").write_text("free\n", encoding="utf-8")
    from_folder = detect.inspect([str(folder)])
    assert from_folder.splits["train"].spec == str(tmp_path / "my[[]data]" / "reviews.*")
    assert any("ignored LICENSE" in note for note in from_folder.notes)
    expanded = detect.inspect([str(folder / "reviews.neg"), str(folder / "reviews.pos")])
    assert expanded.data_section() == from_folder.data_section()
    config = load_config(None, [f"data.{k}={v}" for k, v in from_folder.data_section().items()])
    assert tasks.get("sentiment").load_splits(config).labels == ("neg", "pos")


def test_class_files_named_by_their_stem(tmp_path):
    rng = random.Random(7)
    for label in ("pos", "neg", "mixed"):
        (tmp_path / f"{label}.txt").write_text("\n".join(sentence(rng, "pos") for _ in range(20)), encoding="utf-8")
    (tmp_path / "notes.md").write_text("# notes\n", encoding="utf-8")
    found = detect.inspect([str(tmp_path)])
    assert found.splits["train"].spec == str(tmp_path / "*.txt") and found.splits["train"].labels == {
        "mixed": 20, "neg": 20, "pos": 20}  # fmt: skip
    assert "label = file name" in found.format_detail


def test_utf16_table_is_read_by_the_pipeline(tmp_path):
    path = tmp_path / "excel.csv"
    rng = random.Random(8)
    rows = [f"{sentence(rng, label)} ☃,{label}" for label in ("pos", "neg") * 20]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-16")
    found = detect.inspect([str(path)])
    assert found.encoding == "utf-16" and found.splits["train"].labels == {"pos": 20, "neg": 20}
    config = load_config(None, [f"data.{k}={v}" for k, v in found.data_section().items()])
    splits = tasks.get("sentiment").load_splits(config)
    assert splits.labels == ("neg", "pos") and "☃" in next(iter(splits.train))["text"].numpy().decode()


def test_huge_files_are_sampled_not_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(detect, "WHOLE_FILE_BYTES", 64 << 10)
    monkeypatch.setattr(detect, "HEAD_BYTES", 16 << 10)
    monkeypatch.setattr(detect, "BLOCK_BYTES", 2 << 10)
    bound = (16 << 10) + detect.BLOCKS * (2 << 10)
    # A CSV sorted by class: the head alone would see one class; the blocks through the file see both.
    rng = random.Random(9)
    rows = [f"{sentence(rng, label)},{label}" for label in ["neg"] * 4000 + ["pos"] * 4000]
    path = tmp_path / "sorted.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    found = detect.inspect([str(path)]).splits["train"]
    assert found.estimated and found.read_bytes <= bound < path.stat().st_size / 4
    assert set(found.labels) == {"neg", "pos"} and abs(found.examples - 8000) < 800
    # A Windows-1252 byte near the end of a large text is found in the last block.
    text = plain_text(tmp_path / "big.txt", chars=400_000)
    text.write_bytes(text.read_bytes()[:-100] + b"caf\xe9 " * 20)
    big = detect.inspect([str(text)])
    assert big.encoding == "windows-1252" and big.splits["train"].estimated
    assert abs(big.splits["train"].examples - 400_000) < 40_000
    assert "~" in "\n".join(big.summary())
    # Blocks from inside a UTF-8 file start mid-character: that is not mistaken for another encoding.
    accented = tmp_path / "accented.txt"
    accented.write_text("naïve café — ☃ 😀 über\n" * 20_000, encoding="utf-8")
    assert detect.inspect([str(accented)]).encoding == "utf-8"


def test_huge_class_folders_read_a_few_files_per_class(tmp_path, monkeypatch):
    monkeypatch.setattr(detect, "SAMPLED_FILES", 5)
    class_folders(tmp_path / "reviews", splits=("train",), per_class=(40,))
    found = detect.inspect([str(tmp_path / "reviews")])
    train = found.splits["train"]
    assert train.labels == {"neg": 40, "pos": 40} and not train.estimated
    assert train.read_bytes < train.size / 4


def test_given_validation_and_test_data_replace_the_held_out_shares(tmp_path):
    train, test = table(tmp_path / "train.csv"), table(tmp_path / "test.csv", n=40)
    found = detect.inspect([str(train)], test=str(test), validation=str(test))
    section = found.data_section()
    assert section["test"] == section["validation"] == str(test) and "test_fraction" not in section
    assert found.splits["test"].labels == {"neg": 20, "pos": 20}
    tsv = table(tmp_path / "other.tsv", delimiter="\t")
    assert "every split is read in one format" in one_error_line(invoke("init", train, "--test", tsv))
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("id,review,sentiment\n1,a fine film indeed,mixed\n", encoding="utf-8")
    assert "labels ['mixed'] do not occur in the training data" in one_error_line(invoke("init", train, "--test",
                                                                                          unknown))  # fmt: skip


def test_a_quoted_tsv_is_detected_and_the_choice_written(tmp_path):
    import csv

    rng = random.Random(8)
    rows = [(f'{sentence(rng, label)}\t"{label}" said\nthe critic', label) for label in ("pos", "neg") * 30]
    path = tmp_path / "quoted.tsv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t").writerows([("text", "label"), *rows])
    result = invoke("init", path, "-o", tmp_path / "quoted.toml")
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "quoted.toml")
    assert config.data.tsv_quoting == "quoted"
    splits = tasks.get("sentiment").load_splits(config)
    assert splits.labels == ("neg", "pos")

    glue = tmp_path / "glue.tsv"
    glue.write_text("text\tlabel\n" + "\n".join(f'"{sentence(rng, "pos")}\t{label}' for label in ("pos", "neg") * 30),
                    encoding="utf-8")  # fmt: skip
    assert invoke("init", glue, "-o", tmp_path / "glue.toml").exit_code == 0
    assert load_config(tmp_path / "glue.toml").data.tsv_quoting == "none"


def test_labels_that_differ_only_by_case_stop_init_naming_them_and_the_flag(tmp_path):
    rng = random.Random(9)
    rows = [f"{sentence(rng, 'pos')},{label}" for label in ["pos", "POS", " pos", "neg"] * 10]
    path = tmp_path / "cases.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    line = one_error_line(invoke("init", path, "-o", tmp_path / "cases.toml"))
    assert "labels that differ only by case: 'POS', 'pos'" in line and "--label-case" in line
    assert invoke("init", path, "-o", tmp_path / "cases.toml", "--label-case", "fold").exit_code == 0
    config = load_config(tmp_path / "cases.toml")
    assert config.data.label_case == "fold"
    assert tasks.get("sentiment").load_splits(config).labels == ("neg", "pos")


def test_vectors_are_written_for_sentiment_and_refused_otherwise(tmp_path):
    data = sentiment_csv(tmp_path / "reviews.csv")
    (tmp_path / "glove.txt").write_text("the 0.1 0.2\n", encoding="utf-8")
    made = invoke("init", data, "-o", tmp_path / "with.toml", "--vectors", tmp_path / "glove.txt")
    assert made.exit_code == 0, made.output
    config = load_config(tmp_path / "with.toml")
    assert config.tokenize.pretrained_vectors == str(tmp_path / "glove.txt")
    without = invoke("init", data)
    assert '# pretrained_vectors = "glove.6B.300d.txt"' in without.stdout
    assert load_config(tmp_path / "with.toml").tokenize.pretrained_vectors  # the hint is a comment, not a key
    missing = invoke("init", data, "--vectors", tmp_path / "nope.txt")
    assert missing.exit_code != 0 and "--vectors:" in missing.output and "nope.txt is not a file" in missing.output
    text = plain_text(tmp_path / "corpus.txt")
    refused = invoke("init", text, "--vectors", tmp_path / "glove.txt")
    assert refused.exit_code != 0 and "pretrained word vectors are for task sentiment" in refused.output


def test_aclimdbs_unsup_folder_is_named_for_pretraining_and_taken_with_the_flag(tmp_path):
    root = class_folders(tmp_path / "aclImdb")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("a review without a label", encoding="utf-8")
    unsup = str(root / "train" / "unsup")
    found = invoke("init", root)
    assert found.exit_code == 0, found.output
    assert (
        f"skipped the folder unsup (unlabelled examples), as training does; to pretrain on them: --unlabelled {unsup}"
        in found.output
    )
    made = invoke("init", root, "-o", tmp_path / "imdb.toml", "--unlabelled", unsup)
    assert made.exit_code == 0, made.output
    assert load_config(tmp_path / "imdb.toml").data.unlabelled == unsup
