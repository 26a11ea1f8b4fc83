"""README.md and docs/config.md: the config reference is the one the dataclasses generate, and the quick start runs
as written.

`python -m tests.test_readme --write` regenerates the config reference in docs/config.md.
"""

import gzip
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.pipeline.helpers import NEGATIVE, POSITIVE, plain_text, sentiment_csv

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


def activation_line() -> str:
    """What the README's set-up tells a user to type in a new shell before the quick start."""
    setup = README.read_text(encoding="utf-8").split("## Set up", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"in a new one, `([^`]+)` first", setup)
    assert found, "the set-up section no longer says how to activate the environment in a new shell"
    return found.group(1)


def clean_shell(script: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """`script` in bash as a new shell would run it: the environment without the venv on PATH."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(cwd)), "LANG": "C.UTF-8"}
    for name in ("PYTHONPATH", "RNNPIPE_SHARED_DATA", "TMPDIR"):  # a worktree's code, the data, the temp folder
        if name in os.environ:
            env[name] = os.environ[name]
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_quick_start_runs_as_written_in_a_new_shell(tmp_path):
    """The set-up's activation line, then each quick-start command exactly as the README prints it, on tiny data made
    here, with the task defaults."""
    commands = quick_start_commands()
    assert [c.split()[1] for c in commands] == ["init", "run", "predict", "init", "init", "run", "generate"]
    sentiment_csv(tmp_path / "reviews.csv", n=200)
    vectors = "".join(f"{word} {' '.join(['0.1'] * 300)}\n" for word in POSITIVE + NEGATIVE)
    (tmp_path / "glove.6B.300d.txt.gz").write_bytes(gzip.compress(vectors.encode()))
    plain_text(tmp_path / "corpus.txt", chars=20_000)
    assert clean_shell("command -v rnnpipe", tmp_path).returncode != 0, "rnnpipe must not be on PATH before"
    for command in commands:
        script = f"cd {shlex.quote(str(REPO))} && {activation_line()} && cd {shlex.quote(str(tmp_path))} && {command}"
        result = clean_shell(script, tmp_path)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        assert result.stdout.strip(), command
    assert (tmp_path / "runs" / "reviews" / "export" / "model" / "1" / "saved_model.pb").exists()
    assert (tmp_path / "runs" / "corpus" / "metrics.json").exists()
    assert tomllib.loads((tmp_path / "reviews-glove.toml").read_text())["tokenize"]["pretrained_vectors"]


@pytest.mark.slow
def test_the_main_job_prints_plain_lines_when_piped(tmp_path, shared_data):
    """The README's main job, cut to seconds of training: piped to files, stdout holds only the stages' lines and
    neither stream holds a carriage return or an escape sequence."""
    setup = README.read_text(encoding="utf-8").split("## Set up", 1)[1]
    main_job = re.search(r"&& (rnnpipe run configs/\S+) --set data.manual_dir=\S+", setup)
    assert main_job, "the set-up no longer runs the main job with rnnpipe run"
    command = (f"{main_job.group(1)} --set data.manual_dir={shlex.quote(str(shared_data / 'tiny_shakespeare'))} "
               f"--set data.data_dir=tfds --set train.max_seconds=5 --set model.units=32 --run-dir run")  # fmt: skip
    script = f"cd {shlex.quote(str(REPO))} && {activation_line()} && cd {shlex.quote(str(tmp_path))} && {command}"
    result = clean_shell(script.replace("configs/", f"{REPO}/configs/"), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for stream in (result.stdout, result.stderr):
        assert "\r" not in stream and "\x1b" not in stream, stream[-2000:]
    stage_line = re.compile(r"(tokenize|train|evaluate): |exported: |Epoch \d+/\d+$|\d+/\d+ - \d+s - ")
    assert all(stage_line.match(line) for line in result.stdout.splitlines()), result.stdout
    assert "TFDS prepared 'tiny_shakespeare'" in result.stdout.splitlines()[0]
    assert result.stderr == "", result.stderr[-2000:]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    text = CONFIG_REFERENCE.read_text(encoding="utf-8")
    CONFIG_REFERENCE.write_text(_BLOCK.sub(lambda m: m.group(1) + _reference() + m.group(3), text), encoding="utf-8")
