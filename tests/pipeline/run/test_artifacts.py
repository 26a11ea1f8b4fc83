import os

import pytest

from pipeline.run import artifacts


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


def test_files_are_created_with_the_users_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        artifacts.write_json(tmp_path / "m.json", {"a": 1})
        with artifacts.staged_path(tmp_path / "d") as tmp:
            tmp.mkdir()
            (tmp / "f").write_text("x")
    finally:
        os.umask(previous)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_flock_excludes_a_second_holder_until_released(tmp_path):
    lock = tmp_path / "x.lock"
    with artifacts.flock(lock) as handle:
        handle.write("mine")
        with pytest.raises(BlockingIOError, match="x.lock is locked"):
            with artifacts.flock(lock):
                pass
    with artifacts.flock(lock, wait=True):
        pass


def test_locked_tells_whether_the_lock_is_held_and_never_creates_its_file(tmp_path):
    lock = tmp_path / "worker.lock"
    assert not artifacts.locked(lock) and not lock.exists()
    with artifacts.flock(lock):
        assert artifacts.locked(lock) and artifacts.locked(lock)  # testing neither takes nor keeps it
    assert not artifacts.locked(lock)
    with artifacts.flock(lock):  # a holder that removes its file as it ends (tune's workers)
        lock.unlink()
        assert not artifacts.locked(lock) and not lock.exists()


def test_read_history_gives_one_row_per_epoch_the_last_written(tmp_path):
    history = tmp_path / "history.csv"
    assert artifacts.read_history(history) == []
    # A resumed run writes again the epoch its backup predates.
    history.write_text("epoch,loss\n0,3.0\n1,2.0\n1,1.5\n2,1.0\n", encoding="utf-8")
    assert [(r["epoch"], r["loss"]) for r in artifacts.read_history(history)] == [("0", "3.0"), ("1", "1.5"),
                                                                                   ("2", "1.0")]  # fmt: skip
