"""Sentiment predictions from an exported SavedModel (its serving_default signature, as TF Serving runs it)."""

from __future__ import annotations

import tensorflow as tf

from pipeline.serving_client import load_signature


def predict(export_dir, texts: list[str], batch_size: int = 256) -> list[dict]:
    """One {"text", "label", "probabilities": {class name: probability}} per text."""
    loaded, serve = load_signature(export_dir, "serving_default", "text")
    names = [n.decode("utf-8") for n in loaded.class_names.numpy()]
    results = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        out = serve(text=tf.constant(batch, tf.string))
        for text, label, probabilities in zip(batch, out["label"].numpy(), out["probabilities"].numpy()):
            results.append({"text": text, "label": label.decode("utf-8"),
                            "probabilities": {n: round(float(p), 6) for n, p in zip(names, probabilities)}})  # fmt: skip
    return results
