"""README.md and docs/config.md: the config reference is the one the dataclasses generate, and the quick start runs
as written.

`python -m tests.test_readme --write` regenerates the config reference in docs/config.md.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline.helpers import plain_text, sentiment_csv

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CONFIG_REFERENCE = REPO / "docs" / "config.md"
_BLOCK = re.compile(r"(<!-- config-reference:start[^>]*-->\n)(.*?)(<!-- config-reference:end -->)", re.S)


def _reference() -> str:
    from pipeline.config import reference_markdown

    return reference_markdown()


def test_config_reference_is_generated_from_the_dataclasses():
    found = _BLOCK.search(CONFIG_REFERENCE.read_text(encoding="utf-8"))
    assert found, "docs/config.md has no config-reference block"
    assert found.group(2) == _reference(), "docs/config.md is stale: python -m tests.test_readme --write"


def test_readme_stays_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines; at most 300 (details go to docs/)"


def quick_start_commands() -> list[str]:
    """The `rnnpipe ...` lines of the README's quick start, comments removed."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.startswith("    rnnpipe ")]
    return [line.split("  #", 1)[0].strip() for line in lines]


@pytest.mark.slow
def test_quick_start_runs_as_written(tmp_path):
    """Each command exactly as the README prints it, on tiny data made here, with the task defaults."""
    commands = quick_start_commands()
    assert [c.split()[1] for c in commands] == ["init", "run", "predict", "init", "run", "generate"]
    sentiment_csv(tmp_path / "reviews.csv", n=200)
    plain_text(tmp_path / "corpus.txt", chars=20_000)
    rnnpipe = Path(sys.executable).with_name("rnnpipe")
    for command in commands:
        argv = shlex.split(command)
        result = subprocess.run([str(rnnpipe), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        assert result.stdout.strip(), command
    assert (tmp_path / "runs" / "reviews" / "export" / "model" / "1" / "saved_model.pb").exists()
    assert (tmp_path / "runs" / "corpus" / "metrics.json").exists()


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    text = CONFIG_REFERENCE.read_text(encoding="utf-8")
    CONFIG_REFERENCE.write_text(_BLOCK.sub(lambda m: m.group(1) + _reference() + m.group(3), text), encoding="utf-8")
