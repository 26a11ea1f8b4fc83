"""The run directory: one task per folder, the recorded config, and the exclusive lock of a writing stage."""

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.config import Config, DataConfig, load_config, replace
from pipeline.errors import RunDirError
from pipeline.run import rundir
from pipeline.stages import tokenize
from tests.pipeline.helpers import sentiment_csv, write_config


def config():
    return Config(data=DataConfig(train="x"))


def test_run_dir_refuses_another_task(tmp_path):
    with rundir.opened(tmp_path / "run", config()):
        pass
    assert (tmp_path / "run" / "config.toml").exists()
    with pytest.raises(RunDirError, match="holds a 'sentiment' run"):
        with rundir.opened(tmp_path / "run", replace(config(), task="next_char")):
            pass


def test_run_dir_logs_config_changes(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with rundir.opened(tmp_path, config()):
        pass
    with rundir.opened(tmp_path, replace(config(), **{"model.units": 7})):
        pass
    assert "model.units: 256 -> 7" in caplog.text


def test_an_error_inside_the_run_is_its_own_not_the_lock_s(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such input"):
        with rundir.opened(tmp_path / "run", config()):
            raise FileNotFoundError("no such input")


def test_a_second_process_is_refused_with_the_holder_named(tmp_path):
    holder = textwrap.dedent(f"""
        import sys, time
        from pipeline.run import rundir
        from pipeline.config import Config, DataConfig
        with rundir.opened({str(tmp_path)!r}, Config(data=DataConfig(train="x"))):
            print("locked", flush=True)
            time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"is in use by pid {process.pid} on .*since") as info:
            with rundir.opened(tmp_path, config()):
                pass
        assert "\n" not in str(info.value)
    finally:
        process.kill()
        process.wait()
    # The kernel released the killed holder's lock; its lock file is simply taken over.
    with rundir.opened(tmp_path, config()) as rd:
        assert json.loads(rd.lock_file.read_text())["pid"] == os.getpid()


def test_the_same_process_reuses_its_open_run_dir(tmp_path):
    with rundir.opened(tmp_path, config()) as rd:
        with rundir.opened(rd, config()) as again:
            assert again is rd


def _rnnpipe(*args):
    return [str(Path(sys.executable).with_name("rnnpipe")), *map(str, args)]


@pytest.mark.slow
def test_two_concurrent_trains_on_one_folder(tmp_path):
    """While one `rnnpipe train` holds a folder, a second exits at once with one line naming the holder (pid, host,
    start time) and touches nothing; after the holder is killed, the same command resumes and completes."""
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 6, "patience": 0})
    run_dir = tmp_path / "run"
    tokenize.run(load_config(config), run_dir)
    first = subprocess.Popen(_rnnpipe("train", config, "--run-dir", run_dir), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and first.poll() is None:
            if (run_dir / "history.csv").exists() and (run_dir / "checkpoints" / "backup").exists():
                break
            time.sleep(0.1)
        assert first.poll() is None, "training ended before the second process could try; make it longer"
        # Stopped, the first process cannot finish while the second one tries: the second must not wait for it.
        first.send_signal(signal.SIGSTOP)
        history = (run_dir / "history.csv").read_bytes()
        started = time.monotonic()
        second = subprocess.run(_rnnpipe("train", config, "--run-dir", run_dir), capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        assert second.returncode == 1 and second.stdout == ""
        lines = second.stderr.splitlines()
        assert len(lines) == 1, second.stderr
        assert re.fullmatch(rf"error: run directory {re.escape(str(run_dir))} is in use by pid {first.pid} on "
                            rf"{re.escape(socket.gethostname())} \(rnnpipe train .*, since \d{{4}}-\d\d-\d\dT[^)]+\); "
                            r"wait for it to finish or choose another --run-dir", lines[0]), lines[0]  # fmt: skip
        assert time.monotonic() - started < 60
        assert (run_dir / "history.csv").read_bytes() == history, "the refused process wrote nothing"
    finally:
        first.kill()
        first.wait()

    resumed = subprocess.run(_rnnpipe("train", config, "--run-dir", run_dir), capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "train: completed after 6 epoch(s)" in resumed.stdout
    rows = (run_dir / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch") and sum(row.startswith("epoch") for row in rows) == 1
    assert json.loads((run_dir / "train_state.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_every_file_of_a_run_directory_is_created_with_the_umask(tmp_path):
    """A serving account or a colleague reads what the user's umask lets them read: no file is 0600, whichever
    stage (or library: Keras, TensorBoard, the SavedModel writer, matplotlib) wrote it."""
    from click.testing import CliRunner

    from pipeline.cli import main

    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 1})
    previous = os.umask(0o027)  # not the usual 022, so that a hard-coded 0644 shows too
    try:
        result = CliRunner().invoke(main, ["run", str(config), "--run-dir", str(tmp_path / "run")])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.stderr
    modes = {str(path.relative_to(tmp_path)): path.stat().st_mode & 0o777 for path in (tmp_path / "run").rglob("*")}
    assert {"run/config.toml", "run/stages.json", "run/train_state.json", "run/metrics.json",
            "run/export/model/1/saved_model.pb"} <= set(modes)  # fmt: skip
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o750 if (tmp_path / name).is_dir() else 0o640)}  # fmt: skip
    assert not wrong


@contextlib.contextmanager
def read_only(folder):
    """`folder` made read-only for this process: by its mode, or (root ignores modes) by the immutable attribute."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    else:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i: cannot make a folder read-only")
        undo = ["chattr", "-i", str(folder)]
    try:
        yield folder
    finally:
        subprocess.run(undo, check=True)


def test_a_read_only_run_directory_is_one_clean_line(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main

    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "c.toml", "sentiment", data, train={"epochs": 1})
    run_dir = tmp_path / "run"
    assert CliRunner().invoke(main, ["tokenize", str(config), "--run-dir", str(run_dir)]).exit_code == 0
    before = sorted(p.name for p in run_dir.iterdir())
    with read_only(run_dir):
        result = CliRunner().invoke(main, ["train", str(config), "--run-dir", str(run_dir)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"error: run directory {run_dir} is read-only for this user; every stage records its "
        f"state there (choose another --run-dir, or copy the folder somewhere writable)\n"
    )
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_a_command_that_fails_before_any_work_leaves_no_new_run_directory(tmp_path):
    run_dir = tmp_path / "runs" / "new"
    with pytest.raises(RuntimeError), rundir.opened(run_dir, config()):
        raise RuntimeError("the stage failed before writing anything")
    assert not (tmp_path / "runs").exists(), "the folders made for it are gone"

    (tmp_path / "mine").mkdir()
    with pytest.raises(RuntimeError), rundir.opened(tmp_path / "mine", config()):
        raise RuntimeError("a folder that existed before is the user's")
    assert (tmp_path / "mine").is_dir()

    with pytest.raises(RuntimeError), rundir.opened(run_dir, config()) as rd:
        (rd.path / "vocabulary.json").write_text("[]")
        raise RuntimeError("failed after writing a result")
    assert (run_dir / "vocabulary.json").exists() and (run_dir / "config.toml").exists(), "results are kept"
