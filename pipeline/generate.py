"""Text generation from an exported next-character SavedModel, through its signatures as TF Serving runs them.

`Generator` checks a request against the export's limits before loading anything (the limits are read from the
export's variables in milliseconds; loading takes seconds), then samples with the `sample` signature, or, to stream,
reads the prompts with `read_prompt` and continues in chunks with `sample_from_state`. With a seed both give the
same text (see pipeline.generation). Prompts are batched; batch b of a run uses the seed itself for b = 0 and a seed
derived from it otherwise, so that identical prompts in two batches get different text.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import math
import re
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import numpy as np
import tensorflow as tf

from pipeline.errors import DataError, PipelineError, shorten
from pipeline.serving_client import load_signatures, read_variable, resolve_export_dir

UNSEEDED = -1  # pipeline.generation.UNSEEDED (not imported: that module needs Keras, a client does not)
MAX_SEED = 2**63 - 1
# Rows (prompts x samples) per SavedModel call.
BATCH_ROWS = 64
# Streamed chunks start small, so that text appears at once, and grow to amortize the cost of a call.
STREAM_CHUNKS = (16, 32, 64, 128, 256)
_MASK64 = 2**64 - 1


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How to sample: `length` characters at `temperature`, top-k (0: off), nucleus top-p (1: off), seed (None: a
    fresh one each call)."""

    length: int = 200
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def check(self) -> None:
        """A PipelineError for any value the export would refuse, except the length's upper bound (`Generator`)."""
        if self.length < 0:
            raise PipelineError(f"--length must be >= 0, got {self.length}")
        temperature = _float32(self.temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            as_float32 = f" ({temperature} as a float32)" if _rounded(self.temperature, temperature) else ""
            raise PipelineError(f"--temperature must be > 0 and finite, got {self.temperature}{as_float32}")
        if not 0 <= self.top_k < 2**31:
            raise PipelineError(f"--top-k must be >= 0 (0: no top-k cut) and < 2**31, got {shorten(str(self.top_k))}")
        top_p = _float32(self.top_p)
        if not 0 < top_p <= 1:
            as_float32 = f" ({top_p} as a float32)" if _rounded(self.top_p, top_p) else ""
            raise PipelineError(f"--top-p must be in (0, 1] (1: no nucleus cut), got {self.top_p}{as_float32}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise PipelineError(f"--seed must be in [0, 2**63 - 1], got {shorten(str(self.seed))}")

    def inputs(self, length: int, batch: int = 0) -> dict[str, tf.Tensor]:
        """The scalar inputs of `sample` / `sample_from_state` for `length` characters in batch number `batch`."""
        return {
            "length": tf.constant(length, tf.int32),
            "temperature": tf.constant(self.temperature, tf.float32),
            "top_k": tf.constant(self.top_k, tf.int32),
            "top_p": tf.constant(self.top_p, tf.float32),
            "seed": tf.constant(batch_seed(self.seed, batch), tf.int64),
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
        out = self._call("sample", prompt=_prompts(prompts), **sampling.inputs(sampling.length, batch))
        return _texts(out["text"])

    def stream(self, prompts: Sequence[str | bytes], sampling: Sampling, batch: int = 0) -> Iterator[list[str]]:
        """The same text as `sample` (with a seed), in chunks as they are generated: one string per prompt each."""
        state = self._call("read_prompt", prompt=_prompts(prompts))["state"]
        done, chunk = 0, 0
        while done < sampling.length:
            size = min(STREAM_CHUNKS[min(chunk, len(STREAM_CHUNKS) - 1)], sampling.length - done)
            out = self._call("sample_from_state", state=state, **sampling.inputs(size, batch))
            state, done, chunk = out["state"], done + size, chunk + 1
            yield _texts(out["text"])

    def batches(self, prompts: Sequence[str | bytes], sampling: Sampling, num_samples: int = 1,
                stream: bool = False) -> Iterator[Batch]:  # fmt: skip
        """`num_samples` texts per prompt, BATCH_ROWS rows per call, in order: prompt 0's samples, then prompt 1's."""
        if num_samples < 1:
            raise PipelineError(f"--num-samples must be >= 1, got {num_samples}")
        total = len(prompts) * num_samples
        for number, start in enumerate(range(0, total, BATCH_ROWS)):
            rows = [divmod(i, num_samples) for i in range(start, min(start + BATCH_ROWS, total))]
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


def generate(export_dir, prompt: str, length: int = 200, temperature: float = 1.0, seed: int | None = None,
             top_k: int = 0, top_p: float = 1.0) -> str:  # fmt: skip
    """`length` characters continuing `prompt`; with `seed`, the same seed gives the same text."""
    sampling = Sampling(length, temperature, top_k, top_p, seed)
    generator = Generator(export_dir)
    generator.check(sampling, [prompt])
    return generator.sample([prompt], sampling)[0]


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


def _float32(value: float) -> float:
    """`value` as the export receives it (a float32), without NumPy's overflow warning."""
    with np.errstate(over="ignore"):
        return float(np.float32(value))


def _rounded(value: float, as_float32: float) -> bool:
    """Whether the float32 rounding changed the verdict-relevant value (0 or inf from a finite non-zero one)."""
    return math.isfinite(value) and value != 0 and (as_float32 == 0 or not math.isfinite(as_float32))


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
