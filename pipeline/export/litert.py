"""LiteRT (TensorFlow Lite) export: a .tflite model of a trained pipeline model that uses built-in LiteRT ops only
(no Select TF ops, no Flex delegate), and what a device needs around it.

`export_litert` writes a new folder holding
    model.tflite      the model; post-training dynamic-range quantization with `quantize=True`
    vocabulary.json   the training vocabulary (`pipeline.data.text.Vocabulary`)
    litert.json       task, class names, tokenization rules, signatures (inputs and outputs), the state layout

Signatures (batch and time dimensions are dynamic; string ops stay on the device, as with every on-device text
model, and `pipeline.clients.litert_client` is the reference implementation of the tokenization):

sentiment, "serving_default":
    tokens: int32 [batch, time] word ids, right-padded with 0 (masked)  ->  probabilities: float32 [batch, classes]
            with sub-words, int32 [batch, time, ids per word]: each word's id, then its n-grams' (pipeline.data.text)
next_char, the recurrent state packed as one float32 [batch, state_size] (each layer's states in order, laid out
in litert.json; zeros to start):
    "step":         char_id: int32 [batch], state                         ->  logits, probabilities: [batch, vocab],
                                                                              state (after that character)
    "read_prompt":  char_ids: int32 [batch, time] (right-padded), lengths: int32 [batch] (>= 1), state
                                                                          ->  the same, after each row's last character

The recurrent layers convert through their fused kernels without XLA (the model is rebuilt with
`jit_compile=False` and no dropout, the same weights: `inference_copy`). "step" calls each layer's cell once;
"read_prompt" is one loop of those steps, carrying only the state, so it needs no per-timestep buffers and converts
for every cell the step does.
After conversion the .tflite is run once by the LiteRT interpreter on sample input and compared with the Keras
model: an export that disagrees by more than `CHECK_TOLERANCE` (quantized: `QUANTIZED_CHECK_TOLERANCE`) is not
written, and litert.json records the difference ("check").
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from pipeline.clients import litert_client, native
from pipeline.data.text import MAX_NGRAM_WORD_CHARS, WORD_END, WORD_START, Vocabulary, standardize
from pipeline.run import artifacts

logger = logging.getLogger(__name__)

MODEL_FILE = "model.tflite"
VOCABULARY_FILE = "vocabulary.json"
# The converted model against Keras on sample input: float32 rounding, or (quantized) a broken conversion rather
# than quantization's own error, which litert.json records.
CHECK_TOLERANCE = 1e-4
QUANTIZED_CHECK_TOLERANCE = 0.1


class LiteRTConversionError(ValueError):
    """The model cannot be converted to built-in LiteRT ops, or the converted model disagrees with Keras."""


def export_litert(
    model: keras.Model,
    task: str,
    vocab: Vocabulary,
    labels: Sequence[str],
    target_dir: str | os.PathLike,
    quantize: bool = False,
    max_length: int | None = None,
) -> Path:
    """Converts a pipeline model (`pipeline.training.model.build_model`, trained) and writes the LiteRT export folder
    `target_dir`, which must not exist yet; returns it.

    Args:
        model: the trained model (with or without XLA in its recurrent layers).
        task: the task's name ("sentiment", "next_char"); the task chooses the signatures (`Task.litert_signatures`).
        vocab: the vocabulary it was trained with (word level for sentiment, char level for next_char).
        labels: sentiment: the class names, index = class id (next_char: empty).
        target_dir: the folder to write; written beside it under a temporary name and renamed when complete.
        quantize: post-training dynamic-range quantization (int8 weights, float activations).
        max_length: next_char: the longest generation a client should run (recorded in litert.json).

    Raises:
        ValueError: bad arguments; `LiteRTConversionError` if the model does not convert with built-in ops only
            or the converted model disagrees with Keras.
        FileExistsError: `target_dir` exists.
        ImportError: ai-edge-litert (the `litert` extra) is not installed.
    """
    target = Path(target_dir)
    if target.exists():
        raise FileExistsError(f"{target} exists; a LiteRT export is never overwritten")
    tflite, description = convert(model, task, vocab, labels, quantize=quantize)
    if max_length is not None and "generation" in description:
        description["generation"]["max_length"] = int(max_length)
    with artifacts.staged_path(target) as tmp:
        tmp.mkdir()
        artifacts.write_bytes(tmp / MODEL_FILE, tflite)
        vocab.save(tmp / VOCABULARY_FILE)
        artifacts.write_json(tmp / litert_client.DESCRIPTION_FILE, description)
    logger.info("LiteRT export %s (%d bytes, quantization %s)", target, len(tflite), description["quantization"])
    return target


def convert(
    model: keras.Model, task: str, vocab: Vocabulary, labels: Sequence[str] = (), quantize: bool = False
) -> tuple[bytes, dict]:
    """(the .tflite flatbuffer, the litert.json description) for a pipeline model; see `export_litert`."""
    try:  # checked first: the converted model is run by it before anything is written
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        message = "a LiteRT export needs the litert extra: pip install 'rnnpipe[litert]' (ai-edge-litert)"
        raise ImportError(message) from None
    from pipeline import tasks

    module = tasks.get(task).litert_signatures(inference_copy(model), vocab, labels)
    model = module.model
    endpoints = module.endpoints()
    with tempfile.TemporaryDirectory(prefix="rnnpipe-litert-") as tmp:
        # A SavedModel first, for its signature names. Keras' ExportArchive saves the variables the endpoints use,
        # which the converter then freezes into constants (a tf.Module holding the model kept them as variables).
        archive = keras.export.ExportArchive()
        archive.track(model)
        for name, (fn, input_signature) in endpoints.items():
            archive.add_endpoint(name, fn, input_signature=input_signature)
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=list(endpoints))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        try:
            tflite = converter.convert()
        except Exception as error:  # the converter raises its own ConverterError, or others from its passes
            raise LiteRTConversionError(_conversion_failure(error)) from None
    ops = builtin_ops(tflite)
    check = _check_against_keras(tflite, module, vocab, QUANTIZED_CHECK_TOLERANCE if quantize else CHECK_TOLERANCE)
    description = describe(tflite, module, task, vocab, ops, quantize)
    description["check"] = {"against": "the Keras model on sample input", "max_abs_difference": check}
    return tflite, description


def inference_copy(model: keras.Model) -> keras.Model:
    """A copy of `model` with the same weights for LiteRT: its recurrent layers run their kernels without XLA
    (which LiteRT cannot run) and without dropout. Dropout is off in inference anyway, but Keras draws the
    recurrent layers' dropout masks before every sequence all the same, from a seed-generator variable that would
    stay in the .tflite as a resource variable (state a device has to keep, and ops not every delegate runs).
    Every `jit_compile`, `dropout`, `recurrent_dropout` and `recurrent_weight_dropout` in the model's config (our
    layers, also inside Bidirectional and sub-models) is replaced."""
    replace = {"jit_compile": False, "dropout": 0.0, "recurrent_dropout": 0.0, "recurrent_weight_dropout": 0.0}

    def plain(value):
        if isinstance(value, dict):
            return {k: (replace[k] if k in replace else plain(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    clone = model.__class__.from_config(plain(model.get_config()))
    clone.set_weights(model.get_weights())
    if len(clone.inputs) == 1 and len(clone.outputs) == 1:
        # A loaded model's config makes its input a one-element list, which Keras warns about at each call.
        clone = keras.Model(clone.inputs[0], clone.outputs[0], name=clone.name)
    return clone


def builtin_ops(tflite: bytes) -> list[str]:
    """The names of the operators a .tflite uses; `LiteRTConversionError` if any is a custom (or Flex) op."""
    from ai_edge_litert import schema_py_generated as schema  # the `litert` extra

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    flatbuffer = schema.Model.GetRootAs(tflite, 0)
    ops, custom = set(), set()
    for i in range(flatbuffer.OperatorCodesLength()):
        code = flatbuffer.OperatorCodes(i)
        # Operator codes below 127 are also kept in the deprecated field; the larger of the two is the real one.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom.add((code.CustomCode() or b"?").decode())
        else:
            ops.add(names.get(builtin, str(builtin)))
    if custom:
        raise LiteRTConversionError(f"the converted model uses non-built-in ops {sorted(custom)}")
    return sorted(ops)


def describe(tflite, module, task, vocab, ops, quantize) -> dict:
    """litert.json: everything a device needs besides the .tflite and the vocabulary."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    signatures = {}
    for name in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(name)
        signatures[name] = {"inputs": _tensors(runner.get_input_details()),
                            "outputs": _tensors(runner.get_output_details())}  # fmt: skip
    return {
        "format": litert_client.FORMAT,
        "format_version": litert_client.FORMAT_VERSION,
        "task": task,
        "model": MODEL_FILE,
        "vocabulary": VOCABULARY_FILE,
        "quantization": "dynamic_range" if quantize else "none",
        "ops": ops,
        "tokenization": tokenization_rules(vocab),
        "signatures": signatures,
        **module.description(),
    }


