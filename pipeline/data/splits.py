"""Every data source the pipeline reads, as `tf.data` datasets of raw text. The tasks choose what they read:

    labelled_file_splits(data, seed)          -> Splits(train, validation, test, labels)  local files, sentiment
    labelled_file(data, where, spec, labels)  -> the examples of one more file   evaluate --data, sentiment
    text_file_splits(data)                    -> Splits(train, validation, test)  local plain text, next_char
    text_file(data, where, spec)              -> the text of one more file       evaluate --data, next_char
    tfds_splits(data, labelled=...)           -> Splits                           TensorFlow Datasets

Labelled elements: {"text": tf.string, "label": tf.string (class name)}; `labels` lists the class names (index =
class id): the dataset's own order for TFDS ClassLabel features, sorted otherwise. Every label of a validation or
test split must occur in the training split.
Text elements: tf.string chunks of one text, in order; a split's text is the concatenation of its chunks.

The files are read by `pipeline.data.files` (formats, decoding, the label rule). Labelled files are read into memory
once (IMDB-sized corpora are tens of MB) so that the seeded held-out split is exact and errors surface before
training starts; plain text streams from disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline.config import DataConfig
from pipeline.data import files
from pipeline.errors import ConfigError, DataError, shorten

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    labels: tuple[str, ...] = ()
    # What reading them did beyond reading, for the stage's line: e.g. that TFDS prepared the dataset, and where.
    note: str = ""


# --- local files: sentiment -------------------------------------------------------------------------------------


def labelled_file_splits(data: DataConfig, seed: int) -> Splits:
    """Labelled examples from local files; the held-out splits are a seeded permutation of train."""
    fmt = files.resolve_format(data)
    train = files.read_examples(data, "data.train", data.train, fmt)
    # Before any split: a continuous or one-class column is the column's problem, not a held-out split's.
    files.check_labels((label for _, label in train), files.label_source(data, fmt), data.label_case)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    train = [train[i] for i in order]
    test = files.read_examples(data, "data.test", data.test, fmt) if data.test else None
    if data.cv_folds:
        test, train = _fold(train, data.cv_folds, data.cv_fold)
    elif test is None and data.test_fraction > 0:
        count = round(len(train) * data.test_fraction)
        if count == 0:
            raise DataError(f"data.test_fraction: {data.test_fraction} of {len(train)} examples holds none out; "
                            f"raise it or give data.test")  # fmt: skip
        test, train = train[:count], train[count:]
    if data.validation:
        validation = files.read_examples(data, "data.validation", data.validation, fmt)
    else:
        count = round(len(train) * data.validation_fraction)
        validation, train = train[:count], train[count:]
    if not train or not validation:
        raise DataError(f"data.train: {len(train)} training and {len(validation)} validation examples; need both")
    labels = files.check_labels((label for _, label in train), "the training split", data.label_case)
    for name, split in (("validation", validation), ("test", test or [])):
        count, shown = _unknown_labels(split, labels)
        if not count:
            continue
        if getattr(data, name):
            raise DataError(f"data.{name}: {count} label(s) of {getattr(data, name)} do not occur in the training "
                            f"data ({shown})")  # fmt: skip
        raise DataError(f"data.{name}_fraction: the {name} examples held out of data.train include {count} label(s) "
                        f"left without a training example ({shown}); give data.{name} or more examples of those "
                        f"classes")  # fmt: skip
    return Splits(_examples_dataset(train), _examples_dataset(validation),
                  None if test is None else _examples_dataset(test), labels)  # fmt: skip


def labelled_file(data: DataConfig, where: str, spec: str, labels: tuple[str, ...]) -> tf.data.Dataset:
    """The labelled examples of one more file, folder or glob (`spec`), read as data.train is read: its columns,
    encoding and label case, in `data.format`, or with data.format "auto" the format `spec`'s path tells. Every label
    must be one of the model's `labels`; `where` names the source in errors."""
    try:
        fmt = files.resolve_format(dataclasses.replace(data, train=spec))
    except ConfigError:
        if data.format != "auto":
            raise
        raise DataError(f"{where}: cannot tell the format of {shorten(spec)}: give a .csv or .tsv file, a folder "
                        f"with a sub-folder per class, or a glob of one file per class") from None  # fmt: skip
    examples = files.read_examples(data, where, spec, fmt)
    count, shown = _unknown_labels(examples, labels)
    if count:
        classes = ", ".join(repr(shorten(label, 40)) for label in labels[:10]) + (", ..." if len(labels) > 10 else "")
        raise DataError(f"{where}: {count} label(s) of {shorten(spec)} are not classes of this model ({shown}); its "
                        f"classes: {classes}")  # fmt: skip
    return _examples_dataset(examples)


