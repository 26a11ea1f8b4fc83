"""The tasks the pipeline knows, by name: each a package here holding everything that differs between tasks (data,
vocabulary, model, metrics, serving module, LiteRT signatures), beside its recipe in `pipeline.recipes` (defaults and
config checks, TensorFlow-free). The stages call the task and never test `config.task` themselves.

    sentiment   text classification (binary or multi-class), pipeline/tasks/sentiment/
    next_char   character-level language model and text generation, pipeline/tasks/next_char/

`pipeline.tasks.base.Task` lists what a task provides.
"""

from __future__ import annotations

import importlib

from pipeline.recipes import TASKS
from pipeline.tasks.base import Task


def get(name: str) -> Task:
    """The task called `name` (one of pipeline.recipes.TASKS; the config has checked it)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}")
    return importlib.import_module(f"pipeline.tasks.{name}.task").TASK


__all__ = ["Task", "get"]
