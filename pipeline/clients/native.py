"""Notices that native runtimes print straight to file descriptor 2, which Python's logging cannot silence.

The LiteRT interpreter announces its CPU delegate on stderr the first time a model runs in a process. A command
that promises one line on stderr for an error, and nothing otherwise, runs that first call inside `without_notices`:
the notice is dropped and anything else written meanwhile is written back, in order, when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

# Exact lines, as the runtimes print them.
NOTICES = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextlib.contextmanager
def without_notices() -> Iterator[None]:
    """Runs the block with file descriptor 2 going to a temporary file, then writes every line of it but NOTICES
    back to the real one (an exception in the block still reaches the caller, after them)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().splitlines(keepends=True) if line.rstrip(b"\r\n") not in NOTICES]
            if kept:
                os.write(2, b"".join(kept))
