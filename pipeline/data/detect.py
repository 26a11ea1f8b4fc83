"""What a data set holds and the config it needs, for `rnnpipe init` (pipeline.stages.init writes the config):

    findings = inspect(["data/reviews.csv"])        # format, columns, labels and counts, sizes, encoding
    print("\\n".join(findings.summary()))
    findings.data_section()                          # the [data] keys of the starter config

Nothing is asked; what the data cannot tell (which column is the label, when several could be) is a DataError
naming the option that settles it.

How each thing is decided:
- format: several files or a glob: one file per class. A folder: one sub-folder per class (sub-folders named
  train / test / validation are the splits), else a folder of class files. .csv / .tsv by extension; another file
  whose sampled lines all hold the same number of tabs is TSV; anything else is plain text. `fmt` overrides.
- encoding: UTF-16 when a UTF-16 byte-order mark says so; otherwise the first of UTF-8 (a byte-order mark is noted,
  the reader drops it) and Windows-1252 under which every sampled byte of every file decodes strictly. NUL bytes,
  a compressed file's or an archive's signature, or many control characters: rejected as binary.
- columns: the text column is "text" (the config's default), else the one text-like column, else the longest by a
  factor of two; the label column is "label", else the one other column whose values look like classes. A label
  column of continuous numbers, or with a value for nearly every row (an id, a text), is rejected.
- task: labelled data -> sentiment; one plain text -> next_char.

Files are parsed by training's readers (pipeline.data.files: its row reader for CSV/TSV, its label rule for a named
label column, its class-file names; newlines normalized to LF), so what init counts is what training sees.

Bounded work: a file up to WHOLE_FILE_BYTES is read whole; a larger one is sampled (its first HEAD_BYTES and BLOCKS
blocks spread evenly to its end) and counts from a sample are estimates, shown with "~". A folder of class folders
is listed whole, but only SAMPLED_FILES files of each class are read. Whatever was not read is still checked
when training reads it: data.encoding_errors = "strict" stops there, naming the file and line.
"""

from __future__ import annotations

import codecs
import collections
import csv
import glob
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import recipes
from pipeline.config import DataConfig
from pipeline.data import files as data_files
from pipeline.errors import ConfigError, DataError, shorten

FORMATS = ("csv", "tsv", "class_dirs", "class_files", "text")
# No test split in the data: this share is held out for test (seeded for labelled data, the end of a plain text).
TEST_FRACTION = 0.1

WHOLE_FILE_BYTES = 16 << 20
HEAD_BYTES = 4 << 20
BLOCKS = 16
BLOCK_BYTES = 128 << 10
SAMPLED_FILES = 64  # per class folder
SAMPLED_FILE_BYTES = 256 << 10  # of each of those files

# Guessing which column is the label (none is named "label" or given with --label-column) is stricter than the
# rule training applies to a named one (pipeline.data.files.check_labels): a guessed label column has at most this
# many distinct non-integer numbers, or numbers at all.
MAX_FLOAT_CLASSES = 10
MAX_NUMERIC_CLASSES = 50
# A text column: this many words per row on average.
TEXT_WORDS = 3.0
# More than this share of control characters (besides tab, newline, form feed) in decoded text: a binary file.
MAX_CONTROL_SHARE = 0.01

_SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test", "validation": "validation",
                "valid": "validation", "val": "validation", "dev": "validation"}  # fmt: skip
