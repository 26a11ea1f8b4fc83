"""tf.distribute: two MultiWorkerMirroredStrategy workers on localhost train a tiny model together (CPU only)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import custom_layers  # noqa: F401
import pipeline.training.model  # noqa: F401  (registers the pooling layer for loading checkpoints)
from tests.pipeline.helpers import sentiment_csv, write_config


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_mirrored_two_local_workers(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = write_config(tmp_path / "mw.toml", "sentiment", data,
                          train={"epochs": 2, "strategy": "multi_worker_mirrored"})  # fmt: skip
    rnnpipe = str(Path(sys.executable).with_name("rnnpipe"))
    run_dir = tmp_path / "run"
    subprocess.run([rnnpipe, "tokenize", str(config), "--run-dir", str(run_dir)], check=True, capture_output=True,
                   timeout=300)  # fmt: skip
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = {
            **os.environ,
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
        }
        processes.append(subprocess.Popen([rnnpipe, "train", str(config), "--run-dir", str(run_dir)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
        assert "train: completed after 2 epoch(s)" in stdout
    model = keras.saving.load_model(run_dir / "checkpoints" / "best.keras")
    assert model.get_layer("rnn_0").forward_layer.__class__.__name__ == "LSTM"
    assert json.loads((run_dir / "train_state.json").read_text())["status"] == "completed"


def test_mirrored_strategy_trains_on_one_machine(tmp_path):
    from pipeline.config import load_config
    from pipeline.stages import tokenize, train

    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    config = load_config(write_config(tmp_path / "m.toml", "sentiment", data,
                                      train={"epochs": 1, "strategy": "mirrored"}), [])  # fmt: skip
    tokenize.run(config, tmp_path / "run")
    result = train.run(config, tmp_path / "run")
    assert result.status == "completed" and (tmp_path / "run" / "checkpoints" / "best.keras").exists()