def _unknown_labels(examples: list[tuple[str, str]], labels: tuple[str, ...]) -> tuple[int, str]:
    """How many labels of `examples` are not among `labels`, and the first three of them for a message."""
    unknown = sorted({label for _, label in examples} - set(labels))
    shown = ", ".join(repr(shorten(label, 40)) for label in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
    return len(unknown), shown


def _fold(examples: list[tuple[str, str]], folds: int, fold: int) -> tuple[list, list]:
    """(fold `fold` of `folds`, the rest) of seeded-shuffled `examples`, stratified: each class's examples are dealt
    to the folds in turn, so every fold holds each class in the data's proportion (to one example)."""
    by_class: dict[str, list[int]] = {}
    for i, (_, label) in enumerate(examples):
        by_class.setdefault(label, []).append(i)
    held = {i for members in by_class.values() for i in members[fold::folds]}
    if not held:
        raise DataError(f"data.cv_folds: {len(examples)} examples leave fold {fold} of {folds} empty")
    return ([x for i, x in enumerate(examples) if i in held], [x for i, x in enumerate(examples) if i not in held])


def _examples_dataset(examples: list[tuple[str, str]]) -> tf.data.Dataset:
    texts = [text for text, _ in examples]
    labels = [label for _, label in examples]
    return tf.data.Dataset.from_tensor_slices({"text": tf.constant(texts, tf.string),
                                               "label": tf.constant(labels, tf.string)})  # fmt: skip


# --- unlabelled texts (sentiment's pretraining) ----------------------------------------------------------------


def unlabelled_texts(data: DataConfig) -> tf.data.Dataset:
    """The texts of `data.unlabelled` (local files, pipeline.data.files.read_unlabelled) or of the TFDS split
    `data.unlabelled_split`, at most `data.max_unlabelled` of them, as a dataset of strings."""
    if data.source == "files":
        return tf.data.Dataset.from_tensor_slices(tf.constant(files.read_unlabelled(data), tf.string))
    builder = _tfds_builder(data)
    with _quiet_tfds():
        try:
            split = builder.as_dataset(split=data.unlabelled_split, shuffle_files=False)
        except (ValueError, KeyError) as error:
            raise DataError(f"data.unlabelled_split: TFDS {data.name!r} has no split {data.unlabelled_split!r} "
                            f"({_first_line(error)}); it has {sorted(builder.info.splits)}") from None  # fmt: skip
    feature = data.text_feature
    return split.take(data.max_unlabelled).map(lambda x: x[feature])


# --- local files: next_char --------------------------------------------------------------------------------------


def text_file_splits(data: DataConfig) -> Splits:
    """One plain text; held-out parts are contiguous stretches at its end (not random samples), so that no
    training window straddles two splits."""
    if data.format not in ("auto", "text"):
        raise ConfigError(f"data.format: a plain-text task reads 'text', not {data.format!r}")
    train_path = files.existing_file("data.train", data.train)
    total = files.count_chars(train_path, data.encoding, data.encoding_errors)
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
        text_file(data, "data.validation", data.validation)
        if data.validation
        else stretch(train_path, n_train, n_train + n_validation)
    )
    if data.test:
        test = text_file(data, "data.test", data.test)
    else:
        test = stretch(train_path, n_train + n_validation, total) if n_test else None
    return Splits(stretch(train_path, 0, n_train), validation, test)


