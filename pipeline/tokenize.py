"""Stage 1: build the vocabulary (and, for sentiment, the class names) from the training split."""

from __future__ import annotations

import logging

from pipeline import artifacts
from pipeline.config import Config
from pipeline.data import load_splits
from pipeline.rundir import as_run_dir
from pipeline.text import Vocabulary, build_char_vocabulary, build_word_vocabulary

logger = logging.getLogger(__name__)


def run(config: Config, run_dir, overwrite: bool = False) -> Vocabulary:
    """Writes vocabulary.json (and labels.json for sentiment) into the run directory; keeps existing ones unless
    `overwrite`."""
    rd = as_run_dir(run_dir, config)
    if rd.vocabulary.exists() and not overwrite:
        logger.info("tokenize: %s exists, kept (use --overwrite to rebuild it)", rd.vocabulary)
        return Vocabulary.load(rd.vocabulary)
    splits = load_splits(config)
    if config.task == "sentiment":
        texts = splits.train.map(lambda x: x["text"]).batch(1024)
        vocab = build_word_vocabulary(
            texts, config.tokenize.max_tokens, config.tokenize.standardize, config.tokenize.sequence_length
        )
        artifacts.write_json(rd.labels, list(splits.labels))
    else:
        vocab = build_char_vocabulary(splits.train.batch(16), config.tokenize.min_char_count)
    vocab.save(rd.vocabulary)
    logger.info("tokenize: %d tokens -> %s", vocab.size, rd.vocabulary)
    return vocab


def summary(vocab: Vocabulary) -> str:
    shown = ", ".join(repr(t) for t in vocab.tokens[:12])
    return f"vocabulary: {vocab.size} {vocab.level} tokens ({shown}, ...)"
