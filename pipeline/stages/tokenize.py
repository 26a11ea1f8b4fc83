"""Stage 1: build the vocabulary (and the class names, for a task with classes) from the training split."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil

import numpy as np

from pipeline import tasks
from pipeline.config import Config
from pipeline.data.text import VectorsReport, Vocabulary
from pipeline.data.vectors import Progress
from pipeline.run import artifacts, freshness, preflight, rundir

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TokenizeResult:
    vocabulary: Vocabulary
    labels: tuple[str, ...]
    path: str
    skipped: bool = False
    note: str = ""  # what reading the data did besides, e.g. TFDS preparing it
    vectors: str = ""  # what the pretrained vectors covered (VectorsReport.summary)
    cut: str = ""  # what tokenize.sequence_length cuts of the training texts (the task's cut_texts)

    def summary(self) -> str:
        classes = f", {len(self.labels)} classes" if self.labels else ""
        ngrams = f", {len(self.vocabulary.ngrams):,} sub-word n-grams" if self.vocabulary.ngrams else ""
        vectors = f"; {self.vectors}" if self.vectors else ""
        done = "up to date, kept" if self.skipped else "built"
        note = "".join(f"; {text}" for text in (self.cut, self.note) if text)
        words = self.vocabulary.size - self.vocabulary.vector_words
        return (f"tokenize: {done}: {words:,} {self.vocabulary.level}s{ngrams}{classes} -> {self.path}{vectors}"
                f"{note}")  # fmt: skip


def run(config: Config, run_dir, overwrite: bool = False, progress: Progress | None = None) -> TokenizeResult:
    """Writes vocabulary.json (and labels.json; with pretrained vectors, vectors.npy and vectors.json) into the
    run directory. An up-to-date vocabulary is kept; one built from other data or settings is rebuilt only with
    `overwrite` (see pipeline.run.freshness). `progress(bytes, size)` follows the read of a vectors file."""
    preflight.check(config, "tokenize")
    with rundir.opened(run_dir, config) as rd:
        decision = freshness.decide(rd, "tokenize", config, rd.vocabulary.exists(), overwrite)
        if not decision.run:
            vectors = VectorsReport.load(rd.vectors_report).summary() if rd.vectors_report.exists() else ""
            return TokenizeResult(Vocabulary.load(rd.vocabulary), rd.read_labels(), str(rd.vocabulary), skipped=True,
                                  vectors=vectors)  # fmt: skip
        if decision.reason:
            logger.warning(decision.reason)
        task = tasks.get(config.task)
        splits = task.load_splits(config)
        preflight.check_splits(config, splits)
        vocab = task.build_vocabulary(config, splits)
        cut = task.cut_texts(config, splits)
        report = None
        if config.tokenize.pretrained_vectors:
            vocab, table, report = task.pretrained_vectors(config, splits, vocab, progress)
        labels = task.labels(splits)
        if labels:
            artifacts.write_json(rd.labels, list(labels))
        else:
            rd.labels.unlink(missing_ok=True)
        if report:
            with artifacts.staged_path(rd.vectors) as tmp:
                np.save(tmp, table)
            artifacts.write_json(rd.vectors_report, dataclasses.asdict(report))
        else:
            rd.vectors.unlink(missing_ok=True)
            rd.vectors_report.unlink(missing_ok=True)
        vocab.save(rd.vocabulary)
        freshness.record(rd, "tokenize", config)
        return TokenizeResult(vocab, labels, str(rd.vocabulary), note=splits.note,
                              vectors=report.summary() if report else "", cut=cut)  # fmt: skip


def reuse(config: Config, source, run_dir) -> None:
    """Give `run_dir` the results of the tokenize in `source` (run for the same tokenize inputs: data, tokenize
    keys, seed), as though it had run there: a search shares one tokenize between the trials whose vocabulary keys
    are the same (pipeline.stages.tune). Hard links where the file system allows them."""
    with rundir.opened(source, config) as src:
        freshness.require_up_to_date(src, "tokenize", config)
        with rundir.opened(run_dir, config) as rd:
            if freshness.recorded(rd, "tokenize") and not freshness.decide(rd, "tokenize", config, True, False).run:
                return
            for name in ("vocabulary", "labels", "vectors", "vectors_report"):
                origin, target = getattr(src, name), getattr(rd, name)
                target.unlink(missing_ok=True)
                if origin.exists():
                    _link_or_copy(origin, target)
            freshness.record(rd, "tokenize", config)


def _link_or_copy(origin, target) -> None:
    try:
        os.link(origin, target)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(origin, target)
