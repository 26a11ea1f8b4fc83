"""Every data source the pipeline reads, as `tf.data` datasets of raw text. The tasks choose what they read:

    labelled_file_splits(data, seed)  -> Splits(train, validation, test, labels)  local files, sentiment
    text_file_splits(data)            -> Splits(train, validation, test)          local plain text, next_char
    tfds_splits(data, labelled=...)   -> Splits                                   TensorFlow Datasets

Labelled elements: {"text": tf.string, "label": tf.string (class name)}; `labels` lists the class names (index =
class id): the dataset's own order for TFDS ClassLabel features, sorted otherwise.
Text elements: tf.string chunks of one text, in order; a split's text is the concatenation of its chunks.

Labels: every example has one (an empty label cell is an error naming the file and line, never a class named "");
at least 2 and at most MAX_CLASSES distinct ones; a column of numbers with a fractional part in more than
CONTINUOUS_DISTINCT distinct values is a continuous target, not classes, and is refused. Every label of a validation
or test split must occur in the training split.

Sources (see `DataConfig`): TFDS datasets, with `manual_dir` for offline use; CSV/TSV files; one folder per class
(aclImdb: its unlabelled "unsup" folder is skipped); one file per class, one example per line (MR; empty lines are
skipped); plain text for next_char.

Decoding: files are read with `data.encoding`; a leading UTF-8 byte-order mark is dropped, CRLF and CR become LF.
Undecodable bytes follow `data.encoding_errors`: "strict" stops with the file, line and byte offset; "replace"
substitutes U+FFFD; "ignore" drops them.

Memory: plain text streams from disk in 1 MiB chunks (a 200 MB corpus is never held as one Python string).
Labelled files are read into memory once (IMDB-sized corpora are tens of MB) so that the seeded held-out
split is exact and errors surface before training starts.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import glob
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline.config import DataConfig
from pipeline.errors import ConfigError, DataError, shorten

logger = logging.getLogger(__name__)

CHUNK_CHARS = 1 << 20
SKIPPED_CLASS_DIRS = frozenset({"unsup"})  # aclImdb's unlabelled reviews
LABELLED_FORMATS = ("csv", "tsv", "class_dirs", "class_files")
# The most classes a sentiment model is built for: the dense head, the per-class report and the serving output grow
# with it (evaluation summarises beyond pipeline.metrics.MATRIX_CLASSES; see also pipeline.plots.PLOT_CLASSES).
MAX_CLASSES = 10_000
# Numbers with a fraction in more distinct values than this are a continuous target (scores), not class names.
CONTINUOUS_DISTINCT = 20


@dataclass(frozen=True)
class Splits:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    labels: tuple[str, ...] = ()


# --- local files: sentiment -------------------------------------------------------------------------------------


def labelled_file_splits(data: DataConfig, seed: int) -> Splits:
    """Labelled examples from local files; the held-out splits are a seeded permutation of train."""
    fmt = _resolve_format(data)
    train = _read_examples(data, "train", data.train, fmt)
    # Before any split: a continuous or one-class column is the column's problem, not a held-out split's.
    check_labels((label for _, label in train), _label_source(data, fmt))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    train = [train[i] for i in order]
    test = _read_examples(data, "test", data.test, fmt) if data.test else None
    if test is None and data.test_fraction > 0:
        count = round(len(train) * data.test_fraction)
        if count == 0:
            raise DataError(f"data.test_fraction: {data.test_fraction} of {len(train)} examples holds none out; "
                            f"raise it or give data.test")  # fmt: skip
        test, train = train[:count], train[count:]
    if data.validation:
        validation = _read_examples(data, "validation", data.validation, fmt)
    else:
        count = round(len(train) * data.validation_fraction)
        validation, train = train[:count], train[count:]
    if not train or not validation:
        raise DataError(f"data.train: {len(train)} training and {len(validation)} validation examples; need both")
    labels = check_labels((label for _, label in train), "the training split")
    for name, split in (("validation", validation), ("test", test or [])):
        unknown = sorted({label for _, label in split} - set(labels))
        if not unknown:
            continue
        examples = ", ".join(repr(shorten(label, 40)) for label in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        if getattr(data, name):
            raise DataError(f"data.{name}: {len(unknown)} label(s) of {getattr(data, name)} do not occur in the "
                            f"training data ({examples})")  # fmt: skip
        raise DataError(f"data.{name}_fraction: the {name} examples held out of data.train include "
                        f"{len(unknown)} label(s) left without a training example ({examples}); give data.{name} "
                        f"or more examples of those classes")  # fmt: skip
    return Splits(_examples_dataset(train), _examples_dataset(validation),
                  None if test is None else _examples_dataset(test), labels)  # fmt: skip


def check_labels(labels, source: str = "the label column") -> tuple[str, ...]:
    """Sorted distinct labels; a DataError unless they are 2 to MAX_CLASSES discrete class names. `source` says
    where they come from, for the message."""
    distinct = sorted(set(labels))
    if "" in distinct:  # the readers refuse empty labels with their line; this keeps any other source honest
        raise DataError(f"{source} holds an empty label; every example needs a class")
    if len(distinct) < 2:
        shown = [shorten(label, 40) for label in distinct]
        raise DataError(f"{source} holds {len(distinct)} class(es) {shown}: sentiment needs at least two")
    if len(distinct) > MAX_CLASSES:
        raise DataError(f"{source} holds {len(distinct):,} classes; sentiment models take at most {MAX_CLASSES:,}")
    fractions = _fractional_numbers(distinct)
    if len(distinct) > CONTINUOUS_DISTINCT and fractions:
        examples = ", ".join(shorten(label, 20) for label in fractions[:3])
        raise DataError(f"{source} holds {len(distinct):,} distinct numbers, some with a fraction ({examples}): a "
                        f"continuous target, not class names; sentiment needs discrete labels (bin the values into "
                        f"classes first)")  # fmt: skip
    return tuple(distinct)


def _fractional_numbers(labels: list[str]) -> list[str]:
    """The labels that are numbers with a fractional part, or [] when any label is not a number at all."""
    fractions = []
    for label in labels:
        try:
            value = float(label)
        except ValueError:
            return []
        if not value.is_integer():
            fractions.append(label)
    return fractions


def _label_source(data: DataConfig, fmt: str) -> str:
    if fmt in ("csv", "tsv"):
        return f"data.label_column: column {shorten(data.label_column, 40)!r} of {data.train}"
    return f"data.train: {data.train}"


def _examples_dataset(examples: list[tuple[str, str]]) -> tf.data.Dataset:
    texts = [text for text, _ in examples]
    labels = [label for _, label in examples]
    return tf.data.Dataset.from_tensor_slices({"text": tf.constant(texts, tf.string),
                                               "label": tf.constant(labels, tf.string)})  # fmt: skip


def _read_examples(data: DataConfig, key: str, spec: str, fmt: str) -> list[tuple[str, str]]:
    if fmt in ("csv", "tsv"):
        examples = _read_table(data, key, _existing_file(key, spec), fmt)
    elif fmt == "class_dirs":
        examples = _read_class_dirs(data, key, spec)
    elif fmt == "class_files":
        examples = _read_class_files(data, key, spec)
    else:
        raise ConfigError(f"data.format: sentiment reads csv, tsv, class_dirs or class_files, not {fmt!r}")
    if not examples:
        raise DataError(f"data.{key}: {spec} holds no examples")
    return examples


def _read_table(data: DataConfig, key: str, path: Path, fmt: str) -> list[tuple[str, str]]:
    text = read_text(path, data.encoding, data.encoding_errors)
    if not text.strip():
        raise DataError(f"data.{key}: {path} is empty")
    try:
        return _table_examples(data, key, path, _csv_rows(text) if fmt == "csv" else _tsv_rows(text))
    except csv.Error as error:
        raise DataError(f"data.{key}: {path}: not readable as CSV ({error})") from None


def _table_examples(data: DataConfig, key: str, path: Path, rows: Iterator[tuple[int, list[str]]]):
    _, header = next(rows)
    missing = [c for c in (data.text_column, data.label_column) if c not in header]
    if missing:
        raise DataError(
            f"data.{key}: {path} has no column {' or '.join(repr(shorten(c, 40)) for c in missing)}; its columns "
            f"are {[shorten(c, 40) for c in header[:10]]}{' ...' if len(header) > 10 else ''} (set data.text_column "
            f"/ data.label_column)"
        )
    text_at, label_at = header.index(data.text_column), header.index(data.label_column)
    examples = []
    for line_number, row in rows:
        if len(row) != len(header):
            raise DataError(f"data.{key}: {path} line {line_number} has {len(row)} fields, the header {len(header)}")
        label = row[label_at].strip()
        if not label:
            raise DataError(f"data.{key}: {path} line {line_number} has no label (column {data.label_column!r} is "
                            f"empty); give every example a class, or remove the line")  # fmt: skip
        examples.append((row[text_at], label))
    return examples


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, fields) per record; a quoted field may span lines."""
    reader = csv.reader(io.StringIO(text))
    start = 1
    for row in reader:
        if row:
            yield start, row
        start = reader.line_num + 1


