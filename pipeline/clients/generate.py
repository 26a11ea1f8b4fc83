"""Text generation from an exported next-character SavedModel, through its signatures as TF Serving runs them.

`Generator` checks a request against the export's limits before loading anything (the limits are read from the
export's variables in milliseconds; loading takes seconds), then samples with the `sample` signature, or, to stream,
reads the prompts with `read_prompt` and continues in chunks with `sample_from_state`. With a seed both give the
same text (see pipeline.tasks.next_char.serving). Prompts are batched; batch b of a run uses the seed itself for
b = 0 and a seed derived from it otherwise, so that identical prompts in two batches get different text.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import tensorflow as tf

from pipeline.clients import native
from pipeline.clients.saved_model import COMMANDS, export_task, load_signatures, read_variable, resolve_export_dir
from pipeline.errors import DataError, PipelineError, shorten
from pipeline.sampling import MAX_GENERATED, MAX_PROMPT_CHARS, UNSEEDED, Sampling

# Rows (prompts x samples) per SavedModel call, fewer where they would generate more than an export allows.
BATCH_ROWS = 64
# Streamed chunks start small, so that text appears at once, and grow to amortize the cost of a call.
STREAM_CHUNKS = (16, 32, 64, 128, 256)
_MASK64 = 2**64 - 1


def sampling_inputs(sampling: Sampling, length: int, batch: int = 0) -> dict[str, tf.Tensor]:
    """The scalar inputs of `sample` / `sample_from_state` for `length` characters in batch number `batch`."""
    return {
        "length": tf.constant(length, tf.int32),
        "temperature": tf.constant(sampling.temperature, tf.float32),
        "top_k": tf.constant(sampling.top_k, tf.int32),
        "top_p": tf.constant(sampling.top_p, tf.float32),
        "seed": tf.constant(batch_seed(sampling.seed, batch), tf.int64),
    }


@dataclasses.dataclass(frozen=True)
class Batch:
    """Rows (prompt index, sample index) generated together; `pieces` yields, for each chunk, one string per row
    (one chunk holding the whole text unless streamed). Iterate it to the end before asking for the next batch."""

    rows: list[tuple[int, int]]
    pieces: Iterator[list[str]]


class Generator:
    """A next_char export's sampling signatures. Creating one reads the export's limits only; the SavedModel is
    loaded on first use."""

    def __init__(self, export_dir):
        self.export_dir = resolve_export_dir(export_dir)
        limits = [read_variable(self.export_dir, name) for name in ("max_length", "max_prompt_chars")]
        if any(limit is None for limit in limits):
            kind = export_task(self.export_dir)
            if kind is not None:
                raise PipelineError(f"{self.export_dir} is a {kind} model: use `{COMMANDS[kind]}`")
            raise PipelineError(f"{self.export_dir} has no generation limits: it is not a next_char export, or it was "
                                f"exported by an older version (run `rnnpipe export` again)")  # fmt: skip
        self.max_length, self.max_prompt_chars = (int(limit) for limit in limits)

    def check(self, sampling: Sampling, prompts: Sequence[str | bytes], source: str = "--prompt") -> None:
        """A PipelineError, before any work, for a request the export would refuse. `source` names where the
        prompts come from: "--prompt", or a file whose line i + 1 is prompts[i]."""
        sampling.check()
        if sampling.length > self.max_length:
            raise PipelineError(f"--length {sampling.length:,} is above this export's max_length of "
                                f"{self.max_length:,} (export.max_length)")  # fmt: skip
        for index, prompt in enumerate(prompts):
            chars = len(_as_bytes(prompt).decode("utf-8", "replace"))
            if chars > self.max_prompt_chars:
                where = "--prompt" if source == "--prompt" else f"{source}: line {index + 1}:"
                raise PipelineError(f"{where} the prompt has {chars:,} characters; this export reads at most "
                                    f"{self.max_prompt_chars:,}")  # fmt: skip

    @functools.cached_property
    def _signatures(self) -> dict:
        expected = {"sample": "top_k", "read_prompt": "prompt", "sample_from_state": "state"}
        return load_signatures(self.export_dir, expected)[1]

    def sample(self, prompts: Sequence[str | bytes], sampling: Sampling, batch: int = 0) -> list[str]:
        """The text sampled after each prompt, in one call (`batch`: which batch of a run this is, for its seed)."""
        out = self._call("sample", prompt=_prompts(prompts), **sampling_inputs(sampling, sampling.length, batch))
        return _texts(out["text"])

    def stream(self, prompts: Sequence[str | bytes], sampling: Sampling, batch: int = 0) -> Iterator[list[str]]:
        """The same text as `sample` (with a seed), in chunks as they are generated: one string per prompt each."""
        state = self._call("read_prompt", prompt=_prompts(prompts))["state"]
        done, chunk = 0, 0
        while done < sampling.length:
            size = min(STREAM_CHUNKS[min(chunk, len(STREAM_CHUNKS) - 1)], sampling.length - done)
            out = self._call("sample_from_state", state=state, **sampling_inputs(sampling, size, batch))
            state, done, chunk = out["state"], done + size, chunk + 1
            yield _texts(out["text"])

    def batches(self, prompts: Sequence[str | bytes], sampling: Sampling, num_samples: int = 1,
                stream: bool = False) -> Iterator[Batch]:  # fmt: skip
        """`num_samples` texts per prompt, BATCH_ROWS rows per call (fewer for a length that would make them
        generate more than MAX_GENERATED characters), in order: prompt 0's samples, then prompt 1's."""
        if num_samples < 1:
            raise PipelineError(f"--num-samples must be >= 1, got {num_samples}")
        total = len(prompts) * num_samples
        per_call = max(1, min(BATCH_ROWS, MAX_GENERATED // max(1, sampling.length)))
        for number, start in enumerate(range(0, total, per_call)):
            rows = [divmod(i, num_samples) for i in range(start, min(start + per_call, total))]
            batch_prompts = [prompts[p] for p, _ in rows]
            if stream:
                pieces = self.stream(batch_prompts, sampling, number)
            else:
                pieces = iter([self.sample(batch_prompts, sampling, number)])
            yield Batch(rows, pieces)

    def _call(self, name: str, **inputs) -> dict:
        try:
            return self._signatures[name](**inputs)
        except tf.errors.InvalidArgumentError as error:
            raise PipelineError(f"{self.export_dir} refused the request: {_refusal(error)}") from None


class LiteRTGenerator:
    """A LiteRT export (pipeline.export.litert) in `Generator`'s place: the same requests, sampled by the reference
    client one prompt at a time (its seeded text equals the SavedModel's for a batch of one prompt)."""

    def __init__(self, export_dir):
        from pipeline.clients import litert_client

        self._errors = litert_client.LiteRTExportError
        try:
            self.model = litert_client.LiteRTModel(export_dir)
        except self._errors as error:
            raise PipelineError(str(error)) from None
        if self.model.task != "next_char":
            raise PipelineError(f"{self.model.folder} is a {self.model.task} model: use "
                                f"`{COMMANDS.get(self.model.task, 'rnnpipe generate')}`")  # fmt: skip
        with native.without_notices():  # the interpreter's first run announces its CPU delegate
            self.model.read_prompt([b""])
        self.max_length, self.max_prompt_chars = self.model.max_length, MAX_PROMPT_CHARS

    check = Generator.check

    def batches(self, prompts: Sequence[str | bytes], sampling: Sampling, num_samples: int = 1,
                stream: bool = False) -> Iterator[Batch]:  # fmt: skip
        for row in range(len(prompts) * num_samples):
            p, s = divmod(row, num_samples)
            chars = self.model.generate_chars(_as_bytes(prompts[p]), sampling.length, sampling.temperature,
                                              None if sampling.seed is None else batch_seed(sampling.seed, row),
                                              sampling.top_k, sampling.top_p)  # fmt: skip
            pieces = ([c] for c in chars) if stream else iter([["".join(chars)]])
            yield Batch([(p, s)], pieces)


def open_generator(export_dir) -> Generator | LiteRTGenerator:
    """The generator for an export: a LiteRT one for a .tflite export (its file, its litert/ folder), the
    SavedModel's otherwise."""
    from pipeline.clients import litert_client

    path = Path(export_dir)
    if not (path / "saved_model.pb").exists() and litert_client.is_litert_export(path):
        return LiteRTGenerator(path)
    return Generator(path)


def generate(export_dir, prompt: str, length: int = 200, temperature: float = 1.0, seed: int | None = None,
             top_k: int = 0, top_p: float = 1.0) -> str:  # fmt: skip
    """`length` characters continuing `prompt`; with `seed`, the same seed gives the same text."""
    sampling = Sampling(length, temperature, top_k, top_p, seed)
    generator = open_generator(export_dir)
    generator.check(sampling, [prompt])
    (batch,) = generator.batches([prompt], sampling)
    return "".join(piece[0] for piece in batch.pieces)


def read_prompts(file: BinaryIO, name: str) -> list[str]:
    """One prompt per line of a UTF-8 file (line ends and a leading byte order mark dropped; empty lines are empty
    prompts). A DataError names the first line that is not UTF-8."""
    prompts = []
    for number, line in enumerate(file, 1):
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{name}: line {number}, byte offset {error.start}: byte 0x{line[error.start]:02x} is not "
                            f"valid UTF-8; prompts must be UTF-8 text") from None  # fmt: skip
        prompts.append(text.rstrip("\r\n"))
    if not prompts:
        raise DataError(f"{name} holds no prompts (one per line)")
    return prompts


