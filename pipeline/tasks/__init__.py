"""The tasks the pipeline knows, by name. Everything that differs between tasks lives in its module here; the
stages (tokenize, train, evaluate, export) call the task and never test `config.task` themselves.

    sentiment   text classification (binary or multi-class), pipeline/tasks/sentiment.py
    next_char   character-level language model and text generation, pipeline/tasks/next_char.py

`pipeline.tasks.base.Task` lists what a task provides.
"""

from __future__ import annotations

import importlib

from pipeline.tasks.base import Task

NAMES = ("sentiment", "next_char")


def get(name: str) -> Task:
    """The task called `name` (one of NAMES; the config has checked it)."""
    if name not in NAMES:
        raise KeyError(f"unknown task {name!r}; tasks are {', '.join(NAMES)}")
    return importlib.import_module(f"pipeline.tasks.{name}").TASK


__all__ = ["NAMES", "Task", "get"]