def _tsv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """GLUE-style TSV: no quoting, a quote character is just a character; empty lines are skipped."""
    for line_number, line in enumerate(text.split("\n"), start=1):
        if line:
            yield line_number, line.split("\t")


def _read_class_dirs(data: DataConfig, key: str, spec: str) -> list[tuple[str, str]]:
    root = Path(spec)
    if not root.is_dir():
        raise DataError(f"data.{key}: {spec} is not a folder (format class_dirs wants one sub-folder per class)")
    examples = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if class_dir.name in SKIPPED_CLASS_DIRS:
            logger.info("skipping %s: unlabelled examples", class_dir)
            continue
        for file in sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            examples.append((read_text(file, data.encoding, data.encoding_errors).strip(), class_dir.name))
    return examples


def class_file_labels(files: list[Path]) -> dict[Path, str]:
    """Each class file's label: its extension when all the files share one name (rt-polarity.pos, rt-polarity.neg),
    otherwise its name without the extension (positive.txt, negative.txt)."""
    same_stem = len({f.stem for f in files}) == 1 and all(f.suffix for f in files)
    return {f: f.suffix[1:] if same_stem else f.stem for f in files}


def _read_class_files(data: DataConfig, key: str, spec: str) -> list[tuple[str, str]]:
    files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
    if not files:
        raise DataError(f"data.{key}: no file matches {spec}")
    labels = class_file_labels(files)
    examples = []
    for file in files:
        label = labels[file]
        text = read_text(file, data.encoding, data.encoding_errors)
        if not text.strip():
            raise DataError(f"data.{key}: {file} is empty")
        examples.extend((line.strip(), label) for line in text.split("\n") if line.strip())
    return examples


