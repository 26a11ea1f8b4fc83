"""Errors that are the user's to fix.

The CLI prints a `PipelineError` as one line on stderr and exits non-zero; anything else is a bug and keeps its
traceback (shown in full with `--debug`).
"""

# An error is one line a person reads: values quoted in it (a path, a config string, a request) are cut to this.
MAX_QUOTED_CHARS = 200


class PipelineError(Exception):
    """A problem with the user's input (config, data, run directory, export), explained in one line."""

    exit_code = 1


class ConfigError(PipelineError):
    """The configuration file or a `--set` override is invalid; the message names the key's path."""

    exit_code = 2


class DataError(PipelineError):
    """The data cannot be read or does not fit the task."""


class RunDirError(PipelineError):
    """The run directory is missing what a stage needs, is in use, or would be overwritten."""


def shorten(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """`text` on one line, cut to `limit` characters with a note of how much was left out."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    return f"{text[: limit - 30]}... ({len(text) - limit + 30:,} more characters)"


def describe(error: BaseException) -> str:
    """An exception as one line for the user: a PipelineError's own message, the file system's reason and path for
    an OSError, otherwise its type and the first line of its message."""
    if isinstance(error, PipelineError):
        return shorten(str(error), 10**6)
    if isinstance(error, OSError) and error.strerror:
        # The file system refused (permissions, a full disk, a vanished file): what, and where.
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}"