def text_file(data: DataConfig, where: str, spec: str) -> tf.data.Dataset:
    """The whole of one plain-text file (`data.encoding`), streamed as chunks; `where` names it in errors."""
    path = files.existing_file(where, spec)
    total = files.count_chars(path, data.encoding, data.encoding_errors)
    if total == 0:
        raise DataError(f"{where}: {path} is empty")
    return _chunks_dataset(path, data.encoding, data.encoding_errors, 0, total)


def _chunks_dataset(path: Path, encoding: str, errors: str, start: int, stop: int) -> tf.data.Dataset:
    """Characters [start, stop) of the decoded file as 1 MiB string chunks, streamed (re-iterable)."""

    def generate():
        position = 0
        for chunk in files.iter_text(path, encoding, errors):
            end = position + len(chunk)
            if end > start and position < stop:
                yield chunk[max(start - position, 0) : min(stop, end) - position]
            position = end
            if position >= stop:
                return

    return tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec((), tf.string))


# --- TensorFlow Datasets -----------------------------------------------------------------------------------------


def tfds_splits(data: DataConfig, labelled: bool) -> Splits:
    """A TFDS dataset's splits: {"text", "label"} examples if `labelled`, else the text feature alone (which then
    needs an explicit `validation_split`: a held-out share of shuffled records would not be a contiguous text)."""
    import tensorflow_datasets as tfds

    with _quiet_tfds():
        builder = _tfds_builder(data)
        prepared = builder.is_prepared()
        try:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data.manual_dir or
                                                                                      None))  # fmt: skip
        except Exception as error:  # TFDS raises many types (network, missing manual files, checksums)
            hint = (f"check that {data.manual_dir} holds the dataset's files" if data.manual_dir
                    else "offline? set data.manual_dir to a folder holding the downloaded files")  # fmt: skip
            raise DataError(f"cannot download/prepare TFDS dataset {data.name!r} ({_first_line(error)}); "
                            f"{hint}") from None  # fmt: skip
    note = "" if prepared else f"TFDS prepared {data.name!r} in {builder.data_dir} (reused from now on)"

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
        return Splits(*[None if s is None else s.map(lambda x: x[text_feature]) for s in splits], note=note)

    if data.label_feature not in features:
        raise DataError(f"TFDS {data.name!r} has no label feature {data.label_feature!r}; it has {sorted(features)}")
    label_feature = features[data.label_feature]
    names = tuple(getattr(label_feature, "names", None) or ())
    if len(names) < 2:
        raise DataError(f"TFDS {data.name!r}: feature {data.label_feature!r} is not a class label with 2+ classes")
    if len(names) > files.MAX_CLASSES:
        raise DataError(f"TFDS {data.name!r}: feature {data.label_feature!r} has {len(names):,} classes; sentiment "
                        f"models take at most {files.MAX_CLASSES:,}")  # fmt: skip
    name_table = tf.constant(names)

    def to_example(x):
        return {"text": x[text_feature], "label": tf.gather(name_table, tf.cast(x[data.label_feature], tf.int32))}

    return Splits(*[None if s is None else s.map(to_example) for s in splits], labels=names, note=note)


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """TFDS prints its notices to stdout, logs warnings about the folders it creates and draws progress bars
    (carriage returns, cursor movements) on stderr, even into a file: while it prepares a dataset, its notices go to
    the log at INFO, its warnings are held back and its bars are off (TFDS's default, on, is restored after)."""
    import tensorflow_datasets as tfds

    printed = io.StringIO()
    absl = logging.getLogger("absl")  # TFDS's own log, whose warnings about folders it is creating are noise here
    level = absl.level
    tfds.display_progress_bar(False)
    absl.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        tfds.display_progress_bar(True)
        absl.setLevel(level)
        for line in printed.getvalue().splitlines():
            logger.info("TFDS: %s", line)


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
