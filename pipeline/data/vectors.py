"""Pretrained word vectors (GloVe, word2vec, fastText), read for one vocabulary.

Formats, told from the content (never from the file name):
  - GloVe text: `word v1 ... vD` per line, no header; the first line gives D.
  - word2vec / fastText text (`.vec`): a first line `count D`, then lines as GloVe's.
  - word2vec binary: a first line `count D`, then per word its UTF-8 bytes, a space, D little-endian float32s and
    (usually) a newline.
Each may be gzip-compressed (told from the magic bytes).

The file is streamed once and only what the vocabulary needs is kept: the vectors of its words, matched by exact
form first, then lower-cased (a file word whose lower-case form is the vocabulary word's, the first in the file),
and the vectors of at most `extra` other words, the file's first (vectors files list their words most frequent
first), which the caller may add to the vocabulary so that words never seen in training keep their vector. Memory
grows with the vocabulary and `extra`, not with the file: a line's numbers are parsed only when its word is kept.
Every line's number of values is checked against D; what cannot be read stops the read with a `DataError` naming
the file and the line.

This module imports no TensorFlow: the caller passes `normalize`, the tokenizer's rule for what a file word
becomes.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import DataError, shorten

FORMATS = ("glove", "word2vec_text", "word2vec_binary")
# Real vectors have 25 to 1,000 dimensions; the bound keeps a mistaken header from sizing a huge array.
MAX_DIM = 4096
# A word of a vectors file is a token: one longer than this is a file that is not vectors (binary garbage).
MAX_WORD_BYTES = 1000
# The format is told from the first bytes; a line of 4,096 numbers fits well within them.
_SNIFF_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
# What the text of numbers is made of (nan and inf are refused later, but must not make text look binary).
_NUMBER_BYTES = frozenset(b"0123456789.-+eEnaifNAIF \t\r\n")
_HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s*")
# Progress is reported every this many words: often enough for a bar, rarely enough to cost nothing.
_PROGRESS_EVERY = 50_000
_NORMALIZE_BATCH = 4096

Progress = Callable[[int, int], None]  # (bytes read, file size)


@dataclasses.dataclass(frozen=True)
class Found:
    """What a vectors file holds for a vocabulary (`read`)."""

    format: str
    dim: int
    vectors: np.ndarray  # float32 [len(words), dim]: the vocabulary's words in order, zeros where none was found
    exact: np.ndarray  # bool [len(words)]: found by the word's exact form
    lowered: np.ndarray  # bool [len(words)]: found lower-cased (and not exactly)
    extra_words: tuple[str, ...]  # other words of the file, most frequent first, as `normalize` made them
    extra_vectors: np.ndarray  # float32 [len(extra_words), dim]
    words_read: int  # the file's words (lines, or records of a binary file)
    skipped: int  # words holding whitespace (GloVe 840B has a few): no tokenizer makes them

    @property
    def matched(self) -> np.ndarray:
        return self.exact | self.lowered


def sniff(path: str | os.PathLike) -> tuple[str, int, bool]:
    """(format, dimension, gzip-compressed) of a vectors file, from its first bytes; a DataError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{_name(path)}: no such vectors file" if not path.exists() else
                        f"{_name(path)}: a folder, not a vectors file")  # fmt: skip
    with _Opened(path) as (stream, compressed):
        try:
            head = stream.read(_SNIFF_BYTES)
        except (OSError, EOFError) as e:
            raise DataError(f"{_name(path)}: cannot be read as gzip ({e})") from None
    if not head.strip():
        raise DataError(f"{_name(path)}: empty; a vectors file has a line per word")
    end = head.find(b"\n")
    if end < 0 and len(head) == _SNIFF_BYTES:
        raise DataError(f"{_name(path)}: line 1: no line break in the first megabyte; not a vectors file")
    first = head[: end if end >= 0 else len(head)]
    header = _HEADER.fullmatch(first)
    if header:
        count, dim = int(header.group(1)), int(header.group(2))
        _check_dim(path, dim, 1)
        rest = head[end + 1 :]
        space = rest.find(b" ")
        payload = rest[space + 1 : space + 1 + 4 * dim] if space >= 0 else b""
        if count and not payload:
            raise DataError(f"{_name(path)}: line 2: no vector after the header 'count dim'")
        return ("word2vec_text" if set(payload) <= _NUMBER_BYTES else "word2vec_binary"), dim, compressed
    try:
        fields = first.decode("utf-8").split()
    except UnicodeDecodeError:
        raise DataError(f"{_name(path)}: line 1 is not UTF-8 text; not a vectors file (GloVe, word2vec or "
                        f"fastText)") from None  # fmt: skip
    if len(fields) < 2 or not _numbers(fields[1:]):
        raise DataError(f"{_name(path)}: line 1 is neither a 'count dim' header nor a word and its numbers; not a "
                        f"vectors file")  # fmt: skip
    _check_dim(path, len(fields) - 1, 1)
    return "glove", len(fields) - 1, compressed