def tokenization_rules(vocab: Vocabulary) -> dict:
    """The tokenization of `pipeline.data.text` as data: derived by running its TensorFlow functions, so that a device
    (and `litert_client.Tokenizer`) reproduces them without TensorFlow or a Unicode library."""
    rules: dict[str, Any] = {"level": vocab.level, "pad_id": 0, "oov_id": vocab.oov_id}
    if vocab.level == "word":
        rules.update(standardize=vocab.standardize, sequence_length=vocab.sequence_length,
                     split_on=" \t\n\v\f\r")  # fmt: skip
        if vocab.ngrams:
            rules["subwords"] = {"word_start": WORD_START, "word_end": WORD_END, "sizes": list(vocab.ngram_sizes),
                                 "per_word": vocab.ngrams_per_word, "first_id": vocab.size,
                                 "max_word_chars": MAX_NGRAM_WORD_CHARS}  # fmt: skip
        if vocab.standardize in ("lower", "lower_and_strip_punctuation"):
            rules["lowercase"] = _lowercase_table()
            rules["final_sigma"] = _final_sigma_tables()
        if vocab.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            ascii_chars = [chr(c) for c in range(1, 128)]
            kept = standardize(tf.constant(ascii_chars), "strip_punctuation").numpy()
            rules["punctuation"] = "".join(c for c, out in zip(ascii_chars, kept) if not out)
            rules["html_break"] = r"<br[\t\n\f\r ]*/?>"
    return rules


