"""Soak test of an exported sentiment model: 10,000 calls with random unicode strings, no failure, bounded memory."""

import random
import resource

import numpy as np
import pytest
import tensorflow as tf

CALLS = 10_000
WARMUP = 1_000
# Growth allowed between call 1,000 and call 10,000 (ru_maxrss, in MiB): allocator noise, not a leak.
MEMORY_BOUND_MIB = 64


def random_text(rng: random.Random) -> str:
    length = rng.randint(0, 5000)
    # Mostly printable BMP text and spaces, with astral-plane characters (emoji) and lone combining marks.
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + [" "] * 20 + ["é", "ß", "文", "🎬", "😴", "\u0301", "\u200b"]
    return "".join(rng.choices(alphabet, k=length))


@pytest.mark.slow
def test_ten_thousand_random_unicode_predictions(sentiment_run):
    serve = tf.saved_model.load(str(sentiment_run[3])).signatures["serving_default"]
    rng = random.Random(0)
    peak_after_warmup = None
    for call in range(CALLS):
        out = serve(text=tf.constant([random_text(rng)]))
        probabilities = out["probabilities"].numpy()
        assert probabilities.shape == (1, 2) and np.isfinite(probabilities).all()
        if call + 1 == WARMUP:
            peak_after_warmup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - peak_after_warmup
    assert growth < MEMORY_BOUND_MIB, f"peak RSS grew {growth:.0f} MiB over {CALLS - WARMUP} calls"
