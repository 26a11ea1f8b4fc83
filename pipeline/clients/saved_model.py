"""Loading an exported SavedModel exactly as TF Serving would: `tf.saved_model.load` and its signatures only."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from pipeline.errors import PipelineError

# Which command serves an export of each task (the wrong kind of export is named, with the command it needs).
COMMANDS = {"sentiment": "rnnpipe predict", "next_char": "rnnpipe generate"}


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
    loaded, signatures = load_signatures(path, {name: expected_input})
    return loaded, signatures[name]


def load_signatures(path, expected: dict[str, str]):
    """(the loaded SavedModel, {name: signature}) for each signature `name` in `expected`, which must take the
    input `expected[name]`."""
    export_dir = resolve_export_dir(path)
    try:
        loaded = tf.saved_model.load(str(export_dir))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise PipelineError(f"cannot load SavedModel {export_dir}: {str(error).splitlines()[0]}") from None
    found = {}
    for name, expected_input in expected.items():
        signature = loaded.signatures.get(name)
        inputs = signature.structured_input_signature[1] if signature is not None else {}
        if expected_input not in inputs:
            kind = export_task(export_dir)
            if kind is not None:
                raise PipelineError(f"{export_dir} is a {kind} model: use `{COMMANDS[kind]}`")
            raise PipelineError(f"{export_dir} has no signature {name!r} taking {expected_input!r}; is it the right "
                                f"kind of model, exported by this version? (signatures: "
                                f"{sorted(loaded.signatures)})")  # fmt: skip
        found[name] = signature
    return loaded, found


def read_variable(path, name: str):
    """The value of the root-module variable `name` of an export, read from its checkpoint without loading the
    graph (milliseconds, where loading takes seconds); None when the export has no such variable."""
    export_dir = resolve_export_dir(path)
    try:
        reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
        # The object-based checkpoint key of a variable held by the root object as attribute `name`.
        return reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")
    except (tf.errors.OpError, ValueError, KeyError):
        return None


def export_task(path) -> str | None:
    """The task an export serves, from the variables its serving module keeps (class names for sentiment, the
    generation limit for next_char); None for anything else."""
    if read_variable(path, "class_names") is not None:
        return "sentiment"
    if read_variable(path, "max_length") is not None:
        return "next_char"
    return None