# --- local files: next_char --------------------------------------------------------------------------------------


def text_file_splits(data: DataConfig) -> Splits:
    """One plain text; held-out parts are contiguous stretches at its end (not random samples), so that no
    training window straddles two splits."""
    if data.format not in ("auto", "text"):
        raise ConfigError(f"data.format: a plain-text task reads 'text', not {data.format!r}")
    train_path = _existing_file("train", data.train)
    total = count_chars(train_path, data.encoding, data.encoding_errors)
    if total == 0:
        raise DataError(f"data.train: {train_path} is empty")
    n_test = 0 if data.test else round(total * data.test_fraction)
    n_validation = 0 if data.validation else round(total * data.validation_fraction)
    for name, count in (("test", n_test), ("validation", n_validation)):
        if count == 0 and not getattr(data, name) and getattr(data, f"{name}_fraction") > 0:
            raise DataError(f"data.{name}_fraction: {getattr(data, f'{name}_fraction')} of the {total} characters "
                            f"of {train_path} holds none out; raise it or give data.{name}")  # fmt: skip
    n_train = total - n_test - n_validation
    if n_train <= 1:
        raise DataError(f"data.train: {train_path} has {total} characters, too few to hold out validation/test")

    def stretch(path: Path, start: int, stop: int) -> tf.data.Dataset:
        return _chunks_dataset(path, data.encoding, data.encoding_errors, start, stop)

    validation = (
        _text_file_dataset("validation", data.validation, data)
        if data.validation
        else stretch(train_path, n_train, n_train + n_validation)
    )
    if data.test:
        test = _text_file_dataset("test", data.test, data)
    else:
        test = stretch(train_path, n_train + n_validation, total) if n_test else None
    return Splits(stretch(train_path, 0, n_train), validation, test)