_SIGNATURES = (
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (b"%PDF-", "a PDF"),
    (b"PAR1", "a Parquet file"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy array"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
NEWLINE = b"\n"
_UTF16_BOMS = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_FORMAT_NAMES = {"csv": "CSV", "tsv": "TSV", "class_dirs": "one folder per class", "class_files": "one file per class",
                 "text": "plain text"}  # fmt: skip


# --- what init found -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitFindings:
    """One split's data as found: `spec` is its value in the config (data.train, data.test, ...)."""

    spec: str
    examples: int  # rows / lines / files; characters for plain text. An estimate when `estimated`.
    estimated: bool
    size: int  # bytes
    files: int
    labels: Mapping[str, int] = field(default_factory=dict)  # class -> examples (in the sample, when estimated)
    words: float = 0.0  # per example, labelled data
    read_bytes: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Findings:
    data: str  # DATA as given
    task: str
    task_reason: str
    format: str
    format_detail: str
    encoding: str  # data.encoding
    encoding_described: str
    splits: Mapping[str, SplitFindings]  # "train", and "validation" / "test" when the data has them
    text_column: str = ""
    label_column: str = ""
    columns_described: str = ""
    notes: tuple[str, ...] = ()
    tsv_quoting: str = ""  # tsv: how it is written, "quoted" or "none"
    label_case: str = "error"

    def data_section(self) -> dict[str, object]:
        """The [data] keys of the starter config."""
        section: dict[str, object] = {"format": self.format, "train": self.splits["train"].spec}
        for name in ("validation", "test"):
            if name in self.splits:
                section[name] = self.splits[name].spec
        if self.format in ("csv", "tsv"):
            section["text_column"] = self.text_column
            section["label_column"] = self.label_column
        if self.format == "tsv":
            section["tsv_quoting"] = self.tsv_quoting
        if self.label_case != "error":
            section["label_case"] = self.label_case
        section["encoding"] = self.encoding
        if "test" not in self.splits:
            section["test_fraction"] = TEST_FRACTION
        return section

    def summary(self) -> list[str]:
        """What was found, in a few lines."""
        train = self.splits["train"]
        files = f", {train.files:,} files" if train.files > 1 else ""
        sampled = f", {_size(train.read_bytes)} of it read (~: estimated from that)" if train.estimated else ""
        lines = [f"{train.spec}: {self.format_detail}{files}, {_size(train.size)}{sampled}",
                 f"encoding {self.encoding_described}"]  # fmt: skip
        if self.columns_described:
            lines.append(self.columns_described)
        lines.append(self._counts(train))
        for name in ("validation", "test"):
            if name in self.splits:
                lines.append(f"{name}: {self.splits[name].spec}: {self._counts(self.splits[name])}")
        if "test" in self.splits:
            held_out = "test data given"
        elif self.format == "text":
            held_out = f"no test split: the last {TEST_FRACTION:.0%} of the text is held out for test"
        else:
            held_out = f"no test split: a seeded {TEST_FRACTION:.0%} is held out for test"
        lines.append(f"task {self.task} ({self.task_reason}); {held_out}")
        lines += [f"note: {note}" for note in self.notes]
        return lines

    def _counts(self, split: SplitFindings) -> str:
        if self.format == "text":
            return f"{_approx(split)}{split.examples:,} characters; {split.detail}"
        unit = "rows" if self.format in ("csv", "tsv") else "examples"
        return (f"{_approx(split)}{split.examples:,} {unit} in {len(split.labels)} classes: {_label_counts(split)}; "
                f"{split.words:.1f} words per example")  # fmt: skip


def _approx(split: SplitFindings) -> str:
    return "~" if split.estimated else ""


def _label_counts(split: SplitFindings, shown: int = 8) -> str:
    total = sum(split.labels.values()) or 1
    items = sorted(split.labels.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) <= shown:
        items = sorted(items)
    if split.estimated:
        parts = [f"{_quoted(label)} ~{count / total:.0%}" for label, count in items[:shown]]
    else:
        parts = [f"{_quoted(label)} {count:,}" for label, count in items[:shown]]
    more = f", and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(parts) + more


def _quoted(label: str) -> str:
    """A class name as shown: bare when plain, quoted when empty, a number, or holding spaces or commas."""
    plain = label.isprintable() and label[:1].isalpha() and not any(ch in label for ch in " ,;'\"")
    return label if plain else repr(shorten(label, 40))


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# --- inspecting ----------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """One split's data before reading: its format, config value and the files to read."""

    fmt: str
    spec: str
    files: list[Path]
    labels: dict[Path, str] = field(default_factory=dict)  # class files / sampled class-dir files -> class
    class_counts: dict[str, int] = field(default_factory=dict)  # class dirs: files per class (listed, all)
    size: int = 0
    file_count: int = 0
    detail: str = ""
    notes: list[str] = field(default_factory=list)


def inspect(data: Sequence[str], task: str | None = None, fmt: str | None = None, text_column: str | None = None,
            label_column: str | None = None, encoding: str | None = None, validation: str | None = None,
            test: str | None = None, tsv_quoting: str | None = None,
            label_case: str = "error") -> Findings:  # fmt: skip
    """What `data` (one path, folder or glob, or several class files) holds and the config it needs; see the module
    docstring. `task`, `fmt`, the columns, `encoding` and `tsv_quoting` override what would be told from the data;
    `label_case` is data.label_case."""
    if not data:
        raise DataError("give the data: a CSV/TSV file, a folder, a glob of class files or a plain text")
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"--format: must be one of {', '.join(FORMATS)}; got {shorten(repr(fmt))}")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(f"--encoding: unknown encoding {shorten(repr(encoding))}") from None
    shown = " ".join(data)
    located = _locate(list(data), fmt, task)
    notes: list[str] = []
    if isinstance(located, _SplitFolders):
        sources = {split: _locate([spec], fmt, task) for split, spec in located.specs.items()}
        notes += located.notes
    else:
        sources = {"train": located}
    for name, spec in (("validation", validation), ("test", test)):
        if spec and name in sources:
            raise DataError(f"--{name}: {shown} has a {name} folder already ({sources[name].spec})")
        if spec:
            # "In DATA's format", as the config has one data.format; an extension saying otherwise is a mistake.
            same = fmt or sources["train"].fmt
            suffix = Path(spec).suffix.lower()[1:]
            if suffix in ("csv", "tsv") and suffix != same:
                raise DataError(f"--{name}: {spec} is {suffix.upper()} and {shown} is {_FORMAT_NAMES[same]}; every "
                                f"split is read in one format (data.format)")  # fmt: skip
            sources[name] = _locate([spec], same, task)
    fmt = _same_format(sources, shown)
    task, task_reason = _task(task, fmt, shown)

    raws = {split: [_read_raw(path, fmt) for path in source.files] for split, source in sources.items()}
    chosen, described, texts = _decode(raws, encoding)

    columns = ("", "", "")
    if fmt in ("csv", "tsv"):
        if tsv_quoting is None and fmt == "tsv":
            head = texts["train"][0]
            tsv_quoting = data_files.tsv_quoting(head.head, sources["train"].spec, complete=head.whole)
        splits, columns = _tables(sources, raws, texts, fmt, text_column, label_column, notes, tsv_quoting,
                                  label_case)  # fmt: skip
    else:
        if text_column or label_column:
            raise ConfigError(f"--text-column / --label-column: only for CSV and TSV data, and {shown} is "
                              f"{_FORMAT_NAMES[fmt]}")  # fmt: skip
        if fmt == "text":
            splits = {split: _plain_text(sources[split], raws[split], texts[split]) for split in sources}
        else:
            splits = {
                split: _class_examples(sources[split], raws[split], texts[split], label_case) for split in sources
            }
    notes += [note for source in sources.values() for note in source.notes]
    if fmt != "text":
        _check_labels(splits, notes, label_case)
    _check_size(splits, fmt, notes)
    return Findings(
        data=shown,
        task=task,
        task_reason=task_reason,
        format=fmt,
        format_detail=_format_detail(fmt, sources["train"]),
        encoding=chosen,
        encoding_described=described,
        splits=splits,
        text_column=columns[0],
        label_column=columns[1],
        columns_described=columns[2],
        notes=tuple(notes),
        tsv_quoting=tsv_quoting or "" if fmt == "tsv" else "",
        label_case=label_case,
    )


def _same_format(sources: Mapping[str, _Source], shown: str) -> str:
    formats = {source.fmt for source in sources.values()}
    if len(formats) > 1:
        found = ", ".join(f"{split} {_FORMAT_NAMES.get(s.fmt, s.fmt)}" for split, s in sources.items())
        raise DataError(f"{shown}: every split must be in one format (there is one data.format), found {found}")
    return formats.pop()


def _format_detail(fmt: str, source: _Source) -> str:
    if fmt == "class_files":
        return f"{_FORMAT_NAMES[fmt]} ({source.detail})"
    return _FORMAT_NAMES[fmt]


def _task(task: str | None, fmt: str, shown: str) -> tuple[str, str]:
    labelled = fmt != "text"
    if task is None:
        return ("sentiment", "labelled data; --task to change") if labelled else \
               ("next_char", "one plain text; --task to change")  # fmt: skip
    if recipes.get(task).labelled and not labelled:
        raise DataError(f"{shown}: plain text, without labels; {task} needs labelled data: a CSV/TSV with a label "
                        f"column, one folder per class, or one file per class (e.g. 'data/*.txt'); --format if it "
                        f"is one of those")  # fmt: skip
    if labelled and not recipes.get(task).labelled:
        hint = "; --format text reads the file as one plain text" if fmt in ("csv", "tsv") else ""
        raise DataError(f"{shown}: {_FORMAT_NAMES[fmt]}; {task} learns from one plain text file{hint}")
    return task, "--task"


# --- where the data is and in what format --------------------------------------------------------------------


@dataclass(frozen=True)
class _SplitFolders:
    """A folder whose sub-folders are the splits (aclImdb: train/, test/): {split: folder}."""

    specs: dict[str, str]
    notes: list[str]


def _locate(data: list[str], fmt: str | None, task: str | None) -> _Source | _SplitFolders:
    """The format and files of the data given on the command line (several paths: class files)."""
    if len(data) > 1:
        return _class_files_given(data)
    if not data[0].strip():
        raise DataError("DATA is an empty string")
    spec = os.path.normpath(data[0])
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        return _folder(spec, path, fmt)
    if path.is_file():
        return _file(spec, path, fmt, task)
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec)) if Path(p).is_file())
        if not files:
            raise DataError(f"{spec}: no file matches")
        if fmt not in (None, "class_files"):
            raise DataError(f"{spec}: a glob is one file per class; --format {fmt} wants a single path")
        return _class_files(spec, files)
    raise DataError(f"{spec} does not exist")