def batch_seed(seed: int | None, batch: int) -> int:
    """The seed of batch number `batch` of a run seeded with `seed`: `seed` itself for the first, then a
    splitmix64 mix of the two (63 bits, so a valid seed); UNSEEDED without a seed."""
    if seed is None:
        return UNSEEDED
    if batch == 0:
        return seed
    z = (seed + batch * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def display_text(prompt: str | bytes) -> str:
    """A prompt as it can be printed: bytes that are not UTF-8 (a command-line argument can hold them) shown as
    U+FFFD, as the export reads them."""
    return _as_bytes(prompt).decode("utf-8", "replace")


def _as_bytes(prompt: str | bytes) -> bytes:
    # A str from the command line carries undecodable bytes as surrogates; give them back to the export as bytes.
    return prompt if isinstance(prompt, bytes) else prompt.encode("utf-8", "surrogateescape")


def _prompts(prompts: Sequence[str | bytes]) -> tf.Tensor:
    return tf.constant([_as_bytes(p) for p in prompts], tf.string, shape=[len(prompts)])


def _texts(tensor: tf.Tensor) -> list[str]:
    return [text.decode("utf-8") for text in tensor.numpy()]


def _refusal(error: tf.errors.InvalidArgumentError) -> str:
    """The reason of an in-graph check (its Assert message and value), or the error's first line."""
    found = re.search(r"assertion failed: \[(.*?)\](?: \[(.*?)\])?", error.message)
    if not found:
        return shorten(error.message.strip().splitlines()[0] if error.message.strip() else "invalid request")
    reason = found.group(1).replace("\\'", "'")
    return shorten(f"{reason} {found.group(2)}" if found.group(2) else reason)
