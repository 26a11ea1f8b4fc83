"""The layout policy of the fused kernels: how a call's work is arranged on the CPU. It never changes the numbers.

Two decisions per call, made from the static shapes (the tests check that every choice computes the same
outputs and gradients as every other, and as Keras):

1. Batch parts (`batch_parts`): 1 or 2 independent slices of the batch, run side by side.
   One recurrence cannot keep two cores busy when one step's matmul is not large: the per-step product is split
   across threads that mostly wait for each other and the gate ops run one at a time. Two halves of the batch,
   which TensorFlow runs concurrently, fill both cores. Rule: split under XLA on a machine with at least two
   cores when batch x units x gate units < `SPLIT_BELOW_STEP_WORK` multiply-adds (the batch taken as
   `ASSUMED_BATCH` when only known at run time) and each slice keeps at least `MIN_PART` rows.

2. Weights on the left (`weights_left`), per loop: compute the per-step product as U^T h^T instead of h U.
   The CPU matmul repacks its right-hand operand on every call; in h U that operand is the whole recurrent kernel,
   every step, in U^T h^T it is the small state. Below a size the transposes around the product cost more than the
   repacking saves. Rule: from `WEIGHTS_LEFT_FROM[cell][loop]` recurrent weights (float32 values) on, XLA only:

   | cell       | "inference"                  | "forward" (training forward loop) | "backward" |
   |------------|------------------------------|-----------------------------------|------------|
   | lstm       | 2**18 (1 MiB; feature-major) | 2**20 (4 MiB)                     | 2**18      |
   | simple_rnn | (its forward loop)           | 2**20                             | 2**18      |
   | gru        | 2**18 (1 MiB; feature-major) | 2**20                             | 2**18      |

   LSTM and GRU inference have their own kernels, feature-major throughout (states (units, batch)); below the
   threshold they run the training forward loop with h U. SimpleRNN's inference is its training forward loop,
   which also makes its outputs in one pass from the backward threshold on (see `simple_rnn_kernel._forward`).

Each threshold is where the two layouts cross in the benchmark model (`benchmarks/rnn_throughput.py`) on 2-core hosts;
the measurements, per host, are in benchmarks/THROUGHPUT_NOTES.md. A caller may override either
decision (`batch_parts`, `feature_major` arguments of the kernels), which the tests use to compare layouts.
"""

import os
from typing import NamedTuple

SPLIT_BELOW_STEP_WORK = 2**29
ASSUMED_BATCH = 64  # for the rule when the batch size is only known at run time
MIN_PART = 8

LOOPS = ("inference", "forward", "backward")
WEIGHTS_LEFT_FROM = {
    "lstm": {"inference": 2**18, "forward": 2**20, "backward": 2**18},
    "simple_rnn": {"inference": 2**20, "forward": 2**20, "backward": 2**18},
    "gru": {"inference": 2**18, "forward": 2**20, "backward": 2**18},
}


class Layout(NamedTuple):
    parts: int  # independent slices of the batch
    loops: dict  # {loop: whether its per-step product has the weights on the left}


def batch_parts(x, recurrent_kernel, jit_compile):
    """1 or 2: how many independent slices of the batch to run side by side (decision 1 above)."""
    if not jit_compile or (os.cpu_count() or 1) < 2:
        return 1
    batch = x.shape[0]
    if batch is not None and batch < 2 * MIN_PART:
        return 1
    units, gate_units = recurrent_kernel.shape
    if units is None or gate_units is None:
        return 1
    return 2 if (batch or ASSUMED_BATCH) * units * gate_units < SPLIT_BELOW_STEP_WORK else 1


def weights_left(cell, recurrent_kernel, loop):
    """Whether `loop` of `cell` computes its per-step product as U^T h^T (decision 2 above), before the XLA check."""
    units, gate_units = recurrent_kernel.shape
    if units is None or gate_units is None:
        return False
    return units * gate_units >= WEIGHTS_LEFT_FROM[cell][loop]


def plan(cell, x, recurrent_kernel, jit_compile, parts=None, feature_major=None):
    """The `Layout` of one call: the caller's choices where given, the rules above otherwise.

    Weights on the left are XLA's: without it every loop keeps h U, whatever was asked.
    """
    parts = parts or batch_parts(x, recurrent_kernel, jit_compile)
    loops = {}
    for loop in LOOPS:
        chosen = weights_left(cell, recurrent_kernel, loop) if feature_major is None else feature_major
        loops[loop] = bool(chosen) and bool(jit_compile)
    return Layout(parts, loops)