def _file(spec: str, path: Path, fmt: str | None, task: str | None) -> _Source:
    source = _Source(fmt or "", spec, [path], size=path.stat().st_size, file_count=1)
    if fmt in ("class_dirs",):
        raise DataError(f"{spec}: a file; format class_dirs wants a folder holding one sub-folder per class")
    if fmt == "class_files":
        return _class_files(glob.escape(spec), [path])
    if fmt is None:
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            source.fmt = suffix[1:]
        elif (task is None or recipes.get(task).labelled) and _looks_tabular(path):
            source.fmt = "tsv"
        else:
            source.fmt = "text"
    return source


def _looks_tabular(path: Path) -> bool:
    """Every one of the file's first lines (at least two) has the same number of tabs, and at least one."""
    with open(path, "rb") as f:
        head = f.read(64 << 10)
    lines = [line for line in head.split(b"\n")[:-1][:200] if line.strip()]
    tabs = {line.count(b"\t") for line in lines}
    return len(lines) >= 2 and len(tabs) == 1 and tabs.pop() >= 1


def _folder(spec: str, path: Path, fmt: str | None) -> _Source | _SplitFolders:

    entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    subdirs = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file()]
    if fmt in ("csv", "tsv", "text"):
        raise DataError(f"{spec}: a folder; format {fmt} wants one file")
    splits = {_SPLIT_NAMES.get(d.name.lower()): d for d in subdirs}
    if fmt is None and subdirs and None not in splits and "train" in splits:
        ignored = [d.name for d in subdirs if splits[_SPLIT_NAMES[d.name.lower()]] != d]
        if ignored:
            raise DataError(f"{spec}: several folders for one split ({', '.join(ignored)}); give the train folder")
        ordered = sorted(splits.items(), key=lambda kv: ("train", "validation", "test").index(kv[0]))
        notes = [f"ignored {_names(files)} beside the split folders"] if files else []
        return _SplitFolders({split: os.path.join(spec, d.name) for split, d in ordered}, notes)
    class_dirs = [d for d in subdirs if d.name not in data_files.SKIPPED_CLASS_DIRS and _has_files(d)]
    if fmt == "class_dirs" or (fmt is None and len(class_dirs) >= 2):
        source = _class_dirs(spec, class_dirs)
        for d in subdirs:
            if d.name in data_files.SKIPPED_CLASS_DIRS and _has_files(d):
                source.notes.append(f"skipped the folder {d.name} (unlabelled examples), as training does; to "
                                    f"pretrain on them: --unlabelled {os.path.join(spec, d.name)}")  # fmt: skip
        if files:
            source.notes.append(f"ignored {_names(files)} beside the class folders, as training does")
        return source
    if fmt == "class_files" or (fmt is None and len(files) >= 2):
        return _class_files_in(spec, path, files)
    raise DataError(f"{spec}: neither sub-folders of examples, one per class ({len(class_dirs)} found), nor one "
                    f"file per class ({len(files)} found); set --format")  # fmt: skip


