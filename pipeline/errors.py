"""Errors that are the user's to fix.

The CLI prints a `PipelineError` as one line on stderr and exits non-zero; anything else is a bug and keeps its
traceback (shown in full with `--debug`).
"""


class PipelineError(Exception):
    """A problem with the user's input (config, data, run directory, export), explained in one line."""

    exit_code = 1


class ConfigError(PipelineError):
    """The configuration file or a `--set` override is invalid; the message names the key's path."""

    exit_code = 2


class DataError(PipelineError):
    """The data cannot be read or does not fit the task."""


class RunDirError(PipelineError):
    """The run directory is missing what a stage needs, or would be overwritten."""