def _text_file_dataset(key: str, spec: str, data: DataConfig) -> tf.data.Dataset:
    path = _existing_file(key, spec)
    total = count_chars(path, data.encoding, data.encoding_errors)
    if total == 0:
        raise DataError(f"data.{key}: {path} is empty")
    return _chunks_dataset(path, data.encoding, data.encoding_errors, 0, total)


def _chunks_dataset(path: Path, encoding: str, errors: str, start: int, stop: int) -> tf.data.Dataset:
    """Characters [start, stop) of the decoded file as 1 MiB string chunks, streamed (re-iterable)."""

    def generate():
        position = 0
        for chunk in iter_text(path, encoding, errors):
            end = position + len(chunk)
            if end > start and position < stop:
                yield chunk[max(start - position, 0) : min(stop, end) - position]
            position = end
            if position >= stop:
                return

    return tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec((), tf.string))


def count_chars(path: Path, encoding: str, errors: str) -> int:
    """Decoded length of a text file, streaming; also checks that it decodes under `errors`."""
    return sum(len(chunk) for chunk in iter_text(path, encoding, errors))


def iter_text(path: Path, encoding: str, errors: str) -> Iterator[str]:
    """The decoded text of `path` in chunks of at most CHUNK_CHARS characters, newlines normalized to LF."""
    with open(path, "rb") as raw, io.TextIOWrapper(raw, encoding=_codec(encoding), errors=errors, newline=None) as f:
        while True:
            try:
                chunk = f.read(CHUNK_CHARS)
            except UnicodeDecodeError as error:
                raise DataError(_decode_error_message(path, encoding, error)) from None
            if not chunk:
                return
            yield chunk


def read_text(path: Path, encoding: str, errors: str) -> str:
    return "".join(iter_text(path, encoding, errors))


def _codec(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"data.encoding: unknown encoding {encoding!r}") from None
    return "utf-8-sig" if name == "utf-8" else name  # drops a leading byte-order mark


def _decode_error_message(path: Path, encoding: str, error: UnicodeDecodeError) -> str:
    """Where the first undecodable byte is: line and byte offset, found by decoding the file line by line."""
    decoder = codecs.getincrementaldecoder(_codec(encoding))()
    offset = 0
    with open(path, "rb") as f:
        for line_number, line in enumerate(f, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as line_error:
                bad = offset + line_error.start
                return (f"{path}: line {line_number}, byte offset {bad}: byte 0x{line[line_error.start]:02x} is not "
                        f"valid {encoding}; set data.encoding (e.g. 'windows-1252') or data.encoding_errors = "
                        f"'replace'")  # fmt: skip
            offset += len(line)
    return f"{path}: not valid {encoding} ({error.reason}); set data.encoding or data.encoding_errors = 'replace'"


def _existing_file(key: str, spec: str) -> Path:
    path = Path(spec)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"data.{key}: {spec} {what}")
    return path