def read(
    path: str | os.PathLike,
    words: Sequence[str],
    *,
    extra: int = 0,
    normalize: Callable[[list[str]], list[str | None]] | None = None,
    progress: Progress | None = None,
) -> Found:
    """The vectors of `words` (module docstring: exact form, then lower-cased) and of at most `extra` other words
    of the file, each as `normalize` makes it (a list of file words -> the token each becomes, or None when it
    becomes none or several; default: unchanged), skipping those that become a word of `words` or one already
    taken. `progress(bytes read, size)` is called now and then."""
    path = Path(path)
    fmt, dim, _ = sniff(path)
    index = {word: i for i, word in enumerate(words)}
    by_lower: dict[str, list[int]] = {}
    for i, word in enumerate(words):
        by_lower.setdefault(word.lower(), []).append(i)
    vectors = np.zeros((len(words), dim), np.float32)
    exact = np.zeros(len(words), bool)
    lowered = np.zeros(len(words), bool)
    extras = _Extras(extra, dim, set(words), normalize or (lambda batch: list(batch)))
    words_read = skipped = 0
    size = path.stat().st_size
    records = _BinaryRecords(path, dim) if fmt == "word2vec_binary" else _TextRecords(path, dim, fmt)
    for _, word, parse in records:
        words_read += 1
        if word is None:
            skipped += 1
            continue
        vector = None
        i = index.get(word)
        if i is not None and not exact[i]:
            vectors[i] = vector = parse()
            exact[i], lowered[i] = True, False
        for j in by_lower.get(word.lower(), ()):
            if not exact[j] and not lowered[j]:
                vectors[j] = vector = parse() if vector is None else vector
                lowered[j] = True
        if extras.wants(word):
            extras.add(word, parse() if vector is None else vector)
        if progress and words_read % _PROGRESS_EVERY == 0:
            progress(records.position(), size)
    if words_read == 0:
        raise DataError(f"{_name(path)}: a header and no vectors")
    extra_words, extra_vectors = extras.result()
    if progress:
        progress(size, size)
    return Found(fmt, dim, vectors, exact, lowered, extra_words, extra_vectors, words_read, skipped)


class _Extras:
    """The first `limit` file words (as normalized) that are not vocabulary words, with their vectors. Words are
    normalized in batches (the tokenizer is a TensorFlow op); an exact form replaces an earlier word that only
    normalizes to it ("Paris" -> "paris", then "paris")."""

    def __init__(self, limit: int, dim: int, taken: set[str], normalize):
        self.limit, self.taken, self.normalize = limit, taken, normalize
        self.vectors = np.zeros((limit, dim), np.float32)
        self.slot: dict[str, tuple[int, bool]] = {}  # token -> (row, exact)
        self.pending: list[tuple[str, np.ndarray]] = []

    def wants(self, word: str) -> bool:
        return len(self.slot) < self.limit and word not in self.taken

    def add(self, word: str, vector: np.ndarray) -> None:
        self.pending.append((word, vector))
        if len(self.pending) >= _NORMALIZE_BATCH:
            self._flush()

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        tokens = self.normalize([word for word, _ in pending])
        for (word, vector), token in zip(pending, tokens):
            if token is None or token in self.taken:
                continue
            row, was_exact = self.slot.get(token, (len(self.slot), False))
            if row >= self.limit or (token in self.slot and (was_exact or token != word)):
                continue
            self.slot[token] = (row, token == word)
            self.vectors[row] = vector

    def result(self) -> tuple[tuple[str, ...], np.ndarray]:
        self._flush()
        ordered = sorted(self.slot.items(), key=lambda item: item[1][0])
        return tuple(token for token, _ in ordered), self.vectors[: len(ordered)]


class _Opened:
    """The file's bytes, decompressed when it is gzip: `with _Opened(path) as (stream, compressed)`; the raw file's
    position (progress) is `tell()` of the object's `raw`."""

    def __init__(self, path: Path):
        self.raw = open(path, "rb")
        self.compressed = self.raw.read(2) == _GZIP_MAGIC
        self.raw.seek(0)
        self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb") if self.compressed else self.raw

    def __enter__(self):
        return self.stream, self.compressed

    def __exit__(self, *exc):
        self.stream.close()
        self.raw.close()


