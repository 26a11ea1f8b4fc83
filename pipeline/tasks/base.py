"""What a task provides to the stages: its data, vocabulary, model, metrics, serving module and LiteRT signatures.
A new task is a package in pipeline/tasks/ whose `task` module holds a `TASK` instance of a `Task` subclass, and a
recipe of the same name in `pipeline.recipes` (its defaults and config checks)."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import keras
    import numpy as np
    import tensorflow as tf

    from pipeline.config import Config, ModelConfig
    from pipeline.data.splits import Splits
    from pipeline.data.text import Vocabulary
    from pipeline.run.rundir import RunDir


@dataclasses.dataclass(frozen=True)
class Serving:
    """What the export writes: a tf.Module, its signatures by name, and TF Serving warm-up requests as
    (signature name, {input name: value})."""

    module: Any
    signatures: Mapping[str, Any]
    warmup: tuple[tuple[str, Mapping[str, Any]], ...] = ()


def in_passes(rows, size, run, width: int):
    """[rows, width] float32: `run(start, stop)` for rows start..stop of a request, `size` rows a pass, one pass
    after the other (a graph loop, `parallel_iterations=1`), so that a serving signature's memory is one pass's
    whatever a client sends. `rows` and `size` may be tensors; zero rows give [0, width]."""
    import tensorflow as tf

    passes = (rows + size - 1) // size

    def one_pass(i, done):
        return i + 1, done.write(i, run(i * size, (i + 1) * size))

    done = tf.TensorArray(tf.float32, size=passes, infer_shape=False, element_shape=[None, width])
    _, done = tf.while_loop(lambda i, _: i < passes, one_pass, (0, done), parallel_iterations=1)
    return tf.reshape(done.concat(), [-1, width])


class Task(abc.ABC):
    name: str  # as in pipeline.recipes

    @abc.abstractmethod
    def load_splits(self, config: Config) -> Splits:
        """The train / validation / test datasets of raw examples."""

    @abc.abstractmethod
    def build_vocabulary(self, config: Config, splits: Splits) -> Vocabulary:
        """The vocabulary, from the training split."""

    def cut_texts(self, config: Config, splits: Splits) -> str:
        """What `tokenize.sequence_length` cuts of the training texts, as a clause for tokenize's line ("" if
        nothing, or for a task that reads whole texts)."""
        return ""

    def pretrained_vectors(self, config: Config, splits: Splits, vocab: Vocabulary, progress=None):
        """(vocabulary with the vectors file's words, pretrained table, VectorsReport) for
        `tokenize.pretrained_vectors`; only a task that reads words has them (its recipe refuses the key)."""
        raise NotImplementedError(f"task {self.name!r} has no pretrained word vectors")

    def class_weight(self, config: Config, splits: Splits, labels: tuple[str, ...]) -> dict[int, float] | None:
        """{class id: weight} for the training loss (`train.class_weight`), or None."""
        return None

    def calibrate(self, model: keras.Model, config: Config, validation: tf.data.Dataset) -> dict | None:
        """What calibrates the model's probabilities, fitted on the validation batches (calibration.json), or
        None for a task or config without calibration."""
        return None

    def unlabelled(self, config: Config, splits: Splits) -> list[str] | None:
        """The texts pretraining learns from (`data.unlabelled`, with the training texts if
        `data.unlabelled_with_train`), or None when the config names none."""
        return None

    def labels(self, splits: Splits) -> tuple[str, ...]:
        """Class names (index = class id), or () for a task without classes."""
        return ()

    @abc.abstractmethod
    def training_dataset(self, config: Config, splits: Splits, vocab: Vocabulary, labels: tuple[str, ...],
                         seed: int) -> tf.data.Dataset:  # fmt: skip
        """(inputs, targets) batches for fit, shuffled with `seed`."""

    def expected_steps(self, config: Config, splits: Splits) -> int | None:
        """About how many steps an epoch of `training_dataset` takes, where Keras cannot know it (a bucketed data
        set's length is unknown until its first epoch ends): for the progress lines. None: no estimate."""
        return None

    @abc.abstractmethod
    def validation_dataset(self, config: Config, splits: Splits, vocab: Vocabulary,
                           labels: tuple[str, ...]) -> tf.data.Dataset:  # fmt: skip
        """(inputs, targets) batches of the validation split, independent of the training seed."""

    @abc.abstractmethod
    def build_model(self, config: ModelConfig, vocab: Vocabulary, labels: tuple[str, ...], seed: int = 0,
                    jit_compile: bool = True, vectors: np.ndarray | None = None) -> keras.Model:  # fmt: skip
        """The task's model, outputting logits; `vectors`: the pretrained table tokenize made (None with a
        vocabulary that has vectors: zeros, for a model whose weights are loaded next)."""

    @abc.abstractmethod
    def evaluate(self, model: keras.Model, config: Config, split: tf.data.Dataset, vocab: Vocabulary,
                 labels: tuple[str, ...], run_dir: RunDir, into: RunDir | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict:  # fmt: skip
        """Metrics of `model` on one split, and any files beside them (figures, predictions), written into `into`
        (default `run_dir`, whose training results, e.g. the calibration, it reads); `progress(done, total)` after
        each batch, where the split's size is known."""

    @abc.abstractmethod
    def read_file(self, config: Config, spec: str, labels: tuple[str, ...]) -> tf.data.Dataset:
        """A split read from one more file (`rnnpipe evaluate --data`), as the config's data settings read the
        training data; `labels` are the model's classes, and a label outside them is a DataError."""

    def evaluation_files(self, run_dir: RunDir) -> tuple[Path, ...]:
        """What `evaluate` writes beside metrics.json and a run directory needs: evaluate runs again where one is
        missing (a run directory evaluated by an earlier version)."""
        return ()

    @abc.abstractmethod
    def summary(self, metrics: Mapping[str, Any]) -> str:
        """The metrics as one line for the terminal."""

    def litert_signatures(self, model: keras.Model, vocab: Vocabulary, labels: tuple[str, ...]):
        """The signatures of a LiteRT export (pipeline.export.litert); `model` runs its recurrent kernels without
        XLA."""
        raise NotImplementedError(f"task {self.name!r} has no LiteRT export")

    @abc.abstractmethod
    def serving(self, model: keras.Model, config: Config, vocab: Vocabulary, labels: tuple[str, ...]) -> Serving:
        """The SavedModel's module and signatures; `model` is built without XLA and carries the trained weights."""
