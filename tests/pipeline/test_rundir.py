"""The run directory: one task per folder, the recorded config, and the exclusive lock of a writing stage."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline import rundir
from pipeline.config import Config, DataConfig, replace
from pipeline.errors import RunDirError


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


def test_a_second_process_is_refused_with_the_holder_named(tmp_path):
    holder = textwrap.dedent(f"""
        import sys, time
        from pipeline import rundir
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
