"""The exported SavedModels: signatures, raw-string inputs, no dependency on our code, warm-up records."""

import json
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from pipeline.config import replace
from pipeline.data import text
from pipeline.errors import RunDirError
from pipeline.export import warmup
from pipeline.stages import export
from tests.isolation import BLOCK_OUR_CODE

WITHOUT_OUR_CODE = BLOCK_OUR_CODE + textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    loaded = tf.saved_model.load(sys.argv[1])
    result = {}
    texts = ["", "great film 🎬🍿", "x" * 10_000, "na\\xefve".encode("latin-1")] + json.loads(sys.argv[2])
    if "next_char_probabilities" in loaded.signatures:
        out = loaded.signatures["serving_default"](prompt=tf.constant(texts[:4]), length=tf.constant(25),
                                                   temperature=tf.constant(0.8))
        result["generated"] = [t.decode("utf-8") for t in out["text"].numpy()]
        seeded = [loaded.signatures["generate_seeded"](prompt=tf.constant(["to be"]), length=tf.constant(30),
                  temperature=tf.constant(1.0), seed=tf.constant(5, tf.int64))["text"].numpy()[0].decode()
                  for _ in range(2)]
        result["seeded"] = seeded
        probabilities = loaded.signatures["next_char_probabilities"](text=tf.constant(texts[:4]))["probabilities"]
        result["probability_sums"] = probabilities.numpy().sum(axis=1).tolist()
    else:
        out = loaded.signatures["serving_default"](text=tf.constant(texts))
        result["probabilities"] = out["probabilities"].numpy().tolist()
        result["label"] = [t.decode() for t in out["label"].numpy()]
    print(json.dumps(result))
    """
)


def run_without_our_code(export_dir, texts=()):
    result = subprocess.run([sys.executable, "-c", WITHOUT_OUR_CODE, str(export_dir), json.dumps(list(texts))],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sentiment_export_serves_raw_strings_without_our_code(sentiment_run):
    config, run_dir, metrics, export_dir = sentiment_run
    assert export_dir == run_dir / "export" / "model" / "1"
    from pipeline import tasks

    splits = tasks.get(config.task).load_splits(config)
    test = [(x["text"].numpy().decode(), x["label"].numpy().decode()) for x in splits.test]
    out = run_without_our_code(export_dir, [t for t, _ in test])
    probabilities = np.array(out["probabilities"])
    assert probabilities.shape == (4 + len(test), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    served = out["label"][4:]
    accuracy = np.mean([label == truth for label, (_, truth) in zip(served, test)])
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-9)


def test_a_request_is_classified_in_passes_of_bounded_size_with_the_same_results(sentiment_run, tmp_path,
                                                                                   monkeypatch):  # fmt: skip
    config, run_dir, _, export_dir = sentiment_run
    copy = tmp_path / "run"  # the shared run directory keeps its exports as they are
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("export"))
    # Three texts a pass: eight texts of different lengths take three passes, the last one short.
    monkeypatch.setattr(text, "INFERENCE_WORDS", 3 * config.tokenize.sequence_length)
    passes = export.run(config, copy).path
    texts = ["", "great film", "dull " * 300, "a wonderful moving film", "awful", "ok", "great " * 5, "plot"]
    whole = tf.saved_model.load(str(export_dir)).signatures["serving_default"](text=tf.constant(texts))
    split = tf.saved_model.load(str(passes)).signatures["serving_default"]
    in_passes = split(text=tf.constant(texts))
    np.testing.assert_allclose(in_passes["probabilities"], whole["probabilities"], atol=1e-6)
    assert in_passes["label"].numpy().tolist() == whole["label"].numpy().tolist()
    assert split(text=tf.constant([], tf.string))["probabilities"].shape == (0, 2)


def test_next_char_export_generates_in_graph_without_our_code(next_char_run):
    _, _, _, export_dir = next_char_run
    out = run_without_our_code(export_dir)
    assert [len(t) for t in out["generated"]] == [25] * 4
    assert "\ufffd" not in "".join(out["generated"]), "the OOV entry is never sampled"
    assert out["seeded"][0] == out["seeded"][1], "same seed, same text"
    np.testing.assert_allclose(out["probability_sums"], 1, atol=1e-5)


def test_saved_model_cli_lists_the_signatures(sentiment_run):
    """(The next_char signatures: tests/pipeline/test_generation.py.)"""
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir"]
    sentiment = subprocess.run(cli + [str(sentiment_run[3])], capture_output=True, text=True, timeout=300).stdout
    assert "signature_def['serving_default']" in sentiment
    for line in ("inputs['text'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)",
                 "outputs['label'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)",
                 "outputs['probabilities'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 2)"):  # fmt: skip
        assert line in sentiment, sentiment


def test_export_never_overwrites_a_version_and_is_not_repeated(sentiment_run):
    config, run_dir, _, export_dir = sentiment_run
    with pytest.raises(RunDirError, match="never overwritten"):
        export.run(replace(config, **{"export.version": 1}), run_dir)
    again = export.run(config, run_dir)
    assert again.skipped and again.path == export_dir, "an up-to-date export is not written again"
    second = export.run(replace(config, **{"export.warmup_requests": False}), run_dir)
    assert not second.skipped and second.path.name == "2" and (export_dir / "saved_model.pb").exists()
    assert not [p for p in second.path.parent.iterdir() if p.name.startswith(".")], "no temporary folder left"


def test_warmup_records_parse(sentiment_run):
    path = sentiment_run[3] / "assets.extra" / "tf_serving_warmup_requests"
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    assert len(records) == 1
    log = warmup.parse_prediction_log(records[0])
    request = log.predict_log.request
    assert request.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(request.inputs["text"]).tolist()[0] == b"a wonderful film"
    try:  # the official classes, when tensorflow-serving-api is importable (pip install --no-deps ...)
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
        return
    official = prediction_log_pb2.PredictionLog.FromString(records[0])
    assert official.predict_log.request.model_spec.name == "model"
    assert official.SerializeToString() == records[0]


@pytest.mark.slow
def test_export_of_a_model_with_dropout_bidirectional_and_pooling(tmp_path):
    """Recurrent dropout layers read their seed-generator state even in inference; the export must carry it."""
    from pipeline.config import load_config
    from pipeline.stages import tokenize, train
    from tests.pipeline.helpers import sentiment_csv, write_config

    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    model = {"dropout": 0.3, "bidirectional": True, "pooling": "max", "output_dropout": 0.3}
    config = load_config(write_config(tmp_path / "c.toml", "sentiment", data, model=model, train={"epochs": 1}), [])
    tokenize.run(config, tmp_path / "run")
    train.run(config, tmp_path / "run")
    out = run_without_our_code(export.run(config, tmp_path / "run").path, ["superb film"])
    assert np.array(out["probabilities"]).shape == (5, 2)


@pytest.mark.slow
def test_ensemble_export_serves_the_mean_of_its_members(tmp_path):
    import keras

    from pipeline.config import load_config
    from pipeline.data.text import Vocabulary, encode_words, lookup_table, ngram_table
    from pipeline.stages import tokenize, train
    from tests.pipeline.helpers import sentiment_csv, write_config

    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    model = {"ensemble": 2, "bidirectional": True, "pooling": "max"}
    train_keys = {"epochs": 2, "calibration": "none"}  # the members' mean itself, not a calibrated one
    config = load_config(write_config(tmp_path / "c.toml", "sentiment", data, model=model, train=train_keys), [])
    tokenize.run(config, tmp_path / "run")
    train.run(config, tmp_path / "run")
    texts = ["superb film", "dull boring plot", "the acting was fine"]
    out = run_without_our_code(export.run(config, tmp_path / "run").path, texts)
    vocab = Vocabulary.load(tmp_path / "run" / "vocabulary.json")
    ids = encode_words(tf.constant(texts), vocab, lookup_table(vocab), ngram_table(vocab))
    members = [keras.saving.load_model(tmp_path / "run" / "members" / str(k) / "checkpoints" / "best.keras")
               for k in range(2)]  # fmt: skip
    expected = np.mean([tf.nn.softmax(m(ids, training=False)).numpy() for m in members], axis=0)
    np.testing.assert_allclose(np.array(out["probabilities"])[4:], expected, atol=1e-5)


KILLED_EXPORT = textwrap.dedent(
    """
    import os, signal, sys
    import pipeline.stages.export
    from pipeline.cli import main

    save = pipeline.stages.export.tf.saved_model.save

    def save_then_die(*args, **kwargs):  # the SavedModel is written, the rename into place has not happened yet
        save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    pipeline.stages.export.tf.saved_model.save = save_then_die
    main(sys.argv[1:])
    """
)


@pytest.mark.slow
def test_export_killed_by_sigkill_then_export_again(sentiment_run, tmp_path):
    """A SIGKILL during export leaves a hidden temporary folder; the next export removes it and writes one clean
    version."""
    from click.testing import CliRunner

    from pipeline.cli import main

    config, trained, _, _ = sentiment_run
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)  # a run directory is self-contained; the shared one stays as it is
    argv = ["export", str(trained.parent / "sentiment.toml"), "--run-dir", str(run_dir), "--set", "export.name=killed"]
    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORT, *argv], capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    base = run_dir / "export" / "killed"
    assert [p.name for p in base.iterdir() if p.name.startswith(".1.") and p.name.endswith(".tmp")], "nothing left?"
    assert not (base / "1").exists()

    again = CliRunner().invoke(main, argv)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.strip() == f"exported: {base / '1'}"
    assert sorted(p.name for p in base.iterdir()) == ["1"], "one new version, no leftovers"
    assert (base / "1" / "saved_model.pb").exists() and (base / "1" / "variables").is_dir()
    assert json.loads((run_dir / "stages.json").read_text())["export"]["path"] == "export/killed/1"
