"""Loading an exported SavedModel exactly as TF Serving would: `tf.saved_model.load` and its signatures only."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from pipeline.errors import PipelineError


def resolve_export_dir(path) -> Path:
    """A version folder (holding saved_model.pb), or a model folder whose highest numeric version is taken."""
    path = Path(path)
    if (path / "saved_model.pb").exists():
        return path
    versions = sorted((int(p.name) for p in path.iterdir() if p.name.isdigit()), reverse=True) if path.is_dir() else []
    for version in versions:
        if (path / str(version) / "saved_model.pb").exists():
            return path / str(version)
    raise PipelineError(f"{path} is not a SavedModel export (no saved_model.pb in it or in a numeric version folder)")


def load_signature(path, name: str, expected_input: str):
    export_dir = resolve_export_dir(path)
    try:
        loaded = tf.saved_model.load(str(export_dir))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise PipelineError(f"cannot load SavedModel {export_dir}: {str(error).splitlines()[0]}") from None
    signature = loaded.signatures.get(name)
    inputs = signature.structured_input_signature[1] if signature is not None else {}
    if expected_input not in inputs:
        raise PipelineError(f"{export_dir} has no signature {name!r} taking {expected_input!r}; "
                            f"is it the right kind of model? (signatures: {sorted(loaded.signatures)})")  # fmt: skip
    return loaded, signature
