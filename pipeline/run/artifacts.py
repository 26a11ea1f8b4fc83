"""Atomic writes for everything a run leaves behind, and the file lock that keeps two writers apart.

A reader (a later stage, TF Serving polling an export folder, a user after a crash) sees either the old file or the
complete new one, never a half-written one: each file is written to a temporary name in the same folder, flushed to
disk and renamed over the target (`os.replace` is atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are mode 0600, which the rename would keep; a run directory's files are
    # created like any other file, with the user's umask, so a serving account or a colleague can read them.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_history(path: str | os.PathLike) -> list[dict]:
    """A history.csv (Keras' CSVLogger) as one row per epoch, in epoch order; none if it does not exist. An epoch
    repeated after a resume (the backup predates its end) keeps its last row."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = {int(row["epoch"]): row for row in csv.DictReader(f) if row.get("epoch", "").isdigit()}
    return [rows[epoch] for epoch in sorted(rows)]


@contextlib.contextmanager
def staged_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` for a writer that insists on its own file name handling (Keras'
    `model.save`, a SavedModel writer); on success it is renamed to `path`, which must not exist yet unless it is
    a file (files are replaced atomically; directories are never replaced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    tmp = tmp_dir / (path.name + suffix if suffix else path.name)
    try:
        yield tmp
        if path.is_dir():
            raise FileExistsError(f"{path} already exists")
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


@contextlib.contextmanager
def flock(path: str | os.PathLike, *, wait: bool = False) -> Iterator[Any]:
    """An exclusive `flock` on `path` (created if missing) for the block, yielding the open file. The kernel releases
    it when the holder exits, however it exits, so a lock left by a killed process is simply taken over. Without
    `wait`, BlockingIOError if another process holds it; OSError if the file cannot be opened."""
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise BlockingIOError(error.errno, f"{path} is locked") from None
            raise
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def locked(path: str | os.PathLike) -> bool:
    """Whether a process holds `flock(path)` now. The file is opened, not created: a holder that ends may remove
    its file, and creating it again here would leave one that no process holds or removes."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: two processes testing at once do not collide
        return False
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(handle)
