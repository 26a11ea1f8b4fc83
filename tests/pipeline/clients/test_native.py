"""Native runtimes' notices on file descriptor 2: dropped, and everything else written back in order."""

import os

import pytest

from pipeline.clients import native


def test_the_notice_is_dropped_and_other_lines_are_written_back_in_order(capfd):
    with native.without_notices():
        os.write(2, b"first\n" + native.NOTICES[0] + b"\nsecond\n")
    assert capfd.readouterr().err == "first\nsecond\n"


def test_an_exception_in_the_block_still_gives_back_stderr_and_its_lines(capfd):
    with pytest.raises(ValueError, match="bad"), native.without_notices():
        os.write(2, native.NOTICES[0] + b"\nkept\n")
        raise ValueError("bad")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "kept\nafter\n"
