"""The readers of local files, in plain Python: what a file holds, as training and `rnnpipe init` both read it.

    read_examples(data, where, spec, fmt) -> [(text, label)]   CSV/TSV, one folder per class, one file per class
    iter_text(path, encoding, errors)     -> decoded chunks    plain text, streamed
    table_rows(text, fmt, quoting)        -> (line, fields)    the CSV/TSV row reader; tsv_quoting tells how
    column_texts(lines, where, column, fmt) -> texts           a CSV/TSV column, streamed (`rnnpipe predict`)
    check_labels(labels, source, case)    -> class names       the rule for what a label column may hold

Labels: every example has one (an empty label cell is an error naming the file and line, never a class named "");
surrounding whitespace is not part of a label; at least 2 and at most MAX_CLASSES distinct ones; a column of numbers
with a fractional part in more than CONTINUOUS_DISTINCT distinct values is a continuous target, not classes, and is
refused. Labels that differ only by case ("pos", "POS") are refused too, unless `data.label_case` says to fold them
into one (lower case) or to keep them apart.

Formats (see `DataConfig`): CSV (the csv module: quoted fields may hold commas and newlines); TSV, read as it was
written (`tsv_quoting`): quoted as the csv module and pandas write it (a field holding a tab, a newline or a quote is
quoted, its quotes doubled), or GLUE-style, unquoted (a quote is a character like any other); one folder per class
(aclImdb: its unlabelled "unsup" folder is skipped); one file per class, one example per line (MR; empty lines are
skipped); plain text for next_char.

Decoding: files are read with `data.encoding`; a leading UTF-8 byte-order mark is dropped, CRLF and CR become LF.
Undecodable bytes follow `data.encoding_errors`: "strict" stops with the file, line and byte offset; "replace"
substitutes U+FFFD; "ignore" drops them. Plain text streams in CHUNK_CHARS chunks (a 200 MB corpus is never held as
one Python string).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import glob
import io
import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.config import DataConfig
from pipeline.errors import ConfigError, DataError, shorten

logger = logging.getLogger(__name__)

CHUNK_CHARS = 1 << 20
SKIPPED_CLASS_DIRS = frozenset({"unsup"})  # aclImdb's unlabelled reviews
LABELLED_FORMATS = ("csv", "tsv", "class_dirs", "class_files")
# The most classes a sentiment model is built for: the dense head, the per-class report and the serving output grow
# with it (evaluation summarises beyond pipeline.training.metrics.MATRIX_CLASSES; see also
# pipeline.training.plots.PLOT_CLASSES).
MAX_CLASSES = 10_000
# Numbers with a fraction in more distinct values than this are a continuous target (scores), not class names.
CONTINUOUS_DISTINCT = 20


def check_labels(labels, source: str = "the label column", case: str = "error") -> tuple[str, ...]:
    """Sorted distinct labels; a DataError unless they are 2 to MAX_CLASSES discrete class names. `source` says
    where they come from, for the message; `case` is data.label_case ("error": labels that differ only by case are
    refused)."""
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
    if case == "error":
        _check_case(distinct, source)
    return tuple(distinct)


def _check_case(distinct: list[str], source: str) -> None:
    spellings: dict[str, list[str]] = {}
    for label in distinct:
        spellings.setdefault(label.casefold(), []).append(label)
    clashes = [group for group in spellings.values() if len(group) > 1]
    if clashes:
        shown = "; ".join(", ".join(repr(shorten(label, 30)) for label in group) for group in clashes[:3])
        more = f" (and {len(clashes) - 3} more groups)" if len(clashes) > 3 else ""
        raise DataError(f"{source} holds labels that differ only by case: {shown}{more}; set data.label_case = "
                        f"'fold' to read each group as one class (lower case), or 'keep' to keep them apart "
                        f"(rnnpipe init: --label-case)")  # fmt: skip


def label_of(value: str, case: str) -> str:
    """A label as read: without surrounding whitespace, lower case when `case` (data.label_case) is "fold"."""
    value = value.strip()
    return value.lower() if case == "fold" else value


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


def label_source(data: DataConfig, fmt: str) -> str:
    if fmt in ("csv", "tsv"):
        return f"data.label_column: column {shorten(data.label_column, 40)!r} of {data.train}"
    return f"data.train: {data.train}"


def read_examples(data: DataConfig, where: str, spec: str, fmt: str) -> list[tuple[str, str]]:
    if fmt in ("csv", "tsv"):
        examples = _read_table(data, where, existing_file(where, spec), fmt)
    elif fmt == "class_dirs":
        examples = _read_class_dirs(data, where, spec)
    elif fmt == "class_files":
        examples = _read_class_files(data, where, spec)
    else:
        raise ConfigError(f"data.format: sentiment reads csv, tsv, class_dirs or class_files, not {fmt!r}")
    if not examples:
        raise DataError(f"{where}: {spec} holds no examples")
    return examples


def _read_table(data: DataConfig, where: str, path: Path, fmt: str) -> list[tuple[str, str]]:
    text = read_text(path, data.encoding, data.encoding_errors)
    if not text.strip():
        raise DataError(f"{where}: {path} is empty")
    quoting = "quoted" if fmt == "csv" else data.tsv_quoting
    if quoting == "auto":
        quoting = tsv_quoting(text, f"{where}: {path}")
    try:
        return _table_examples(data, where, path, table_rows(text, fmt, quoting))
    except csv.Error as error:
        what = "CSV" if fmt == "csv" else "quoted TSV (data.tsv_quoting)"
        raise DataError(f"{where}: {path}: not readable as {what} ({error})") from None


def _table_examples(data: DataConfig, where: str, path: Path, rows: Iterator[tuple[int, list[str]]]):
    _, header = next(rows)
    labelled = bool(data.label_column)  # a table of unlabelled texts has none (read_unlabelled)
    missing = [c for c in (data.text_column, data.label_column) if c and c not in header]
    if missing:
        # A file of the config's data says which keys name its columns; another file (evaluate --data) is read
        # with the training data's columns, and those keys belong to the training data.
        remedy = ("set data.text_column / data.label_column" if where.startswith("data.") else
                  "give it the training data's columns")  # fmt: skip
        raise _missing_columns(f"{where}: {path}", missing, header, remedy)
    text_at = header.index(data.text_column)
    label_at = header.index(data.label_column) if labelled else None
    examples = []
    for line_number, row in _full_rows(rows, header, f"{where}: {path}"):
        if not labelled:
            examples.append((row[text_at], ""))
            continue
        label = label_of(row[label_at], data.label_case)
        if not label:
            raise DataError(f"{where}: {path} line {line_number} has no label (column {data.label_column!r} is "
                            f"empty); give every example a class, or remove the line")  # fmt: skip
        examples.append((row[text_at], label))
    return examples


def _missing_columns(source: str, missing: list[str], header: list[str], remedy: str = "") -> DataError:
    """The error for a table without the columns `missing`, listing the ones it has."""
    return DataError(f"{source} has no column {' or '.join(repr(shorten(c, 40)) for c in missing)}; its columns are "
                     f"{[shorten(c, 40) for c in header[:10]]}{' ...' if len(header) > 10 else ''}"
                     f"{f' ({remedy})' if remedy else ''}")  # fmt: skip


def _full_rows(rows: Iterator[tuple[int, list[str]]], header: list[str], source: str):
    """`rows`, refusing one whose number of fields is not the header's."""
    for line_number, row in rows:
        if len(row) != len(header):
            raise DataError(f"{source} line {line_number} has {len(row)} fields, the header {len(header)}")
        yield line_number, row


