"""Every data source: local formats, encodings, held-out splits, TFDS (mocked and offline), and their errors."""

import csv
import itertools

import pytest

from pipeline import tasks
from pipeline.config import config_from_dict
from pipeline.data import files
from pipeline.data.files import check_labels
from pipeline.errors import ConfigError, DataError


def sentiment(tmp_path, **data):
    """No test split held out unless asked for: these tests look at train and validation."""
    return config_from_dict({"task": "sentiment", "seed": 3, "data": {"validation_fraction": 0.25, "test_fraction": 0.0,
                                                                      **data}})  # fmt: skip


def load_splits(config):
    return tasks.get(config.task).load_splits(config)


def examples(ds):
    return [(x["text"].numpy().decode(), x["label"].numpy().decode()) for x in ds]


def text_of(ds):
    return "".join(chunk.numpy().decode() for chunk in ds)


def write_csv(path, rows, header=("text", "label"), delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


ROWS = [(f'review number {i}, "quoted"', "good" if i % 3 else "bad") for i in range(20)]


def test_csv_held_out_validation_is_seeded_and_disjoint(tmp_path):
    path = write_csv(tmp_path / "train.csv", ROWS)
    splits = load_splits(sentiment(tmp_path, train=str(path)))
    train, validation = examples(splits.train), examples(splits.validation)
    assert splits.labels == ("bad", "good")
    assert len(validation) == 5 and len(train) == 15
    assert sorted(train + validation) == sorted(ROWS)
    again = load_splits(sentiment(tmp_path, train=str(path)))
    assert examples(again.validation) == validation, "same seed, same split"
    assert examples(splits.validation) == validation, "re-iterating gives the same examples"


def test_tsv_is_unquoted_like_glue(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text('sentence\tlabel\nit\'s "great"\t1\nbad " movie\t0\nok\t1\nmeh\t0\n', encoding="utf-8")
    splits = load_splits(sentiment(tmp_path, train=str(path), text_column="sentence", validation_fraction=0.5))
    texts = {t for t, _ in examples(splits.train) + examples(splits.validation)}
    assert texts == {'it\'s "great"', 'bad " movie', "ok", "meh"}


def test_class_dirs_like_aclimdb_skip_unsup(tmp_path):
    for label in ("neg", "pos", "unsup"):
        (tmp_path / label).mkdir()
        for i in range(4):
            (tmp_path / label / f"{i}_1.txt").write_text(f"{label} review {i}<br />", encoding="utf-8")
    (tmp_path / "urls_pos.txt").write_text("http://x", encoding="utf-8")
    splits = load_splits(sentiment(tmp_path, train=str(tmp_path)))
    assert splits.labels == ("neg", "pos")
    assert len(examples(splits.train)) + len(examples(splits.validation)) == 8


def test_class_files_windows_1252_crlf_and_empty_lines(tmp_path):
    (tmp_path / "reviews.pos").write_bytes("caf\xe9 is great\r\n\r\nsuperb\r\nfine\r\nnice".encode("windows-1252"))
    (tmp_path / "reviews.neg").write_bytes(b"awful\r\nbad\r\ndull\r\nweak\r\n")
    splits = load_splits(sentiment(tmp_path, train=str(tmp_path / "reviews.*"), encoding="windows-1252"))
    everything = examples(splits.train) + examples(splits.validation)
    assert ("café is great", "pos") in everything
    assert len(everything) == 8 and not any(t.endswith("\r") or not t for t, _ in everything)


def test_strict_encoding_names_file_line_and_offset(tmp_path):
    (tmp_path / "r.pos").write_bytes(b"fine\nna\xefve\n")
    (tmp_path / "r.neg").write_bytes(b"bad\nworse\n")
    with pytest.raises(DataError, match=r"r\.pos: line 2, byte offset 7: byte 0xef"):
        load_splits(sentiment(tmp_path, train=str(tmp_path / "r.*")))
    replaced = load_splits(sentiment(tmp_path, train=str(tmp_path / "r.*"), encoding_errors="replace"))
    assert ("na\ufffdve", "pos") in examples(replaced.train) + examples(replaced.validation)


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes("\ufefftext,label\r\na,x\r\nb,y\r\nc,x\r\nd,y\r\n".encode("utf-8"))
    splits = load_splits(sentiment(tmp_path, train=str(path)))
    assert splits.labels == ("x", "y")


@pytest.mark.parametrize(
    "setup, error, message",
    [
        (lambda p: p / "missing.csv", DataError, "does not exist"),
        (lambda p: (p / "empty.csv", (p / "empty.csv").write_text(""))[0], DataError, "is empty"),
        (lambda p: write_csv(p / "cols.csv", [("a", "b")], header=("review", "stars")), DataError,
         r"no column 'text' or 'label'; its columns are \['review', 'stars'\]"),
        (lambda p: write_csv(p / "one.csv", [("a", "x"), ("b", "x"), ("c", "x")]), DataError, "1 class"),
        (lambda p: p / "nomatch.*", DataError, "no file matches"),
        (lambda p: p / "data.json", ConfigError, "cannot tell the format"),
    ],
    ids=["missing", "empty", "columns", "one_class", "glob", "format"],
)  # fmt: skip
def test_bad_files_raise_one_line_errors(tmp_path, setup, error, message):
    path = setup(tmp_path)
    with pytest.raises(error, match=message) as info:
        load_splits(sentiment(tmp_path, train=str(path)))
    assert "\n" not in str(info.value)


def test_next_char_holds_out_contiguous_stretches_at_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.data.files.CHUNK_CHARS", 7)  # many chunk boundaries
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.replace("z", "z\r\n").encode("utf-8"))
    config = config_from_dict({"task": "next_char", "data": {"train": str(path), "validation_fraction": 0.1,
                                                             "test_fraction": 0.2}})  # fmt: skip
    splits = load_splits(config)
    normalized = text.replace("z", "z\n")
    train, validation, test = (text_of(s) for s in (splits.train, splits.validation, splits.test))
    assert train + validation + test == normalized
    assert len(test) == round(len(normalized) * 0.2) and len(validation) == round(len(normalized) * 0.1)


def test_tfds_imdb_reviews_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = config_from_dict({"task": "sentiment", "data": {"source": "tfds", "name": "imdb_reviews",
                                                             "data_dir": str(tmp_path)}})  # fmt: skip
    with tfds.testing.mock_data(num_examples=20):
        splits = load_splits(config)
        train, validation, test = (examples(s) for s in (splits.train, splits.validation, splits.test))
    assert splits.labels == ("neg", "pos")
    assert len(train) > 0 and len(validation) > 0 and len(test) == 20
    assert {label for _, label in train + test} <= {"neg", "pos"}


def test_tfds_unknown_name_suggests_close_names(tmp_path):
    config = config_from_dict({"task": "sentiment", "data": {"source": "tfds", "name": "imdb_review",
                                                             "data_dir": str(tmp_path)}})  # fmt: skip
    with pytest.raises(DataError, match="no TFDS dataset named 'imdb_review'; did you mean imdb_reviews"):
        load_splits(config)


def test_tfds_offline_without_manual_dir_says_what_to_do(tmp_path, monkeypatch):
    from tensorflow_datasets.core.download import downloader

    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)  # fail fast: this machine has no route to the dataset host
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # and never reach it, even where a route exists
    config = config_from_dict({"task": "next_char", "data": {"source": "tfds", "name": "tiny_shakespeare",
                                                             "data_dir": str(tmp_path),
                                                             "validation_split": "validation"}})  # fmt: skip
    with pytest.raises(DataError, match="set data.manual_dir"):
        load_splits(config)


