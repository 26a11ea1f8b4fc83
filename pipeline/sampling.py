"""What a generation request may ask of a next_char export, and how its sampling values are checked: one
definition, used by the SavedModel's signatures (pipeline.tasks.next_char.serving), the export config, the
`generate` client and the command line. The LiteRT reference client (pipeline/clients/litert_client.py) runs on
devices without this package and keeps copies of the values it needs; a test ties them to these.

Sampling: the next character's logits are divided by `temperature` (at least MIN_TEMPERATURE); `top_k` > 0 keeps
the k most probable characters, `top_p` < 1 the smallest set of them holding that probability; a `seed` of UNSEEDED
draws fresh randomness for each request, a seed >= 0 reproduces the text.
"""

from __future__ import annotations

import dataclasses
import math
import struct

from pipeline.errors import PipelineError, shorten

UNSEEDED = -1
MAX_SEED = 2**63 - 1
# Temperatures below it sample as it does (the most probable character but for ties within 1e-30): dividing logits
# by less could overflow to inf, which a draw ignores.
MIN_TEMPERATURE = 1e-30
# Reading a prompt keeps every layer's outputs for it ([batch, characters, units] floats): this bounds that memory.
MAX_PROMPT_CHARS = 10_000
# The most prompts (or states) one request may hold: each keeps its state, and its probabilities or its text.
MAX_PROMPTS = 2**16
# The most characters one request may generate (prompts x length): the text is kept until it is decoded.
MAX_GENERATED = 2**24
# Characters one reading pass holds at most (its prompts x the longest): a request's prompts are read that many at a
# time, so MAX_PROMPTS prompts of MAX_PROMPT_CHARS characters are read in passes, not at once.
READ_CHARS = 2**17
# The most characters one request may ask for, unless the export sets another bound (export.max_length).
DEFAULT_MAX_LENGTH = 4096
# The highest export.max_length: generated positions are float32 in the exported state, exact up to 2**24.
MAX_MAX_LENGTH = 2**24
# What a model reads when the prompt is empty: a line break, where texts start.
EMPTY_PROMPT = "\n"


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
        """A PipelineError for any value an export would refuse, except the length's upper bound (the export's own
        max_length)."""
        if self.length < 0:
            raise PipelineError(f"--length must be >= 0, got {self.length}")
        temperature = as_float32(self.temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            rounded = f" ({temperature} as a float32)" if _rounded(self.temperature, temperature) else ""
            raise PipelineError(f"--temperature must be > 0 and finite, got {self.temperature}{rounded}")
        if not 0 <= self.top_k < 2**31:
            raise PipelineError(f"--top-k must be >= 0 (0: no top-k cut) and < 2**31, got {shorten(str(self.top_k))}")
        top_p = as_float32(self.top_p)
        if not 0 < top_p <= 1:
            rounded = f" ({top_p} as a float32)" if _rounded(self.top_p, top_p) else ""
            raise PipelineError(f"--top-p must be in (0, 1] (1: no nucleus cut), got {self.top_p}{rounded}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise PipelineError(f"--seed must be in [0, 2**63 - 1], got {shorten(str(self.seed))}")


def as_float32(value: float) -> float:
    """`value` as an export receives it (a float32): inf beyond float32's range, 0 below its smallest subnormal."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def _rounded(value: float, float32: float) -> bool:
    """Whether the float32 rounding changed the verdict-relevant value (0 or inf from a finite non-zero one)."""
    return math.isfinite(value) and value != 0 and (float32 == 0 or not math.isfinite(float32))