def table_rows(text: str | Iterable[str], fmt: str, quoting: str = "quoted") -> Iterator[tuple[int, list[str]]]:
    """(line number where the row starts, fields) for each non-empty row of a CSV or TSV text, whole or as its lines
    (line ends kept): the one row reader of training, `rnnpipe init` and `rnnpipe predict`. CSV is always quoted; TSV
    is read `quoting` ("quoted" or "none", see `tsv_quoting`)."""
    if fmt == "csv":
        return _quoted_rows(text, ",")
    return _quoted_rows(text, "\t") if quoting == "quoted" else _unquoted_rows(text)


# What settles a TSV's quoting where the file cannot (tsv_quoting's refusal ends with it).
TSV_QUOTING_SETTING = "set data.tsv_quoting = 'quoted' or 'none' (rnnpipe init: --tsv-quoting)"


def tsv_quoting(text: str, where: str, complete: bool = True, setting: str = TSV_QUOTING_SETTING) -> str:
    """How a TSV text is written: "quoted" (the csv module's and pandas' TSV: a field holding a tab, a newline or a
    quote is quoted, its quotes doubled) or "none" (GLUE-style: a quote is a character). Decided by reading it both
    ways: where no field starts with a quote the two agree; otherwise the reading whose every row has the header's
    number of fields, and of two such readings the quoted one only when it shows quoting at work (a quoted field
    holding a tab, a newline or a quote, or a quoted header). A DataError,
    naming `where` and the line, when neither reading fits or nothing tells two different ones apart. A text that is
    not `complete` (the head of a sampled file, cut at a line end) is judged without its last record."""
    unquoted = list(_unquoted_rows(text))
    if not complete:
        unquoted = unquoted[:-1] or unquoted
    if not any(field.startswith('"') for _, row in unquoted for field in row):
        return "none"
    width = len(unquoted[0][1])
    bad_unquoted = next(((line, row) for line, row in unquoted if len(row) != width), None)
    quoted, bad_quoted = [], None
    try:
        for record in _quoted_rows(text, "\t", strict=True):
            quoted.append(record)
    except csv.Error as error:
        if complete or not quoted:
            bad_quoted = (None, str(error))
    if not complete:
        quoted = quoted[:-1] or quoted
    if bad_quoted is None:
        quoted_width = len(quoted[0][1])
        bad_quoted = next(((line, f"{len(row)} fields, the header {quoted_width}") for line, row in quoted
                           if len(row) != quoted_width), None)  # fmt: skip
    if bad_unquoted is None and bad_quoted is not None:
        return "none"
    if bad_quoted is None and bad_unquoted is not None:
        return "quoted"
    if bad_quoted is None:
        # Both fit. A quoting writer quotes a field that holds a tab, a newline or a quote (the csv module's and
        # pandas' default), or every field, the header's too: either is quoting at work.
        special = any(any(ch in field for ch in '\t\n"') for _, row in quoted for field in row)
        if special or text.lstrip("\ufeff").startswith('"'):
            return "quoted"
        line, row = next((line, row) for line, row in unquoted if any(field.startswith('"') for field in row))
        raise DataError(f"{where}: line {line} reads two ways, with its quotes as TSV quoting (as pandas and the csv "
                        f"module write TSV) or as characters (GLUE-style TSV): {shorten(chr(9).join(row), 60)!r}; "
                        f"{setting}")  # fmt: skip
    line, row = bad_unquoted
    quoted_problem = f"line {bad_quoted[0]}: {bad_quoted[1]}" if bad_quoted[0] else bad_quoted[1]
    raise DataError(f"{where}: not readable as TSV either way: unquoted, line {line} has {len(row)} fields, the "
                    f"header {width}; quoted, {quoted_problem}; fix the file")  # fmt: skip