def _codepoints() -> np.ndarray:
    return np.array([c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF], np.int32)  # U+0000 ends a text


def _lowercase_table() -> dict[str, str]:
    """Every character that training's lowercasing changes on its own, with what it becomes."""
    chars = tf.strings.unicode_encode(_codepoints()[:, np.newaxis], "UTF-8")
    lowered = standardize(chars, "lower")
    changed = tf.where(chars != lowered)[:, 0]
    pairs = zip(tf.gather(chars, changed).numpy(), tf.gather(lowered, changed).numpy())
    return {char.decode("utf-8"): low.decode("utf-8") for char, low in pairs}


def _final_sigma_tables() -> dict[str, list]:
    """The character properties behind training's Final_Sigma rule, as [first, last] code point ranges, read off
    TensorFlow's own lowercasing: a capital sigma after "A" and a character c becomes final iff c is cased or
    case-ignorable (skipped); right after c alone, iff c is cased and not case-ignorable."""
    codepoints = _codepoints()
    chars = tf.strings.unicode_encode(codepoints[:, np.newaxis], "UTF-8")

    def ends_final(texts):
        return tf.strings.regex_full_match(standardize(texts, "lower"), ".*\u03c2").numpy()

    after_cased = ends_final(tf.strings.join(["A", chars, "\u03a3"]))
    cased = ends_final(tf.strings.join([chars, "\u03a3"]))
    return {"cased": _ranges(codepoints[cased]), "case_ignorable": _ranges(codepoints[after_cased & ~cased])}


def _ranges(codepoints: np.ndarray) -> list[list[int]]:
    ranges: list[list[int]] = []
    for c in codepoints.tolist():
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return ranges


_MEANINGS = {
    "tokens": "word ids (vocabulary.json), right-padded with 0, which is masked; with sub-words each word's id, "
    "then its known n-grams' ids (size + index in the vocabulary's ngrams), then 0s",
    "probabilities": "softmax of the logits",
    "logits": "unnormalized log-probabilities of the next character",
    "char_id": "the character just read (or sampled)",
    "char_ids": "prompt character ids, right-padded (what follows a row's length is ignored)",
    "lengths": "characters in each prompt, >= 1",
    "state": "the recurrent state (layout under 'state'); zeros for a new text",
}


def _tensors(details: dict) -> dict:
    return {name: {"dtype": np.dtype(d["dtype"]).name, "shape": [int(n) for n in d["shape_signature"]],
                   "meaning": _MEANINGS.get(name, "")} for name, d in sorted(details.items())}  # fmt: skip


def _check_against_keras(tflite, module, vocab, tolerance) -> dict:
    """Runs each signature once through the LiteRT interpreter and compares it with the Keras model:
    {signature: {output: max |difference|}}."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    inputs = module.sample_inputs(vocab)
    differences = {}
    for name, expected in module.keras_reference(inputs).items():
        with native.without_notices():  # the interpreter's first run announces its CPU delegate
            got = interpreter.get_signature_runner(name)(**inputs[name])
        differences[name] = {key: float(np.max(np.abs(got[key] - value))) for key, value in expected.items()}
        error = max(differences[name].values())
        if not error <= tolerance:
            raise LiteRTConversionError(f"the converted {name!r} differs from Keras by {error:.3g} (> {tolerance:g})")
        logger.info("LiteRT %r matches Keras to %.2g", name, error)
    return differences


def _conversion_failure(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if "error:" in line]
    reason = lines[0].split("error:", 1)[1].strip() if lines else str(error).strip().splitlines()[-1]
    return (
        f"the model does not convert to built-in LiteRT ops: {reason}. Recurrent layers convert through their fused "
        "kernel (LSTM with tanh/sigmoid and no peephole or layer_norm, tanh SimpleRNN); layers that step their cell "
        "over a sequence need TensorFlow's tensor-list ops, which LiteRT has only as Select TF ops"
    )
