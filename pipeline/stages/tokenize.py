"""Stage 1: build the vocabulary (and the class names, for a task with classes) from the training split."""

from __future__ import annotations

import dataclasses
import logging

from pipeline import tasks
from pipeline.config import Config
from pipeline.data.text import Vocabulary
from pipeline.run import artifacts, freshness, preflight, rundir

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TokenizeResult:
    vocabulary: Vocabulary
    labels: tuple[str, ...]
    path: str
    skipped: bool = False
    note: str = ""  # what reading the data did besides, e.g. TFDS preparing it

    def summary(self) -> str:
        classes = f", {len(self.labels)} classes" if self.labels else ""
        ngrams = f", {len(self.vocabulary.ngrams):,} sub-word n-grams" if self.vocabulary.ngrams else ""
        done = "up to date, kept" if self.skipped else "built"
        note = f"; {self.note}" if self.note else ""
        return (f"tokenize: {done}: {self.vocabulary.size:,} {self.vocabulary.level}s{ngrams}{classes} -> "
                f"{self.path}{note}")  # fmt: skip


def run(config: Config, run_dir, overwrite: bool = False) -> TokenizeResult:
    """Writes vocabulary.json (and labels.json) into the run directory. An up-to-date vocabulary is kept; one built
    from other data or settings is rebuilt only with `overwrite` (see pipeline.run.freshness)."""
    preflight.check(config, "tokenize")
    with rundir.opened(run_dir, config) as rd:
        decision = freshness.decide(rd, "tokenize", config, rd.vocabulary.exists(), overwrite)
        if not decision.run:
            return TokenizeResult(Vocabulary.load(rd.vocabulary), rd.read_labels(), str(rd.vocabulary), skipped=True)
        if decision.reason:
            logger.warning(decision.reason)
        task = tasks.get(config.task)
        splits = task.load_splits(config)
        preflight.check_splits(config, splits)
        vocab = task.build_vocabulary(config, splits)
        labels = task.labels(splits)
        if labels:
            artifacts.write_json(rd.labels, list(labels))
        else:
            rd.labels.unlink(missing_ok=True)
        vocab.save(rd.vocabulary)
        freshness.record(rd, "tokenize", config)
        return TokenizeResult(vocab, labels, str(rd.vocabulary), note=splits.note)
