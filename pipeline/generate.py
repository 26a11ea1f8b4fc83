"""Text generation from an exported next-character SavedModel (its signatures, as TF Serving runs them)."""

from __future__ import annotations

import tensorflow as tf

from pipeline.errors import PipelineError
from pipeline.serving_client import load_signature


def generate(export_dir, prompt: str, length: int = 200, temperature: float = 1.0, seed: int | None = None) -> str:
    """`length` characters continuing `prompt`; with `seed`, the same seed gives the same text."""
    if length < 0:
        raise PipelineError(f"--length must be >= 0, got {length}")
    if not temperature > 0:
        raise PipelineError(f"--temperature must be > 0, got {temperature}")
    name = "serving_default" if seed is None else "generate_seeded"
    _, signature = load_signature(export_dir, name, "prompt")
    inputs = {"prompt": tf.constant([prompt]), "length": tf.constant(length, tf.int32),
              "temperature": tf.constant(temperature, tf.float32)}  # fmt: skip
    if seed is not None:
        inputs["seed"] = tf.constant(seed, tf.int64)
    return signature(**inputs)["text"].numpy()[0].decode("utf-8")
