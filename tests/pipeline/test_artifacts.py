import os

import pytest

from pipeline import artifacts
from pipeline.config import Config, DataConfig, replace
from pipeline.errors import RunDirError
from pipeline.rundir import open_run_dir


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "m.json"
    artifacts.write_json(target, {"a": 1})
    artifacts.write_json(target, {"a": 2})
    assert artifacts.read_json(target) == {"a": 2}
    assert os.listdir(target.parent) == ["m.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "m.json"
    artifacts.write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        artifacts.write_json(target, {"a": object()})
    assert artifacts.read_json(target) == {"a": 1}


def test_staged_path_renames_on_success_only(tmp_path):
    with artifacts.staged_path(tmp_path / "out") as tmp:
        tmp.mkdir()
        (tmp / "f").write_text("x")
    assert (tmp_path / "out" / "f").read_text() == "x"
    with pytest.raises(RuntimeError):
        with artifacts.staged_path(tmp_path / "other") as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert sorted(os.listdir(tmp_path)) == ["out"]
    with pytest.raises(FileExistsError):  # a directory is never replaced
        with artifacts.staged_path(tmp_path / "out") as tmp:
            tmp.mkdir()


def test_run_dir_refuses_another_task(tmp_path):
    config = Config(data=DataConfig(train="x"))
    open_run_dir(tmp_path / "run", config)
    assert (tmp_path / "run" / "config.toml").exists()
    with pytest.raises(RunDirError, match="holds a 'sentiment' run"):
        open_run_dir(tmp_path / "run", replace(config, task="next_char"))


def test_run_dir_logs_config_changes(tmp_path, caplog):
    config = Config(data=DataConfig(train="x"))
    open_run_dir(tmp_path, config)
    open_run_dir(tmp_path, replace(config, **{"model.units": 7}))
    assert "model.units: 256 -> 7" in caplog.text
