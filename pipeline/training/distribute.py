"""tf.distribute strategies for `train.strategy`.

default: the current (single-device) strategy. mirrored: all local GPUs (or the CPU) with synchronous all-reduce.
multi_worker_mirrored: several machines, described by the TF_CONFIG environment variable; the worker of index 0 (or
the "chief") writes checkpoints, history and plots, the others write to a scratch folder. tpu: a TPU found by
TPUClusterResolver. `train.batch_size` is the global batch: each of N replicas gets batch_size / N examples.
"""

from __future__ import annotations

import os

import tensorflow as tf

from pipeline.errors import ConfigError
from pipeline.run import cluster
from pipeline.training import _keras_private


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("train.strategy: multi_worker_mirrored needs the TF_CONFIG environment variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise ConfigError(f"train.strategy: no TPU found ({str(error).splitlines()[0]})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise ConfigError(f"train.strategy: unknown strategy {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                               and not cluster.has_chief())  # fmt: skip


def adapt_keras_fit(model, dataset: tf.data.Dataset, strategy: tf.distribute.Strategy) -> None:
    """Works around two failures of Keras 3.15's `fit` under MultiWorkerMirroredStrategy (call `fit` under
    `strategy.scope()` afterwards):

    1. before building, `fit` all-reduces a sample (x, y) batch, which the collective strategy cannot do for a
       nested structure: the model, loss, metrics and optimizer are built here from an undistributed sample, and
       `fit` then takes the strategy from the scope instead of the model, which skips that step;
    2. the per-step logs are all-reduced with `axis=0`, which fails for scalars: the steps return them as [1].
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    x, y = next(iter(dataset))
    with strategy.scope():
        _keras_private.build_for_distributed_fit(model, (x, y))
    for name in ("train_step", "test_step"):
        step = getattr(model, name)
        setattr(model, name, lambda data, step=step: {k: tf.reshape(v, [1]) for k, v in step(data).items()})
