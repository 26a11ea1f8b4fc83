"""The next_char task: a character-level language model, and text generation from it.

Data: one plain text per split (local files, or a TFDS dataset's text feature with an explicit validation split).
Vocabulary: characters (pipeline.data.text). Model: `pipeline.training.model.build_language_model`, trained on
windows of `train.sequence_length` characters.

Metrics: the split's text is cut into `STREAMS` contiguous streams that are read window by window with the
recurrent state carried across windows (a stateful copy of the model), so every character but the first of each
stream is predicted once, from everything before it in its stream. `loss` is the mean cross-entropy in nats per
character, `bits_per_char` = loss / ln 2, `perplexity` = exp(loss), `accuracy` the top-1 next-character accuracy.

Serving: in-graph generation (`pipeline.tasks.next_char.serving.NextCharServing`, which lists its signatures).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from pipeline.data import inputs
from pipeline.data.splits import Splits, text_file, text_file_splits, tfds_splits
from pipeline.data.text import Vocabulary, build_char_vocabulary
from pipeline.errors import DataError
from pipeline.tasks.base import Serving, Task
from pipeline.tasks.next_char.serving import NextCharServing
from pipeline.training.model import build_language_model

STREAMS = 16


class NextCharTask(Task):
    name = "next_char"

    def load_splits(self, config) -> Splits:
        if config.data.source == "tfds":
            return tfds_splits(config.data, labelled=False)
        return text_file_splits(config.data)

    def build_vocabulary(self, config, splits) -> Vocabulary:
        return build_char_vocabulary(splits.train.batch(16), config.tokenize.min_char_count)

    def training_dataset(self, config, splits, vocab, labels, seed):
        t = config.train
        return inputs.next_char_dataset(splits.train, vocab, t.batch_size, t.sequence_length,
                                        shuffle_buffer=t.shuffle_buffer, seed=seed, drop_remainder=True,
                                        random_offset=t.random_offset)  # fmt: skip

    def validation_dataset(self, config, splits, vocab, labels):
        t = config.train
        return inputs.next_char_dataset(splits.validation, vocab, t.batch_size, t.sequence_length)

    def build_model(self, config, vocab, labels, seed=0, jit_compile=True, vectors=None) -> keras.Model:
        return build_language_model(config, vocab.size, seed=seed, jit_compile=jit_compile)

    def read_file(self, config, spec, labels):
        return text_file(config.data, "--data", spec)

    def evaluate(self, model, config, split, vocab, labels, run_dir, into=None, progress=None) -> dict:
        ids = np.fromiter(inputs.char_ids(split, vocab).as_numpy_iterator(), dtype=np.int32)
        streams = max(1, min(STREAMS, (ids.size - 1) // 2))
        length = ids.size // streams
        if length < 2:
            raise DataError(f"evaluate: the text to score has {ids.size} character(s); too short to score")
        ids = ids[: streams * length].reshape(streams, length)
        scorer = build_language_model(config.model, vocab.size, seed=config.seed, stateful_batch=streams)
        scorer.set_weights(model.get_weights())
        window = config.train.sequence_length
        total_loss, correct, count = 0.0, 0, 0
        for start in range(0, length - 1, window):
            x = ids[:, start : min(start + window, length - 1)]
            y = ids[:, start + 1 : start + 1 + x.shape[1]]
            logits = scorer(x, training=False)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            total_loss += float(tf.reduce_sum(tf.cast(losses, tf.float64)))
            correct += int(tf.reduce_sum(tf.cast(tf.argmax(logits, -1, output_type=tf.int32) == y, tf.int32)))
            count += y.size
            if progress:
                progress(start + x.shape[1], length - 1)
        loss = total_loss / count
        return {
            "examples": count,
            "loss": loss,
            "bits_per_char": loss / math.log(2),
            "perplexity": math.exp(loss),
            "accuracy": correct / count,
            "scoring": f"{streams} contiguous streams, windows of {window} characters, state carried across windows",
        }

    def summary(self, result) -> str:
        return (f"{result['split']}: loss {result['loss']:.4f} nats/char, {result['bits_per_char']:.3f} "
                f"bits/char, perplexity {result['perplexity']:.2f}, accuracy {result['accuracy']:.3f} "
                f"({result['examples']:,} characters)")  # fmt: skip

    def litert_signatures(self, model, vocab, labels):
        from pipeline.tasks.next_char import litert

        return litert.NextCharSignatures(model, vocab, labels)

    def serving(self, model, config, vocab, labels) -> Serving:
        module = NextCharServing(model, vocab, config.model.layers, max_length=config.export.max_length)
        return Serving(module, module.signatures(), module.warmup_requests())


TASK = NextCharTask()