class _TextRecords:
    """(line number, word or None, vector loader) per line of a text vectors file. The number of values is checked
    on every line (a count of separators, without parsing); the loader parses them when the word is kept."""

    def __init__(self, path: Path, dim: int, fmt: str):
        self.path, self.dim, self.fmt = path, dim, fmt
        self.opened = _Opened(path)

    def position(self) -> int:
        return self.opened.raw.tell()

    def __iter__(self) -> Iterator:
        path, dim = self.path, self.dim
        with self.opened as (stream, _):
            try:
                lines = iter(stream)
                if self.fmt == "word2vec_text":
                    next(lines)
                number = 1 if self.fmt == "word2vec_text" else 0
                for line in lines:
                    number += 1
                    word, _, rest = line.partition(b" ")
                    rest = rest.strip()
                    if not rest and not word.strip():
                        continue  # a blank line, e.g. at the end
                    values = rest.count(b" ") + 1 if rest else 0
                    if values != dim:
                        word, rest = self._irregular(line, number)
                        if word is None:
                            yield number, None, None
                            continue
                    try:
                        text = word.decode("utf-8")
                    except UnicodeDecodeError:
                        raise DataError(f"{_name(path)}: line {number}: the word is not UTF-8; not a vectors file "
                                        f"(or a binary one that is damaged)") from None  # fmt: skip
                    yield number, text, _parser(rest, path, number, dim)
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise DataError(f"{_name(path)}: cannot be read to its end ({e})") from None

    def _irregular(self, line: bytes, number: int) -> tuple[bytes | None, bytes]:
        """A line whose values are not D single-space-separated numbers: other whitespace (accepted), a word
        holding spaces (skipped: no tokenizer makes one), or a wrong dimension (an error)."""
        fields = line.split()
        if len(fields) == self.dim + 1:
            return fields[0], b" ".join(fields[1:])
        if len(fields) > self.dim + 1 and not _numbers(fields[1 : len(fields) - self.dim]):
            return None, b""
        raise DataError(f"{_name(self.path)}: line {number}: {len(fields) - 1} values, expected {self.dim} (as on "
                        f"{'the header' if self.fmt == 'word2vec_text' else 'line 1'})")  # fmt: skip


class _BinaryRecords:
    """(record number, word, vector loader) per record of a word2vec binary file, read in large blocks."""

    _BLOCK = 1 << 24

    def __init__(self, path: Path, dim: int):
        self.path, self.dim = path, dim
        self.opened = _Opened(path)

    def position(self) -> int:
        return self.opened.raw.tell()

    def __iter__(self) -> Iterator:
        path, width = self.path, 4 * self.dim
        with self.opened as (stream, _):
            try:
                count = int(_HEADER.fullmatch(stream.readline().rstrip(b"\n")).group(1))
                buffer, pos, number = b"", 0, 0
                while number < count:
                    if len(buffer) - pos < MAX_WORD_BYTES + width + 2:
                        buffer = buffer[pos:] + stream.read(self._BLOCK)
                        pos = 0
                    while pos < len(buffer) and buffer[pos] in b"\n\r":
                        pos += 1
                    space = buffer.find(b" ", pos, pos + MAX_WORD_BYTES + 1)
                    number += 1
                    if space < 0 or len(buffer) < space + 1 + width:
                        what = "ends early" if len(buffer) - pos < MAX_WORD_BYTES else "has no word ending in a space"
                        raise DataError(f"{_name(path)}: record {number:,} of {count:,} {what}: a truncated or "
                                        f"damaged word2vec binary file")  # fmt: skip
                    word, vector = buffer[pos:space], buffer[space + 1 : space + 1 + width]
                    pos = space + 1 + width
                    try:
                        text = word.decode("utf-8")
                    except UnicodeDecodeError:
                        text = word.decode("utf-8", errors="replace")  # Google's file has a few; never a token
                    yield number, text, _binary_parser(vector, path, number)
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise DataError(f"{_name(path)}: cannot be read to its end ({e})") from None


def _parser(rest: bytes, path: Path, number: int, dim: int) -> Callable[[], np.ndarray]:
    def parse() -> np.ndarray:
        try:
            vector = np.array(rest.split(), dtype=np.float32)
        except ValueError:
            raise DataError(f"{_name(path)}: line {number}: a value is not a number") from None
        if not np.isfinite(vector).all():
            raise DataError(f"{_name(path)}: line {number}: a value is not finite (nan or inf)")
        return vector

    return parse


def _binary_parser(vector: bytes, path: Path, number: int) -> Callable[[], np.ndarray]:
    def parse() -> np.ndarray:
        values = np.frombuffer(vector, dtype="<f4").astype(np.float32)
        if not np.isfinite(values).all():
            raise DataError(f"{_name(path)}: record {number:,}: a value is not finite; a damaged binary file")
        return values

    return parse


def _numbers(fields) -> bool:
    try:
        [float(field) for field in fields]
    except ValueError:
        return False
    return True


def _check_dim(path: Path, dim: int, line: int) -> None:
    if not 1 <= dim <= MAX_DIM:
        raise DataError(f"{_name(path)}: line {line}: dimension {dim}; vectors have 1 to {MAX_DIM} dimensions")


def _name(path: Path) -> str:
    return shorten(str(path), 120)