@pytest.mark.slow
def test_tiny_shakespeare_offline_from_manual_dir(tmp_path, shared_data):
    config = config_from_dict({"task": "next_char", "data": {
        "source": "tfds", "name": "tiny_shakespeare", "data_dir": str(tmp_path),
        "manual_dir": str(shared_data / "tiny_shakespeare"), "validation_split": "validation"}})  # fmt: skip
    splits = load_splits(config)
    assert len(text_of(splits.train)) == 1_003_854
    assert len(text_of(splits.validation)) == len(text_of(splits.test)) == 55_770


@pytest.mark.slow
def test_mr_files_windows_1252(shared_data):
    config = config_from_dict(
        {
            "task": "sentiment",
            "data": {
                "train": str(shared_data / "mr" / "rt-polarity.*"),
                "encoding": "windows-1252",
                "test_fraction": 0.1,
            },
        }
    )
    splits = load_splits(config)
    sizes = [int(s.cardinality()) for s in (splits.train, splits.validation, splits.test)]
    assert sum(sizes) == 10_662 and sizes[2] == 1066
    assert splits.labels == ("neg", "pos")


def test_an_empty_label_is_an_error_naming_file_and_line_never_a_class(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text('text,label\na,x\nb,y\n"two\nlines",x\nc, \nd,y\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.csv line 6 has no label \(column 'label' is empty\)"):
        load_splits(sentiment(tmp_path, train=str(csv_path)))
    tsv_path = tmp_path / "train.tsv"
    tsv_path.write_text("text\tlabel\na\tx\n\nb\t\nc\ty\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.tsv line 4 has no label"):
        load_splits(sentiment(tmp_path, train=str(tsv_path)))
    with pytest.raises(DataError, match="holds an empty label"):
        check_labels(["x", "", "y"], "a source")


@pytest.mark.parametrize(
    "labels, discrete",
    [
        ([f"{i * 0.37:.2f}" for i in range(60)], False),  # scores: a regression target
        ([f"{i % 3}.0" for i in range(60)], True),  # floats written for three classes
        ([str(i % 5 * 0.5) for i in range(60)], True),  # half stars: few distinct values
        ([str(i) for i in range(60)], True),  # integer class ids, many of them
        ([f"v{i * 0.37:.2f}" for i in range(60)], True),  # names that merely contain numbers
    ],
    ids=["scores", "float_classes", "half_stars", "integer_ids", "names"],
)
def test_a_continuous_label_column_is_refused_naming_the_key(tmp_path, labels, discrete):
    path = write_csv(tmp_path / "train.csv", [(f"text {i}", label) for i, label in enumerate(labels)])
    config = sentiment(tmp_path, train=str(path), validation_fraction=0.0, validation=str(path))
    if discrete:
        assert len(load_splits(config).labels) == len(set(labels))
        return
    with pytest.raises(DataError) as info:
        load_splits(config)
    message = str(info.value)
    assert message.startswith(f"data.label_column: column 'label' of {path} holds 60 distinct numbers")
    assert "continuous" in message and "data.validation" not in message and len(message) < 300


def test_class_count_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.data.files.MAX_CLASSES", 50)
    path = write_csv(tmp_path / "train.csv", [(f"text {i}", f"c{i}") for i in range(51)])
    with pytest.raises(DataError, match="holds 51 classes; sentiment models take at most 50"):
        load_splits(sentiment(tmp_path, train=str(path)))


def test_labels_missing_from_training_are_blamed_on_the_key_that_made_the_split(tmp_path):
    rows = [(f"text {i}", "ab"[i % 2]) for i in range(30)] + [("rare text", "rare")]
    train = write_csv(tmp_path / "train.csv", rows)
    # Held out by validation_fraction: each class with a single example ends up on one side only.
    held_out = [seed for seed in range(20) if _rare_is_held_out(tmp_path, train, seed)]
    assert held_out, "no seed holds the rare example out"
    config = config_from_dict({"task": "sentiment", "seed": held_out[0],
                               "data": {"train": str(train), "validation_fraction": 0.25}})  # fmt: skip
    with pytest.raises(
        DataError,
        match=r"^data.validation_fraction: the validation examples held out of data.train "
        r"include 1 label\(s\) left without a training example \('rare'\)",
    ):
        load_splits(config)
    other = write_csv(tmp_path / "val.csv", [("x", "a"), ("y", "unseen"), ("z", "b")])
    config = sentiment(
        tmp_path, train=str(write_csv(tmp_path / "t.csv", rows + [("more", "rare")])), validation=str(other)
    )
    with pytest.raises(
        DataError,
        match=rf"^data.validation: 1 label\(s\) of {other} do not occur in the training "
        r"data \('unseen'\)",
    ):
        load_splits(config)


def _rare_is_held_out(tmp_path, train, seed):
    config = config_from_dict({"task": "sentiment", "seed": seed,
                               "data": {"train": str(train), "validation_fraction": 0.25}})  # fmt: skip
    try:
        load_splits(config)
    except DataError as error:
        return "left without a training example" in str(error)
    return False


# Texts as people's tools write them into a TSV: tabs, newlines and quotes inside, quotes at the start.
AWKWARD = [
    ('he said "hi"\tand left', "pos"),
    ("two\nlines, one review", "neg"),
    ('"quoted from the start" and then more', "pos"),
    ('a lone " quote', "neg"),
    ("plain words", "pos"),
    ('""""', "neg"),
] * 4


def test_a_quoted_tsv_as_pandas_writes_it_is_read_with_every_row_and_label(tmp_path):
    # pandas' to_csv(sep="\t") writes through the csv module with QUOTE_MINIMAL, as here.
    path = write_csv(tmp_path / "train.tsv", AWKWARD, delimiter="\t")
    splits = load_splits(sentiment(tmp_path, train=str(path)))
    assert sorted(examples(splits.train) + examples(splits.validation)) == sorted(AWKWARD)
    assert splits.labels == ("neg", "pos")
    forced = load_splits(sentiment(tmp_path, train=str(path), tsv_quoting="quoted"))
    assert sorted(examples(forced.train) + examples(forced.validation)) == sorted(AWKWARD)


def test_a_glue_style_tsv_with_unbalanced_quotes_reads_as_written(tmp_path):
    path = tmp_path / "train.tsv"
    rows = ['"unbalanced start\t1', 'the "best" film\t0', '"\t1', 'ok "\t0', '"fine" and good\t1', "meh\t0"]
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    splits = load_splits(sentiment(tmp_path, train=str(path), text_column="sentence", validation_fraction=0.5))
    got = sorted(examples(splits.train) + examples(splits.validation))
    assert got == sorted(tuple(row.split("\t")) for row in rows)


def test_a_tsv_read_two_ways_or_neither_is_refused_naming_the_line(tmp_path):
    both = tmp_path / "both.tsv"
    both.write_text('text\tlabel\nplain\tpos\n"quoted"\tneg\nmore\tpos\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"both.tsv: line 3 reads two ways.*data.tsv_quoting = 'quoted' or 'none'"):
        load_splits(sentiment(tmp_path, train=str(both)))
    assert examples(load_splits(sentiment(tmp_path, train=str(both), tsv_quoting="none", validation_fraction=0.34))
                    .train)  # fmt: skip
    neither = tmp_path / "neither.tsv"
    neither.write_text('text\tlabel\na\tpos\tx\n"b\tneg\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"neither.tsv: not readable as TSV either way: unquoted, line 2 has 3"):
        load_splits(sentiment(tmp_path, train=str(neither)))


def test_labels_that_differ_only_by_case_stop_training_unless_folded_or_kept(tmp_path):
    rows = [(f"text {i}", label) for i, label in enumerate(["pos", "POS", "pos ", " neg", "neg", "Pos"] * 4)]
    path = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(DataError, match=r"labels that differ only by case: 'POS', 'Pos', 'pos'; set "
                                        r"data.label_case = 'fold'"):  # fmt: skip
        load_splits(sentiment(tmp_path, train=str(path)))
    assert load_splits(sentiment(tmp_path, train=str(path), label_case="fold")).labels == ("neg", "pos")
    assert load_splits(sentiment(tmp_path, train=str(path), label_case="keep")).labels == ("POS", "Pos", "neg", "pos")


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def test_a_column_streams_as_training_reads_the_table(tmp_path):
    # The rows training reads from the same file, in its order: quoted commas, quotes and newlines included.
    path = write_csv(tmp_path / "train.csv", AWKWARD)
    trained = [text for text, _ in files.read_examples(sentiment(tmp_path, train=str(path)).data, "data.train",
                                                       str(path), "csv")]  # fmt: skip
    assert list(files.column_texts(_lines(path.read_text(encoding="utf-8")), "--input x", "text", "csv")) == trained
    for quoting, rows in (("quoted", AWKWARD), ("none", [('a "lone quote', "neg"), ('"start"ed', "pos")])):
        tsv = tmp_path / f"{quoting}.tsv"
        if quoting == "quoted":
            write_csv(tsv, rows, delimiter="\t")
        else:
            tsv.write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows), encoding="utf-8")
        lines = _lines(tsv.read_text(encoding="utf-8"))
        assert list(files.column_texts(lines, "--input x", "text", "tsv")) == [text for text, _ in rows]
        assert list(files.column_texts(lines, "--input x", "text", "tsv", quoting)) == [text for text, _ in rows]


def test_a_column_is_read_lazily_and_refused_line_by_line():
    rows = (f"{k},text {k}\r\n" for k in range(10**9))  # more than any test could hold: only what is read is made
    texts = files.column_texts(itertools.chain(["id,text\r\n"], rows), "--input big.csv", "text", "csv")
    assert list(itertools.islice(texts, 3)) == ["text 0", "text 1", "text 2"]
    short = files.column_texts(["id,text\n", "1,fine\n", "2\n"], "--input x.csv", "text", "csv")
    assert next(short) == "fine"
    with pytest.raises(DataError, match=r"^--input x.csv: line 3 has 1 fields, the header 2$"):
        next(short)
    with pytest.raises(DataError, match=r"^--input x.csv has no column 'text'; its columns are \['id', 'body'\]$"):
        list(files.column_texts(["id,body\n"], "--input x.csv", "text", "csv"))
    with pytest.raises(DataError, match=r"^--input x.csv has no column 'text'; its columns are \[\]$"):
        list(files.column_texts([], "--input x.csv", "text", "csv"))
    both = _lines('text\tlabel\nplain\tpos\n"quoted"\tneg\nmore\tpos\n')
    with pytest.raises(DataError, match=r"^--input x.tsv: line 3 reads two ways.*; give --tsv-quoting quoted or none$"):
        list(files.column_texts(both, "--input x.tsv", "text", "tsv"))
    assert list(files.column_texts(both, "--input x.tsv", "text", "tsv", "none")) == ["plain", '"quoted"', "more"]