def _quoted_rows(text: str | Iterable[str], delimiter: str, strict: bool = False) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, fields) per record; a quoted field may span lines."""
    reader = csv.reader(io.StringIO(text) if isinstance(text, str) else text, delimiter=delimiter, strict=strict)
    start = 1
    for row in reader:
        if row:
            yield start, row
        start = reader.line_num + 1


def _unquoted_rows(text: str | Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """GLUE-style TSV: no quoting, a quote character is just a character; empty lines are skipped."""
    lines = text.split("\n") if isinstance(text, str) else (line.rstrip("\r\n") for line in text)
    for line_number, line in enumerate(lines, start=1):
        if line:
            yield line_number, line.split("\t")


def column_texts(lines: Iterable[str], where: str, column: str, fmt: str, quoting: str = "auto") -> Iterator[str]:
    """The `column` of each row of a CSV or TSV (`fmt`) given as its lines, line ends kept, after its header row,
    read lazily: a file of any size streams through. A TSV is read `quoting` ("quoted", "none", or "auto": told
    from its first CHUNK_CHARS, as `rnnpipe init` tells it from a file's head). Errors are DataErrors naming `where`
    and the line."""
    lines = iter(lines)
    head, size = [], 0
    for line in lines:
        head.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            break
    if fmt == "csv":
        quoting = "quoted"
    elif quoting == "auto" and head:
        quoting = tsv_quoting("".join(head), where, complete=size < CHUNK_CHARS,
                              setting="give --tsv-quoting quoted or none")  # fmt: skip
    rows = table_rows(itertools.chain(head, lines), fmt, quoting)
    try:
        _, header = next(rows, (0, []))
        if column not in header:
            raise _missing_columns(where, [column], header)
        at = header.index(column)
        yield from (row[at] for _, row in _full_rows(rows, header, f"{where}:"))
    except csv.Error as error:
        raise DataError(f"{where}: not readable as {fmt.upper()} ({error})") from None


def _read_class_dirs(data: DataConfig, where: str, spec: str) -> list[tuple[str, str]]:
    root = Path(spec)
    if not root.is_dir():
        raise DataError(f"{where}: {spec} is not a folder (format class_dirs wants one sub-folder per class)")
    examples = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if class_dir.name in SKIPPED_CLASS_DIRS:
            logger.info("skipping %s: unlabelled examples", class_dir)
            continue
        for file in sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            label = label_of(class_dir.name, data.label_case)
            examples.append((read_text(file, data.encoding, data.encoding_errors).strip(), label))
    return examples


def class_file_labels(files: list[Path]) -> dict[Path, str]:
    """Each class file's label: its extension when all the files share one name (rt-polarity.pos, rt-polarity.neg),
    otherwise its name without the extension (positive.txt, negative.txt)."""
    same_stem = len({f.stem for f in files}) == 1 and all(f.suffix for f in files)
    return {f: f.suffix[1:] if same_stem else f.stem for f in files}


def _read_class_files(data: DataConfig, where: str, spec: str) -> list[tuple[str, str]]:
    files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
    if not files:
        raise DataError(f"{where}: no file matches {spec}")
    labels = class_file_labels(files)
    examples = []
    for file in files:
        label = label_of(labels[file], data.label_case)
        text = read_text(file, data.encoding, data.encoding_errors)
        if not text.strip():
            raise DataError(f"{where}: {file} is empty")
        examples.extend((line.strip(), label) for line in text.split("\n") if line.strip())
    return examples


def read_unlabelled(data: DataConfig) -> list[str]:
    """The texts of `data.unlabelled`, at most `data.max_unlabelled` (the first, in file order): a CSV/TSV's text
    column, each .txt file of a folder (recursively: aclImdb's unsup/), or each non-empty line of a text file; a
    glob may name several of these."""
    spec = data.unlabelled
    paths = [Path(spec)] if Path(spec).exists() else sorted(Path(p) for p in glob.glob(spec))
    if not paths:
        raise DataError(f"data.unlabelled: {spec} does not exist" if not any(c in spec for c in "*?[") else
                        f"data.unlabelled: no file matches {spec}")  # fmt: skip
    texts: list[str] = []
    limit = data.max_unlabelled
    for path in paths:
        if len(texts) >= limit:
            break
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*.txt") if p.is_file() and not p.name.startswith(".")):
                if len(texts) >= limit:
                    break
                text = read_text(file, data.encoding, data.encoding_errors).strip()
                if text:
                    texts.append(text)
        elif path.suffix.lower() in (".csv", ".tsv"):
            texts += [text for text, _ in _read_table(_unlabelled_table(data), "data.unlabelled", path,
                                                      path.suffix.lower()[1:])][: limit - len(texts)]  # fmt: skip
        else:
            for chunk_line in _lines(path, data.encoding, data.encoding_errors):
                if len(texts) >= limit:
                    break
                texts.append(chunk_line)
    if not texts:
        raise DataError(f"data.unlabelled: {spec} holds no texts")
    if len(texts) >= limit:
        logger.info("data.unlabelled: read the first %d texts (data.max_unlabelled)", limit)
    return texts


def _unlabelled_table(data: DataConfig) -> DataConfig:
    """A CSV/TSV of texts alone: the label column is not looked for."""
    return dataclasses.replace(data, label_column="")


def _lines(path: Path, encoding: str, errors: str) -> Iterator[str]:
    """The non-empty lines of a text file, stripped, streamed."""
    rest = ""
    for chunk in iter_text(path, encoding, errors):
        lines = (rest + chunk).split("\n")
        rest = lines.pop()
        yield from (line.strip() for line in lines if line.strip())
    if rest.strip():
        yield rest.strip()


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


def existing_file(where: str, spec: str) -> Path:
    path = Path(spec)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"{where}: {spec} {what}")
    return path


def resolve_format(data: DataConfig) -> str:
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
