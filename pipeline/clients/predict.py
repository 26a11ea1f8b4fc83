"""Sentiment predictions from an exported SavedModel (its serving_default signature, as TF Serving runs it), or from a
LiteRT export (its .tflite or litert/ folder) through the LiteRT interpreter.

Texts are read and classified `batch_size` at a time, so memory does not grow with the length of the input: a text
file of any number of lines streams through. One text is at most MAX_TEXT_BYTES of UTF-8 (the model reads only its
first `tokenize.sequence_length` words anyway). Each result lists every class's probability up to SHOWN_CLASSES
classes, and the SHOWN_CLASSES most probable beyond (or the `top` most probable when asked): one line of a
10,000-class model stays a few hundred bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tensorflow as tf

from pipeline.clients import litert_client, native
from pipeline.clients.saved_model import COMMANDS, load_signature
from pipeline.data import files
from pipeline.errors import DataError, PipelineError

MAX_TEXT_BYTES = 1 << 20
# Results list every class's probability up to this many classes, and the most probable ones beyond.
SHOWN_CLASSES = 20


def predict(export_dir, texts: Iterable[str | bytes], batch_size: int = 256, top: int | None = None) -> Iterator[dict]:
    """One {"text", "label", "probabilities": {class name: probability}} per text, in order, as each batch is
    classified. `probabilities` holds the `top` most probable classes, most probable first; without `top`, every
    class in the model's order when there are at most SHOWN_CLASSES, else the SHOWN_CLASSES most probable.
    A str text may carry surrogate escapes (undecodable bytes of a command-line argument): they reach the model as
    the original bytes, which it reads as U+FFFD, as it would from a TF Serving client."""
    if top is not None and top < 1:
        raise PipelineError(f"--top must be >= 1, got {top}")
    batches = _batches(texts, batch_size)
    first = next(batches, None)  # an input error (an empty or undecodable file) shows before the model loads
    if first is None:
        return
    path = Path(export_dir)
    if not (path / "saved_model.pb").exists() and litert_client.is_litert_export(path):
        rows = _predict_litert(path, itertools.chain([first], batches))
    else:
        rows = _predict_saved_model(export_dir, itertools.chain([first], batches))
    for names, text, label, probabilities in rows:
        yield {"text": text.decode("utf-8", "replace"), "label": label,
               "probabilities": _shown(names, probabilities, top)}  # fmt: skip


def _shown(names: list[str], probabilities: np.ndarray, top: int | None) -> dict[str, float]:
    if top is None and len(names) <= SHOWN_CLASSES:
        return {name: round(float(p), 6) for name, p in zip(names, probabilities)}
    k = min(top or SHOWN_CLASSES, len(names))
    best = np.argpartition(-probabilities, k - 1)[:k]
    best = best[np.argsort(-probabilities[best], kind="stable")]
    return {names[i]: round(float(probabilities[i]), 6) for i in best}


def _predict_saved_model(export_dir, batches: Iterable[list[bytes]]) -> Iterator[tuple]:
    loaded, serve = load_signature(export_dir, "serving_default", "text")
    names = [n.decode("utf-8") for n in loaded.class_names.numpy()]
    for batch in batches:
        out = serve(text=tf.constant(batch, tf.string))
        for text, label, probabilities in zip(batch, out["label"].numpy(), out["probabilities"].numpy()):
            yield names, text, label.decode("utf-8"), probabilities


def _predict_litert(path: Path, batches: Iterable[list[bytes]]) -> Iterator[tuple]:
    """The same predictions from a LiteRT export, by its reference client (pipeline.clients.litert_client)."""
    try:
        model = litert_client.LiteRTModel(path)
    except litert_client.LiteRTExportError as error:
        raise PipelineError(str(error)) from None
    if model.task != "sentiment":
        raise PipelineError(
            f"{model.folder} is a {model.task} model: use `{COMMANDS.get(model.task, 'rnnpipe predict')}`"
        )
    with native.without_notices():  # the interpreter's first run announces its CPU delegate
        model.probabilities([b""])
    names = list(model.class_names)
    for batch in batches:
        for text, row in zip(batch, model.probabilities(batch)):
            yield names, text, names[int(np.argmax(row))], np.asarray(row)


def input_texts(file: BinaryIO, name: str, text_column: str | None = None, tsv_quoting: str = "auto"
                ) -> Iterator[str]:  # fmt: skip
    """The texts of `--input`: a line each, or with `text_column` that column of a CSV (a TSV, read `tsv_quoting`,
    when `name` ends in .tsv) read by the pipeline's row reader. A .csv or .tsv without `text_column` is refused:
    read a line at a time, its header, quotes and other columns would be classified as texts."""
    suffix = Path(name).suffix.lower()
    if text_column is None:
        if suffix in (".csv", ".tsv"):
            raise DataError(f"--input {name} is a {suffix[1:].upper()} file, and predict reads one text per line; "
                            f"give --text-column C to classify its column C")  # fmt: skip
        return read_texts(file, name)
    fmt = "tsv" if suffix == ".tsv" else "csv"
    return files.column_texts(read_texts(file, name, line_ends=True), f"--input {name}", text_column, fmt,
                              tsv_quoting)  # fmt: skip


def read_texts(file: BinaryIO, name: str, line_ends: bool = False) -> Iterator[str]:
    """The lines of a UTF-8 text file, one text each (line ends, unless `line_ends`, and a leading byte-order mark
    removed), read lazily; a DataError names the line that is not UTF-8 or is too long, or says that the file is
    empty. With `line_ends`, the lines of a CSV or TSV for its row reader (pipeline.data.files.column_texts)."""
    number = 0
    while True:
        raw = file.readline(MAX_TEXT_BYTES + 1)
        if not raw:
            break
        number += 1
        if len(raw) > MAX_TEXT_BYTES and not raw.endswith(b"\n"):
            raise DataError(f"--input {name}: line {number} is longer than {MAX_TEXT_BYTES:,} bytes; one text per "
                            f"line, at most that long")  # fmt: skip
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"--input {name}: line {number} is not valid UTF-8 (byte 0x{raw[error.start]:02x} at "
                            f"column {error.start + 1}); convert the file, e.g. iconv -f windows-1252 -t "
                            f"utf-8") from None  # fmt: skip
        yield text if line_ends else text.rstrip("\r\n")
    if number == 0:
        raise DataError(f"--input {name} is empty: nothing to classify")


def _batches(texts: Iterable[str | bytes], size: int) -> Iterator[list[bytes]]:
    iterator = iter(texts)
    while batch := [_utf8(text) for text in itertools.islice(iterator, size)]:
        yield batch


def _utf8(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