def _resolve_format(data: DataConfig) -> str:
    """The format of labelled files: `data.format`, or told from the path of `data.train`."""
    if data.format != "auto":
        if data.format not in LABELLED_FORMATS:
            raise ConfigError(f"data.format: labelled examples come in {', '.join(LABELLED_FORMATS)}, "
                              f"not {data.format!r}")  # fmt: skip
        return data.format
    spec = data.train
    if any(ch in spec for ch in "*?["):
        return "class_files"
    if os.path.isdir(spec):
        return "class_dirs"
    suffix = Path(spec).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    raise ConfigError(
        f"data.format: cannot tell the format of {spec!r} for labelled examples; set data.format to csv, tsv, "
        f"class_dirs or class_files"
    )


# --- TensorFlow Datasets -----------------------------------------------------------------------------------------


def tfds_splits(data: DataConfig, labelled: bool) -> Splits:
    """A TFDS dataset's splits: {"text", "label"} examples if `labelled`, else the text feature alone (which then
    needs an explicit `validation_split`: a held-out share of shuffled records would not be a contiguous text)."""
    import tensorflow_datasets as tfds

    builder = _tfds_builder(data)
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data.manual_dir or None))
    except Exception as error:  # TFDS raises many types (network, missing manual files, checksums)
        hint = (f"check that {data.manual_dir} holds the dataset's files" if data.manual_dir
                else "offline? set data.manual_dir to a folder holding the downloaded files")  # fmt: skip
        raise DataError(f"cannot download/prepare TFDS dataset {data.name!r} ({_first_line(error)}); {hint}") from None

    features = builder.info.features
    if data.text_feature not in features:
        raise DataError(f"TFDS {data.name!r} has no feature {data.text_feature!r}; it has {sorted(features)} "
                        f"(set data.text_feature)")  # fmt: skip
    train_split, validation_split = data.train_split, data.validation_split
    if not validation_split:
        if "[" in train_split:
            raise ConfigError("data.validation_split: required when data.train_split is already sliced")
        if not labelled:
            raise ConfigError(f"data.validation_split: {data.name!r} needs an explicit validation split")
        kept = 100 - round(100 * data.validation_fraction)
        train_split, validation_split = f"{train_split}[:{kept}%]", f"{train_split}[{kept}%:]"

    def load(split: str) -> tf.data.Dataset:
        try:
            return builder.as_dataset(split=split, shuffle_files=False)
        except (ValueError, KeyError) as error:
            raise DataError(f"TFDS {data.name!r}: bad split {split!r} ({_first_line(error)}); it has "
                            f"{sorted(builder.info.splits)}") from None  # fmt: skip

    splits = [load(train_split), load(validation_split), load(data.test_split) if data.test_split else None]
    text_feature = data.text_feature
    if not labelled:
        return Splits(*[None if s is None else s.map(lambda x: x[text_feature]) for s in splits])

    if data.label_feature not in features:
        raise DataError(f"TFDS {data.name!r} has no label feature {data.label_feature!r}; it has {sorted(features)}")
    label_feature = features[data.label_feature]
    names = tuple(getattr(label_feature, "names", None) or ())
    if len(names) < 2:
        raise DataError(f"TFDS {data.name!r}: feature {data.label_feature!r} is not a class label with 2+ classes")
    if len(names) > MAX_CLASSES:
        raise DataError(f"TFDS {data.name!r}: feature {data.label_feature!r} has {len(names):,} classes; sentiment "
                        f"models take at most {MAX_CLASSES:,}")  # fmt: skip
    name_table = tf.constant(names)

    def to_example(x):
        return {"text": x[text_feature], "label": tf.gather(name_table, tf.cast(x[data.label_feature], tf.int32))}

    return Splits(*[None if s is None else s.map(to_example) for s in splits], labels=names)


def _tfds_builder(data: DataConfig):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(data.name, data_dir=data.data_dir or None)
    except tfds.core.registered.DatasetNotFoundError:
        close = difflib.get_close_matches(data.name, sorted(set(tfds.list_builders())), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"data.name: no TFDS dataset named {data.name!r}{hint}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