def _has_files(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(e.is_file() and not e.name.startswith(".") for e in entries)


def _names(paths: Sequence[Path], shown: int = 3) -> str:
    names = ", ".join(p.name for p in paths[:shown])
    return names + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def _class_dirs(spec: str, class_dirs: list[Path]) -> _Source:
    source = _Source("class_dirs", spec, [])
    for folder in class_dirs:
        with os.scandir(folder) as entries:
            files = sorted((Path(e.path), e.stat().st_size) for e in entries
                           if e.is_file() and not e.name.startswith("."))  # fmt: skip
        source.class_counts[folder.name] = len(files)
        source.size += sum(size for _, size in files)
        source.file_count += len(files)
        step = max(1, len(files) // SAMPLED_FILES)
        for file, _ in files[::step][:SAMPLED_FILES]:
            source.files.append(file)
            source.labels[file] = folder.name
    if source.file_count > len(source.files):
        source.detail = f"read {len(source.files):,} of {source.file_count:,} files"
    return source


def _class_files_in(spec: str, folder: Path, files: list[Path]) -> _Source:
    """A folder of class files: the files that form one group (same name, different extensions; else same
    extension), as a glob that matches exactly them."""
    by_stem = collections.defaultdict(list)
    by_suffix = collections.defaultdict(list)
    for file in files:
        if file.suffix:
            by_stem[file.stem].append(file)
        by_suffix[file.suffix].append(file)
    stem_groups = [group for group in by_stem.values() if len(group) >= 2]
    suffix_groups = [(suffix, group) for suffix, group in by_suffix.items() if len(group) >= 2]
    base = glob.escape(spec)
    if len(stem_groups) == 1:
        chosen = stem_groups[0]
        pattern = os.path.join(base, glob.escape(chosen[0].stem) + ".*")
    elif len(suffix_groups) == 1:
        suffix, chosen = suffix_groups[0]
        pattern = os.path.join(base, "*" + glob.escape(suffix))
    else:
        raise DataError(f"{spec}: cannot tell which of its {len(files)} files are the classes ({_names(files)}); "
                        f"give them as a quoted glob, e.g. rnnpipe init '{os.path.join(spec, '*.txt')}'")  # fmt: skip
    source = _class_files(pattern, sorted(chosen))
    others = [f for f in files if f not in chosen]
    if others:
        source.notes.append(f"ignored {_names(others)} (not matching {pattern})")
    return source


def _class_files_given(paths: list[str]) -> _Source:
    """Several files on the command line (a glob the shell expanded): one glob matching exactly them."""
    files = [Path(p) for p in paths]
    for file in files:
        if not file.is_file():
            raise DataError(f"{file}: {'a folder' if file.is_dir() else 'does not exist'}; several DATA are class "
                            f"files, one per class")  # fmt: skip
    folders = {os.path.normpath(str(f.parent)) for f in files}
    if len(folders) == 1:
        folder = folders.pop()
        source = _class_files_in(folder, Path(folder), sorted(files))
        if {Path(p).resolve() for p in glob.glob(source.spec)} == {f.resolve() for f in files}:
            source.notes = []
            return source
    raise DataError(f"{len(files)} files given; to use exactly these as one file per class, give them as one "
                    f"quoted glob (e.g. 'data/mr/rt-polarity.*')")  # fmt: skip


def _class_files(pattern: str, files: list[Path]) -> _Source:

    labels = data_files.class_file_labels(files)
    size = sum(f.stat().st_size for f in files)
    by_extension = all(label == f.suffix[1:] for f, label in labels.items())
    detail = "label = file extension" if by_extension else "label = file name"
    return _Source("class_files", pattern, files, labels=labels, size=size, file_count=len(files), detail=detail)


# --- reading and decoding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    path: Path
    size: int
    pieces: tuple[tuple[int, bytes], ...]  # (offset, bytes), the first at offset 0

    @property
    def read(self) -> int:
        return sum(len(data) for _, data in self.pieces)

    @property
    def whole(self) -> bool:
        return self.read == self.size


@dataclass(frozen=True)
class _Text:
    """Decoded, line-aligned, LF-normalized text of a file's pieces: the head, and blocks from through the file."""

    head: str
    blocks: tuple[str, ...]
    whole: bool
    size: int
    read: int


def _read_raw(path: Path, fmt: str) -> _Raw:
    size = path.stat().st_size
    whole_limit, head, blocks = (SAMPLED_FILE_BYTES, SAMPLED_FILE_BYTES, 0) if fmt == "class_dirs" else \
                                (WHOLE_FILE_BYTES, HEAD_BYTES, BLOCKS)  # fmt: skip
    with open(path, "rb") as f:
        if size <= whole_limit:
            pieces = [(0, f.read())]
        else:
            pieces = [(0, f.read(head))]
            rest = size - head - BLOCK_BYTES
            for i in range(blocks):
                offset = head + rest * i // max(blocks - 1, 1)
                f.seek(offset)
                pieces.append((offset, f.read(BLOCK_BYTES)))
    raw = _Raw(path, size, tuple(pieces))
    _check_not_binary(raw)
    return raw


def _check_not_binary(raw: _Raw) -> None:
    head = raw.pieces[0][1]
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise DataError(f"{raw.path}: {what}, not text; rnnpipe reads text files (extract or convert it first)")
    if any(head.startswith(bom) for bom, _ in _UTF16_BOMS):
        return  # NUL bytes are half of UTF-16's ASCII
    for offset, data in raw.pieces:
        at = data.find(b"\x00")
        if at >= 0:
            raise DataError(f"{raw.path}: a NUL byte at offset {offset + at:,}: a binary file, not text")


def _decode(raws: Mapping[str, list[_Raw]], given: str | None) -> tuple[str, str, dict[str, list[_Text]]]:
    """(data.encoding, how it was chosen, the decoded files per split): the first candidate encoding under which
    every file's sampled bytes decode strictly."""
    everything = [raw for split in raws.values() for raw in split]
    utf16 = [raw for raw in everything if _utf16_codec(raw)]
    if given:
        candidates = [given]
    elif utf16:
        if len(utf16) != len(everything):
            other = next(raw for raw in everything if not _utf16_codec(raw))
            raise DataError(f"{utf16[0].path} is UTF-16 and {other.path} is not: convert them to one encoding")
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "windows-1252"]
    failures = []
    for encoding in candidates:
        try:
            texts = {split: [_decode_raw(raw, encoding) for raw in split_raws] for split, split_raws in raws.items()}
        except _Undecodable as failure:
            failures.append((encoding, failure))
            continue
        return encoding, _describe_encoding(encoding, given, everything, failures), texts
    hint = "is it the right one?" if given else "set --encoding (e.g. latin-1)"
    names = [_ENCODING_NAMES.get(encoding, encoding) for encoding, _ in failures]
    places = {str(failure) for _, failure in failures}
    if len(places) == 1:
        which = f"neither {names[0]} nor {names[1]}" if len(names) == 2 else f"not {' '.join(names)}"
        raise DataError(f"{places.pop()}: {which}; {hint}")
    tried = " nor ".join(f"{_ENCODING_NAMES.get(e, e)} ({f})" for e, f in failures)
    raise DataError(f"not {tried}; {hint}")


class _Undecodable(Exception):
    """Where a file does not decode: str() names the file by its path, `short` by its name."""

    def __init__(self, path: Path, where: str):
        super().__init__(f"{path}{where}")
        self.short = f"{path.name}{where}"


_ENCODING_NAMES = {"utf-8": "UTF-8", "windows-1252": "Windows-1252", "utf-16": "UTF-16"}


def _describe_encoding(encoding: str, given: str | None, raws: list[_Raw], failures: list) -> str:
    if given:
        return f"{given} (--encoding)"
    if encoding == "utf-16":
        return "UTF-16 (byte-order mark)"
    if encoding == "windows-1252":
        return f"Windows-1252: not UTF-8 ({failures[0][1].short})"
    if any(raw.pieces[0][1].startswith(codecs.BOM_UTF8) for raw in raws):
        return "UTF-8 with a byte-order mark (dropped when read)"
    if all(data.isascii() for raw in raws for _, data in raw.pieces):
        return "UTF-8 (ASCII only)"
    return "UTF-8"


def _utf16_codec(raw: _Raw) -> str | None:
    head = raw.pieces[0][1]
    return next((codec for bom, codec in _UTF16_BOMS if head.startswith(bom)), None)


def _decode_raw(raw: _Raw, encoding: str) -> _Text:
    codec = codecs.lookup(encoding).name
    if codec == "utf-16":  # pieces from inside the file need the byte order its byte-order mark gives
        codec = _utf16_codec(raw)
    if codec is None:
        raise _Undecodable(raw.path, " has no UTF-16 byte-order mark")
    texts = []
    for offset, data in raw.pieces:
        at_end = offset + len(data) >= raw.size
        text = _decode_piece(raw.path, offset, data, codec, at_end)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if offset > 0:  # starts mid-line
            text = text[text.find("\n") + 1 :] if "\n" in text else ""
        if not at_end:  # ends mid-line
            text = text[: text.rfind("\n") + 1]
        texts.append(text)
    _check_control_characters(raw.path, texts[0])
    return _Text(texts[0], tuple(texts[1:]), raw.whole, raw.size, raw.read)


def _decode_piece(path: Path, offset: int, data: bytes, codec: str, at_end: bool) -> str:
    start = 0
    if offset == 0:
        boms = {"utf-8": [codecs.BOM_UTF8], "utf-8-sig": [codecs.BOM_UTF8], "utf-16-le": [codecs.BOM_UTF16_LE],
                "utf-16-be": [codecs.BOM_UTF16_BE]}.get(codec, [])  # fmt: skip
        start = next((len(bom) for bom in boms if data.startswith(bom)), 0)
    elif codec.startswith("utf-16"):
        start = offset % 2  # code units start at even offsets
        unit = data[start : start + 2]
        if len(unit) == 2 and 0xDC <= unit[1 if codec.endswith("le") else 0] <= 0xDF:
            start += 2  # the second half of a surrogate pair
    # A block from inside a file may start inside a multibyte character: up to three bytes are skipped to its start.
    retries = 3 if offset > 0 and not codec.startswith("utf-16") else 0
    for skip in range(retries + 1):
        begin = start + skip
        try:
            return codecs.getincrementaldecoder(codec)("strict").decode(data[begin:], final=at_end)
        except UnicodeDecodeError as error:
            if skip < retries and error.start < retries - skip:
                continue
            at = begin + error.start
            line = f", line {data.count(NEWLINE, 0, at) + 1:,}" if offset == 0 else ""
            raise _Undecodable(path, f"{line}: byte 0x{data[at]:02x} at offset {offset + at:,}") from None
    raise AssertionError("unreachable")


def _check_control_characters(path: Path, text: str) -> None:
    if not text:
        return
    control = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\n\f\v") or ch == "\x7f")
    if control > MAX_CONTROL_SHARE * len(text):
        raise DataError(f"{path}: {control / len(text):.0%} of its characters are control characters: a binary file, "
                        f"not text")  # fmt: skip


# --- labelled data -------------------------------------------------------------------------------------------


def _class_examples(source: _Source, raws: list[_Raw], texts: list[_Text], label_case: str) -> SplitFindings:
    """One file per class (non-blank lines) or one folder per class (one example per file)."""
    counts: collections.Counter[str] = collections.Counter()
    words, examples = 0, 0
    estimated = False
    for file, text in zip(source.files, texts):
        label = data_files.label_of(source.labels[file], label_case)
        if source.fmt == "class_dirs":
            examples += 1
            words += len(text.head.split())
            continue
        lines = [line for part in (text.head, *text.blocks) for line in part.split("\n") if line.strip()]
        if not lines:
            raise DataError(f"{file}: no examples (training stops on an empty class file)")
        sampled = len(lines) if text.whole else round(len(lines) * text.size / max(text.read, 1))
        estimated |= not text.whole
        counts[label] += sampled
        examples += len(lines)
        words += sum(len(line.split()) for line in lines)
    if source.fmt == "class_dirs":
        counts.update({data_files.label_of(label, label_case): n for label, n in source.class_counts.items()})
    return SplitFindings(spec=source.spec, examples=sum(counts.values()), estimated=estimated, size=source.size,
                         files=source.file_count, labels=dict(counts), words=words / max(examples, 1),
                         read_bytes=sum(raw.read for raw in raws))  # fmt: skip


@dataclass(frozen=True)
class _Column:
    name: str
    counts: collections.Counter  # stripped value -> rows
    rows: int
    mean_chars: float
    mean_words: float
    numeric: bool  # every non-empty value is a finite number
    integral: bool
    low: float = 0.0
    high: float = 0.0

    @property
    def distinct(self) -> int:
        return len(self.counts)

    def not_labels(self) -> str | None:
        """Why these values are not classes, or None when they could be."""
        if self.distinct < 2:
            return f"{self.distinct} distinct value" + ("s" if self.distinct != 1 else "")
        continuous = f"looks continuous: {self.distinct:,} distinct numbers from {self.low:g} to {self.high:g}"
        if self.numeric and not self.integral and self.distinct > MAX_FLOAT_CLASSES:
            return continuous
        if self.rows >= 10 and 2 * self.distinct > self.rows:
            return f"a value for nearly every row ({self.distinct:,} distinct in {self.rows:,} rows)"
        if self.numeric and self.distinct > MAX_NUMERIC_CLASSES:
            return continuous
        return None


def _tables(sources, raws, texts, fmt, text_column, label_column, notes, quoting, label_case):
    """Findings for each CSV/TSV split, and (text column, label column, how they were chosen)."""
    parsed = {split: _parse_table(sources[split].files[0], texts[split][0], fmt, quoting) for split in sources}
    header, rows = parsed["train"]
    columns = [_column(name, [row[i] for row in rows], label_case) for i, name in enumerate(header)]
    text, label, described = _choose_columns(sources["train"].spec, header, columns, text_column, label_column,
                                             label_case)  # fmt: skip
    chosen = next(column for column in columns if column.name == label)
    if chosen.rows >= 10 and 2 * chosen.distinct > chosen.rows:
        notes.append(f"label column {label!r} has a value for nearly every row ({chosen.distinct:,} distinct in "
                     f"{chosen.rows:,} rows): classes of one or two examples are too few to learn")  # fmt: skip
    for name in (text, label):
        if header.count(name) > 1:
            notes.append(f"the header names {name!r} {header.count(name)} times; training reads the first")
    splits = {}
    for split, (split_header, split_rows) in parsed.items():
        spec = sources[split].spec
        missing = [c for c in (text, label) if c not in split_header]
        if missing:
            raise DataError(f"{spec} has no column {' or '.join(map(repr, missing))}; its columns are {split_header}")
        at = split_header.index(label)
        counts = collections.Counter(data_files.label_of(row[at], label_case) for row in split_rows)
        text_at = split_header.index(text)
        words = sum(len(row[text_at].split()) for row in split_rows) / max(len(split_rows), 1)
        raw, decoded = raws[split][0], texts[split][0]
        estimated = not decoded.whole
        examples = round(len(split_rows) * raw.size / max(raw.read, 1)) if estimated else len(split_rows)
        splits[split] = SplitFindings(spec=spec, examples=examples, estimated=estimated, size=raw.size, files=1,
                                      labels=dict(counts), words=words, read_bytes=raw.read)  # fmt: skip
    for split in splits.values():
        empty = split.labels.get("", 0)
        if empty:
            raise DataError(f"{split.spec}: {empty:,} rows have an empty {label!r} (training stops at the first); "
                            f"give every example a class, or remove those rows")  # fmt: skip
    return splits, (text, label, described)


def _parse_table(path: Path, text: _Text, fmt: str, quoting: str | None) -> tuple[list[str], list[list[str]]]:
    """The header and the rows, read by training's own row reader (`pipeline.data.files.table_rows`); rows from
    sampled blocks are kept when they have the header's number of fields (a block may start inside a quoted CSV
    field)."""

    def split(part: str) -> list[tuple[int, list[str]]]:
        try:
            return list(data_files.table_rows(part, fmt, quoting))
        except csv.Error as error:
            what = "CSV" if fmt == "csv" else "quoted TSV"
            raise DataError(f"{path}: not readable as {what} ({error})") from None

    rows = split(text.head)
    if not rows or not any(field.strip() for field in rows[0][1]):
        raise DataError(f"{path}: empty, or a blank first line where the header row should be")
    quoted = fmt == "csv" or quoting == "quoted"
    if not text.whole and text.blocks and quoted:
        rows = rows[:-1]  # the head was cut at a line end, which may be inside a quoted field
    header, body = rows[0][1], rows[1:]
    if any(len(name.split()) >= 5 or len(name) > 60 for name in header):
        raise DataError(f"{path}: the first row looks like data, not a header naming the columns "
                        f"({shorten(','.join(header), 80)!r}); add a header row such as 'text,label'")  # fmt: skip
    for line, row in body:
        if len(row) != len(header):
            raise DataError(f"{path} line {line} has {len(row)} fields, the header {len(header)} (training stops "
                            f"there); fix the file")  # fmt: skip
    if not body:
        raise DataError(f"{path}: a header and no rows")
    rows = [row for _, row in body]
    for block in text.blocks:
        for _, row in split(block):
            if len(row) == len(header):
                rows.append(row)
            elif not quoted:
                raise DataError(f"{path}: a row of {len(row)} fields past its first {_size(len(text.head))}, the "
                                f"header has {len(header)} (training stops there); fix the file")  # fmt: skip
    return header, rows


def _column(name: str, values: list[str], label_case: str) -> _Column:
    stripped = [data_files.label_of(v, label_case) for v in values]
    numbers = []
    for v in stripped:
        if not v:
            continue
        try:
            number = float(v)
        except ValueError:
            numbers = None
            break
        if not math.isfinite(number):
            numbers = None
            break
        numbers.append(number)
    numeric = bool(numbers)
    rows = max(len(values), 1)
    return _Column(
        name=name,
        counts=collections.Counter(stripped),
        rows=len(values),
        mean_chars=sum(map(len, values)) / rows,
        mean_words=sum(len(v.split()) for v in values) / rows,
        numeric=numeric,
        integral=numeric and all(n.is_integer() for n in numbers),
        low=min(numbers) if numeric else 0.0,
        high=max(numbers) if numeric else 0.0,
    )


def _choose_columns(spec, header, columns, text_column, label_column, label_case) -> tuple[str, str, str]:
    by_name: dict[str, _Column] = {}
    for column in columns:
        by_name.setdefault(column.name, column)  # the first of duplicate names, as training reads
    listed = ", ".join(header)
    for flag, name in (("--text-column", text_column), ("--label-column", label_column)):
        if name is not None and name not in by_name:
            raise DataError(f"{spec} has no column {name!r} ({flag}); its columns are {listed}")
    if text_column and text_column == label_column:
        raise DataError(f"--text-column and --label-column are both {text_column!r}")

    if text_column:
        text, text_why = text_column, "--text-column"
    elif "text" in by_name and label_column != "text":
        text, text_why = "text", "default name"
    else:
        textual = sorted((c for c in by_name.values() if c.name != label_column and not c.numeric and
                          c.mean_words >= TEXT_WORDS), key=lambda c: -c.mean_chars)  # fmt: skip
        if not textual:
            raise DataError(f"{spec}: no column looks like text (at least {TEXT_WORDS:g} words per row) among "
                            f"{listed}; choose one with --text-column NAME")  # fmt: skip
        if len(textual) > 1 and textual[0].mean_chars < 2 * textual[1].mean_chars:
            found = " or ".join(f"{c.name!r} ({c.mean_words:.1f} words per row)" for c in textual[:3])
            raise DataError(f"{spec}: cannot tell the text column: {found}; choose with --text-column NAME")
        text = textual[0].name
        text_why = "only text-like column" if len(textual) == 1 else "longest text by far"
    if by_name[text].numeric:
        raise DataError(f"{spec}: text column {text!r} holds numbers, not text; choose another with --text-column")

    def check(name: str, why: str) -> None:
        if why in ("--label-column", "default name"):
            # A column named as the label is held to training's own rule, no stricter.
            hint = "" if why == "--label-column" else " (or choose another with --label-column NAME)"
            try:
                data_files.check_labels((value for value in by_name[name].counts if value), f"{spec}: label column "
                                        f"{name!r}", label_case)  # fmt: skip
            except DataError as error:
                raise DataError(f"{error}{hint}") from None
            return
        problem = by_name[name].not_labels()
        if problem:
            raise DataError(f"{spec}: label column {name!r} {problem} (guessing the label column asks for a few "
                            f"classes, each with many rows; name it with --label-column NAME to apply only "
                            f"training's rule)")  # fmt: skip

    if label_column:
        label, label_why = label_column, "--label-column"
    elif "label" in by_name and text != "label":
        label, label_why = "label", "default name"
    else:
        others = [c for c in by_name.values() if c.name != text]
        candidates = [c for c in others if c.not_labels() is None]
        if len(candidates) > 1:
            found = ", ".join(f"{c.name!r} ({c.distinct} values)" for c in candidates[:4])
            raise DataError(f"{spec}: cannot tell the label column: {found}; choose with --label-column NAME")
        if not candidates:
            why = "; ".join(f"{c.name!r}: {c.not_labels()}" for c in others[:4]) or "no other column"
            raise DataError(f"{spec}: no column looks like class labels ({why}); name the label column with "
                            f"--label-column NAME (a named column is held only to training's rule; guessing is "
                            f"stricter)")  # fmt: skip
        label = candidates[0].name
        label_why = "only class-like column"
    check(label, label_why)
    described = f"columns {listed}; text {text!r} ({text_why}), label {label!r} ({label_why})"
    if not (text_column and label_column):
        described += "; --text-column / --label-column to choose others"
    return text, label, described


# --- plain text ----------------------------------------------------------------------------------------------


def _plain_text(source: _Source, raws: list[_Raw], texts: list[_Text]) -> SplitFindings:
    raw, text = raws[0], texts[0]
    sample = text.head + "".join(text.blocks)
    chars = len(sample) if text.whole else round(len(sample) * raw.size / max(raw.read, 1))
    if not sample.strip():
        raise DataError(f"{source.spec}: empty")
    lines = sample.count("\n") + (not sample.endswith("\n"))
    lines = lines if text.whole else round(lines * raw.size / max(raw.read, 1))
    approx = "" if text.whole else "~"
    detail = f"{len(set(sample)):,} distinct{' in what was read' if approx else ''}, {approx}{lines:,} lines"
    if sum(line.startswith("__label__") for line in sample.split("\n", 50)[:50]) > 25:
        source.notes.append("its lines start with __label__ (fastText's labelled format), which rnnpipe does not "
                            "read as labels: convert it to TSV (label<TAB>text) for sentiment")  # fmt: skip
    return SplitFindings(spec=source.spec, examples=chars, estimated=not text.whole, size=raw.size, files=1,
                         read_bytes=raw.read, detail=detail)  # fmt: skip


# --- checks over the splits ----------------------------------------------------------------------------------


def _check_labels(splits: Mapping[str, SplitFindings], notes: list[str], label_case: str) -> None:
    train = splits["train"]
    data_files.check_labels(train.labels, train.spec, label_case)
    for split in splits.values():
        unknown = sorted(set(split.labels) - set(train.labels))
        if unknown:
            raise DataError(f"{split.spec}: labels {unknown[:5]} do not occur in the training data "
                            f"{sorted(train.labels)[:10]}")  # fmt: skip
    if not train.estimated:
        rare = sorted(label for label, count in train.labels.items() if count < 5)
        if rare:
            notes.append(f"{len(rare)} classes have fewer than 5 examples ({', '.join(map(_quoted, rare[:5]))}): "
                         f"too few to learn or to score")  # fmt: skip


def _check_size(splits: Mapping[str, SplitFindings], fmt: str, notes: list[str]) -> None:
    """Enough examples that the held-out splits pipeline.data.splits makes are not empty."""
    n = splits["train"].examples
    test = 0 if "test" in splits else round(n * TEST_FRACTION)
    validation = 0 if "validation" in splits else round((n - test) * DataConfig.validation_fraction)
    if ("test" not in splits and test == 0) or ("validation" not in splits and validation == 0) or n - test - \
            validation < 2:  # fmt: skip
        unit = "characters" if fmt == "text" else "examples"
        raise DataError(f"{splits['train'].spec}: {n:,} {unit}, too few to hold out validation and test data")
    if fmt == "text" and n < 10_000:
        notes.append(f"{n:,} characters is very little text for a character model")
