"""Which process of a multi-worker training this is, from the TF_CONFIG environment variable alone (TensorFlow-free:
the run directory decides who holds its lock before any strategy exists). The worker of index 0, or the "chief",
writes the run directory; the others write to a scratch folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def is_chief_process() -> bool:
    """Whether this process is the one that writes the run directory, from TF_CONFIG alone (before any strategy
    exists): no TF_CONFIG, the "chief", or worker 0 of a cluster without a chief."""
    if "TF_CONFIG" not in os.environ:
        return True
    task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
    kind = task.get("type")
    return kind in (None, "chief") or (kind == "worker" and task.get("index", 0) == 0 and not has_chief())


def has_chief() -> bool:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return "chief" in cluster


def worker_scratch(path: Path) -> Path:
    """Where a non-chief worker writes what the chief writes to `path`: every worker must run the same saves (they
    can involve collective ops), only the chief's are kept."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return path.parent / f".worker{task.get('index', 0)}" / path.name
