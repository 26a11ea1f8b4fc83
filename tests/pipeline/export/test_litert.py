"""LiteRT exports of every kind of model the pipeline trains: built-in ops only, and through the LiteRT interpreter,
in a process that cannot import our code, Keras or TensorFlow, the same outputs as Keras and as the SavedModel."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("ai_edge_litert.interpreter", reason="needs the litert extra (ai-edge-litert)")

from pipeline.clients import litert_client
from pipeline.config import ModelConfig
from pipeline.data.text import Vocabulary, build_word_vocabulary, encode_chars, encode_words, lookup_table, ngram_table
from pipeline.export import litert
from pipeline.run.rundir import RunDir
from pipeline.stages.export import served_model
from pipeline.training.model import build_classifier, build_language_model
from tests.isolation import BLOCK_OUR_CODE
from tests.pipeline.helpers import FILLER, NEGATIVE, POSITIVE

TOLERANCE = 1e-5

# The client runs alone, as on a device: no rnnpipe, no Keras and no TensorFlow; it is loaded from its file.
CLIENT_PROCESS = BLOCK_OUR_CODE + textwrap.dedent(
    """
    import importlib.util, json, sys
    sys.modules["tensorflow"] = None
    try:
        import tensorflow
    except ImportError:
        pass
    else:
        raise SystemExit("tensorflow is importable: the block does not work")
    spec = importlib.util.spec_from_file_location("litert_client", sys.argv[1])
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)

    models, results = {}, []
    for request in json.loads(sys.stdin.read()):
        if request["export"] not in models:
            models[request["export"]] = client.LiteRTModel(request["export"])
        model, op = models[request["export"]], request["op"]
        if op == "probabilities":
            texts = [bytes.fromhex(t) for t in request["texts_hex"]]
            results.append(model.probabilities(texts).tolist())
        elif op == "predict":
            results.append(model.predict(request["texts"]))
        elif op == "read_prompt":
            out = model.read_prompt(request["prompts"])
            results.append({"probabilities": out["probabilities"].tolist(), "state": out["state"].tolist()})
        elif op == "step_through":
            ids, state, probabilities = model.tokenizer.encode_chars(request["text"]), model.initial_state(), []
            for i in ids:
                out = model.step([i], state)
                state = out["state"]
                probabilities.append(out["probabilities"][0].tolist())
            results.append({"probabilities": probabilities, "state": state.tolist()})
        elif op == "generate":
            results.append(model.generate(request["prompt"], request["length"], request["temperature"],
                                          request["seed"]))
        elif op == "description":
            results.append(model.description)
    print(json.dumps(results))
    """
)


def run_client(requests):
    result = subprocess.run([sys.executable, "-c", CLIENT_PROCESS, litert_client.__file__], input=json.dumps(requests),
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def randomize(model, seed=0):
    """Weights far from the initialization, so that outputs spread out and a wrong mask or state shows."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()])


SENTIMENT_MODELS = {
    # The sentiment defaults, which configs/mr_lstm.toml, cr_lstm.toml and imdb_lstm.toml use unchanged.
    "bilstm_max": dict(bidirectional=True, pooling="max", dropout=0.5, output_dropout=0.5),
    "bilstm_max_ensemble": dict(bidirectional=True, pooling="max", dropout=0.5, output_dropout=0.5, ensemble=2),
    "bilstm_last": {"bidirectional": True},
    "stacked_simple_rnn_mean": {"cell": "simple_rnn", "layers": 2, "pooling": "mean", "recurrent_dropout": 0.2},
    "stacked_bilstm_last": {"layers": 2, "bidirectional": True},
}
NEXT_CHAR_MODELS = {
    "lstm": {"output_dropout": 0.1},  # configs/shakespeare_char_lstm.toml
    "stacked_simple_rnn": {"cell": "simple_rnn", "layers": 2},
    "lstm_peephole_layer_norm": {"peephole": True, "layer_norm": True},  # steps the cell, which converts too
}
CHARS = "\n !',.:;?abcdefghijklmnopqrstuvwxyzT"
HELD_OUT_TEXT = "to be, or not to be: that is the question;\nwhether 'tis nobler in the mind"
PROMPTS = ["to be", "", "T", "whether §tis nobler\u00e9", HELD_OUT_TEXT]


def sentiment_texts():
    rng = np.random.default_rng(5)
    words = POSITIVE + NEGATIVE + FILLER
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 15))) for _ in range(12)]
    texts += ["", "!!!", "A WONDERFUL, Superb film<br />really.", "unknown words only", "great " * 30,
              "na\u00efve caf\u00e9 \U0001f3ac dull"]  # fmt: skip
    return [t.encode("utf-8") for t in texts] + [b"\xff\xfe dull \xc3 film"]


@pytest.fixture(scope="module")
def word_vocab():
    words = POSITIVE + NEGATIVE + FILLER
    return build_word_vocabulary([tf.constant(words)], 100, "lower_and_strip_punctuation", 12)


@pytest.fixture(scope="module")
def char_vocab():
    return Vocabulary("char", ("[UNK]",) + tuple(CHARS))


@pytest.fixture(scope="module")
def sentiment_exports(tmp_path_factory, word_vocab):
    exports = {}
    for seed, (name, options) in enumerate(SENTIMENT_MODELS.items()):
        model = build_classifier(ModelConfig(embedding_dim=6, units=5, **options), word_vocab.size, 3, seed)
        randomize(model, seed)
        path = litert.export_litert(model, "sentiment", word_vocab, ("neg", "neu", "pos"),
                                    tmp_path_factory.mktemp(name) / "litert")  # fmt: skip
        exports[name] = (model, path)
    return exports


@pytest.fixture(scope="module")
def next_char_exports(tmp_path_factory, char_vocab):
    exports = {}
    for seed, (name, options) in enumerate(NEXT_CHAR_MODELS.items()):
        model = build_language_model(ModelConfig(embedding_dim=6, units=7, **options), char_vocab.size, seed=seed)
        randomize(model, seed)
        exports[name] = (model, litert.export_litert(model, "next_char", char_vocab, (),
                                                     tmp_path_factory.mktemp(name) / "litert"))  # fmt: skip
    return exports


@pytest.mark.slow
def test_every_sentiment_model_matches_keras_through_the_litert_interpreter(sentiment_exports, word_vocab):
    texts = sentiment_texts()
    names = list(sentiment_exports)
    results = run_client([{"export": str(sentiment_exports[n][1]), "op": "probabilities",
                           "texts_hex": [t.hex() for t in texts]} for n in names])  # fmt: skip
    ids = encode_words(tf.constant(texts), word_vocab, lookup_table(word_vocab))
    for name, got in zip(names, results):
        expected = tf.nn.softmax(sentiment_exports[name][0](ids, training=False)).numpy()
        assert expected.std() > 0.05, "the outputs spread out, so that the comparison means something"
        np.testing.assert_allclose(np.array(got), expected, atol=TOLERANCE, rtol=0, err_msg=name)


@pytest.mark.slow
def test_a_subword_model_matches_keras_through_the_litert_interpreter(tmp_path):
    words = POSITIVE + NEGATIVE + FILLER
    vocab = build_word_vocabulary([tf.constant(words)], 100, "lower_and_strip_punctuation", 12, 1, (3, 4, 5), 500, 6)
    assert vocab.ngrams, "the fixture's words share n-grams"
    config = ModelConfig(embedding_dim=6, units=5, **SENTIMENT_MODELS["bilstm_max"])
    model = build_classifier(config, vocab.embedding_rows, 3, seed=3, word_width=vocab.word_width)
    randomize(model, 3)
    path = litert.export_litert(model, "sentiment", vocab, ("neg", "neu", "pos"), tmp_path / "litert")
    texts = sentiment_texts() + [b"wonderfully dullest unknowable", b"x" * 5000]
    (got,) = run_client([{"export": str(path), "op": "probabilities", "texts_hex": [t.hex() for t in texts]}])
    ids = encode_words(tf.constant(texts), vocab, lookup_table(vocab), ngram_table(vocab))
    expected = tf.nn.softmax(model(ids, training=False)).numpy()
    assert expected.std() > 0.05, "the outputs spread out, so that the comparison means something"
    np.testing.assert_allclose(np.array(got), expected, atol=TOLERANCE, rtol=0)


@pytest.mark.slow
def test_every_next_char_model_matches_keras_through_the_litert_interpreter(next_char_exports, char_vocab):
    names = list(next_char_exports)
    requests = []
    for name in names:
        export = str(next_char_exports[name][1])
        requests += [{"export": export, "op": "read_prompt", "prompts": PROMPTS},
                     {"export": export, "op": "step_through", "text": HELD_OUT_TEXT}]  # fmt: skip
    results = run_client(requests)
    table = lookup_table(char_vocab)
    prompt_ids = encode_chars(tf.constant([p or "\n" for p in PROMPTS]), table)
    text_ids = encode_chars(tf.constant([HELD_OUT_TEXT]), table).to_tensor()
    for index, name in enumerate(names):
        model = next_char_exports[name][0]
        read, stepped = results[2 * index], results[2 * index + 1]
        lengths = prompt_ids.row_lengths().numpy()
        logits = model(prompt_ids.to_tensor(), training=False).numpy()[np.arange(len(PROMPTS)), lengths - 1]
        np.testing.assert_allclose(read["probabilities"], tf.nn.softmax(logits).numpy(), atol=TOLERANCE, rtol=0,
                                   err_msg=f"{name}: read_prompt")  # fmt: skip
        expected = tf.nn.softmax(model(text_ids, training=False)[0]).numpy()
        np.testing.assert_allclose(stepped["probabilities"], expected, atol=TOLERANCE, rtol=0,
                                   err_msg=f"{name}: step")  # fmt: skip
        # Reading the held-out text at once or character by character ends in the same state.
        np.testing.assert_allclose(read["state"][-1], stepped["state"][0], atol=1e-6, rtol=0, err_msg=name)


def test_exports_use_builtin_ops_and_describe_their_signatures(sentiment_exports, next_char_exports):
    sentiment = sentiment_exports["bilstm_max_ensemble"][1]
    next_char = next_char_exports["stacked_simple_rnn"][1]
    for path in (sentiment, next_char):
        assert sorted(p.name for p in path.iterdir()) == ["litert.json", "model.tflite", "vocabulary.json"]
        assert "WHILE" in litert.builtin_ops((path / "model.tflite").read_bytes())
    description = json.loads((sentiment / "litert.json").read_text(encoding="utf-8"))
    assert description["class_names"] == ["neg", "neu", "pos"]
    signature = description["signatures"]["serving_default"]
    assert {k: (v["dtype"], v["shape"]) for k, v in signature["inputs"].items()} == {"tokens": ("int32", [-1, -1])}
    assert {k: (v["dtype"], v["shape"]) for k, v in signature["outputs"].items()} == {
        "probabilities": ("float32", [-1, 3])
    }
    assert description["tokenization"]["lowercase"]["A"] == "a"
    description = json.loads((next_char / "litert.json").read_text(encoding="utf-8"))
    assert description["state"]["size"] == 14
    assert [(s["layer"], s["name"], s["offset"]) for s in description["state"]["layout"]] == [(0, "h", 0), (1, "h", 7)]
    step = description["signatures"]["step"]
    assert {k: v["shape"] for k, v in step["inputs"].items()} == {"char_id": [-1], "state": [-1, 14]}
    assert {k: v["shape"] for k, v in step["outputs"].items()} == {
        "logits": [-1, len(CHARS) + 1], "probabilities": [-1, len(CHARS) + 1], "state": [-1, 14]}  # fmt: skip
    assert set(description["signatures"]["read_prompt"]["inputs"]) == {"char_ids", "lengths", "state"}


@pytest.mark.slow
def test_dynamic_range_quantization_shrinks_the_model_and_stays_close(tmp_path, word_vocab):
    model = build_classifier(ModelConfig(embedding_dim=32, units=32, bidirectional=True), word_vocab.size, 2)
    plain = litert.export_litert(model, "sentiment", word_vocab, ("neg", "pos"), tmp_path / "float")
    quantized = litert.export_litert(model, "sentiment", word_vocab, ("neg", "pos"), tmp_path / "int8", quantize=True)
    assert json.loads((quantized / "litert.json").read_text())["quantization"] == "dynamic_range"
    size = {p: (p / "model.tflite").stat().st_size for p in (plain, quantized)}
    assert size[quantized] < 0.6 * size[plain], size
    texts = [t.decode("utf-8", "replace") for t in sentiment_texts()]
    float_out, int8_out = (np.array(litert_client.LiteRTModel(p).probabilities(texts)) for p in (plain, quantized))
    assert np.abs(float_out - int8_out).max() < 0.02


def test_export_refuses_an_existing_folder_and_a_model_that_does_not_convert(tmp_path, word_vocab, char_vocab):
    model = build_classifier(ModelConfig(embedding_dim=4, units=3), word_vocab.size, 2)
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="never overwritten"):
        litert.export_litert(model, "sentiment", word_vocab, ("neg", "pos"), tmp_path / "taken")
    with pytest.raises(ValueError, match="word-level vocabulary"):
        litert.export_litert(model, "sentiment", char_vocab, ("neg", "pos"), tmp_path / "a")
    # A sentiment LSTM with peephole connections runs the cell loop of keras.layers.RNN over the sequence.
    peephole = build_classifier(ModelConfig(embedding_dim=4, units=3, peephole=True), word_vocab.size, 2)
    with pytest.raises(litert.LiteRTConversionError, match="Select TF ops"):
        litert.export_litert(peephole, "sentiment", word_vocab, ("neg", "pos"), tmp_path / "b")
    assert not (tmp_path / "b").exists()


# The trained runs of the export tests (tests/pipeline/conftest.py): .tflite against the SavedModel TF Serving runs.


def _litert_export_of_run(run, target):
    config, run_dir, _, export_dir = run
    rd = RunDir(run_dir)
    vocab = Vocabulary.load(rd.vocabulary)
    labels = rd.read_labels()
    model = served_model(config, rd, vocab, labels)  # what the run's export serves, calibration included
    return litert.export_litert(model, config.task, vocab, labels, target), tf.saved_model.load(str(export_dir))


def test_trained_sentiment_litert_equals_its_saved_model(sentiment_run, tmp_path):
    from pipeline import tasks

    path, saved = _litert_export_of_run(sentiment_run, tmp_path / "litert")
    config = sentiment_run[0]
    texts = [x["text"].numpy().decode("utf-8") for x in tasks.get(config.task).load_splits(config).test]
    texts += ["", "great film 🎬🍿", "x" * 5000]
    (got, predicted) = run_client([{"export": str(path), "op": "probabilities",
                                    "texts_hex": [t.encode("utf-8").hex() for t in texts]},
                                   {"export": str(path), "op": "predict", "texts": texts}])  # fmt: skip
    served = saved.signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(got, served["probabilities"].numpy(), atol=TOLERANCE, rtol=0)
    assert [p["label"] for p in predicted] == [label.decode("utf-8") for label in served["label"].numpy()]


def test_trained_next_char_litert_equals_its_saved_model_and_its_seeded_generation(next_char_run, tmp_path):
    path, saved = _litert_export_of_run(next_char_run, tmp_path / "litert")
    prompts = ["to be", "", "whether tis nobler,\n", "Zq\u00e9"]
    cases = [("to be", 1.0, 0), ("", 0.7, 5), ("that is the question", 1.3, -123456789)]
    requests = [{"export": str(path), "op": "read_prompt", "prompts": prompts}]
    requests += [{"export": str(path), "op": "generate", "prompt": p, "length": 200, "temperature": t, "seed": s}
                 for p, t, s in cases]  # fmt: skip
    read, *generated = run_client(requests)
    expected = saved.signatures["next_char_probabilities"](text=tf.constant(prompts))["probabilities"].numpy()
    np.testing.assert_allclose(read["probabilities"], expected, atol=TOLERANCE, rtol=0)
    for (prompt, temperature, seed), text in zip(cases, generated):
        served = saved.signatures["generate_seeded"](prompt=tf.constant([prompt]), length=tf.constant(200),
                                                     temperature=tf.constant(temperature, tf.float32),
                                                     seed=tf.constant(seed, tf.int64))["text"].numpy()[0]  # fmt: skip
        assert len(text) == 200 and text == served.decode("utf-8"), (prompt, temperature, seed)


def test_the_client_finds_an_export_and_refuses_what_it_cannot_run(sentiment_exports, next_char_exports, tmp_path):
    import shutil

    export = sentiment_exports["bilstm_last"][1]
    model_folder = tmp_path / "model"
    shutil.copytree(export, model_folder / "1" / "litert")
    shutil.copytree(export, model_folder / "3" / "litert")
    for path in (export, export / "model.tflite", model_folder / "1", model_folder):
        assert litert_client.is_litert_export(path)
    assert litert_client.export_folder(model_folder) == model_folder / "3" / "litert"
    assert not litert_client.is_litert_export(tmp_path)

    sentiment = litert_client.LiteRTModel(export)
    with pytest.raises(litert_client.LiteRTExportError, match="is a sentiment model, not a next_char one"):
        sentiment.generate("to be")
    generator = litert_client.LiteRTModel(next_char_exports["lstm"][1])
    for length, temperature in ((-1, 1.0), (2.5, 1.0), (10, 0.0), (10, float("nan"))):
        with pytest.raises(litert_client.LiteRTExportError, match="length|temperature"):
            generator.generate("to be", length, temperature)
    assert generator.generate("to be", 0) == ""
    description = json.loads((model_folder / "1" / "litert" / "litert.json").read_text(encoding="utf-8"))
    description["format_version"] = 99
    (model_folder / "1" / "litert" / "litert.json").write_text(json.dumps(description), encoding="utf-8")
    with pytest.raises(litert_client.LiteRTExportError, match="version 99"):
        litert_client.LiteRTModel(model_folder / "1")


def test_rnnpipe_export_writes_the_litert_model_beside_the_saved_model(sentiment_run, tmp_path):
    import shutil

    from click.testing import CliRunner

    from pipeline.cli import main
    from pipeline.config import to_toml

    config, run_dir, _, _ = sentiment_run
    shutil.copytree(run_dir, tmp_path / "run")  # a copied run directory stands on its own
    config_file = tmp_path / "c.toml"
    config_file.write_text(to_toml(config), encoding="utf-8")
    command = ["export", str(config_file), "--run-dir", str(tmp_path / "run"), "--format", "saved_model",
               "--format", "litert"]  # fmt: skip
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.stderr
    version = Path(result.output.split("exported: ")[1].strip())
    assert (version / "saved_model.pb").exists() and (version / "litert" / "model.tflite").exists()
    assert litert_client.LiteRTModel(version).predict(["superb film"])[0]["label"] in ("neg", "pos")
    assert "export: up to date" in CliRunner().invoke(main, command).output


def test_predict_and_generate_accept_a_litert_export(sentiment_run, next_char_run, tmp_path):
    """The CLI runs a LiteRT export through the LiteRT interpreter: the same predictions as the SavedModel, and the
    same seeded text with the sampling controls (one prompt, so the SavedModel's batch of one)."""
    from click.testing import CliRunner

    from pipeline.cli import main

    def rnnpipe(*args):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.stderr
        return result.output

    sentiment_litert, _ = _litert_export_of_run(sentiment_run, tmp_path / "sentiment")
    texts = ["superb brilliant film", "awful dull plot", ""]
    saved = [json.loads(line) for line in rnnpipe("predict", sentiment_run[3], *texts).splitlines()]
    lite = [json.loads(line) for line in rnnpipe("predict", sentiment_litert / "model.tflite", *texts).splitlines()]
    assert [r["label"] for r in lite] == [r["label"] for r in saved]
    for a, b in zip(lite, saved):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=TOLERANCE)

    next_char_litert, _ = _litert_export_of_run(next_char_run, tmp_path / "next_char")
    for options in (["--top-k", "5"], ["--top-p", "0.8"], ["--top-k", "7", "--top-p", "0.9", "--temperature", "0.7"]):
        request = ["--prompt", "to be", "--length", "60", "--seed", "11", *options]
        assert rnnpipe("generate", next_char_litert, *request) == rnnpipe("generate", next_char_run[3], *request)
    # As a user runs them, in a process of their own: nothing on stderr, the interpreter's CPU delegate notice
    # included (TF_CPP_MIN_LOG_LEVEL is the CLI's own choice).
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    for args in (["predict", sentiment_litert / "model.tflite", "a film"],
                 ["generate", next_char_litert, "--prompt", "to be", "--length", "5"]):  # fmt: skip
        done = subprocess.run([str(Path(sys.executable).with_name("rnnpipe")), *map(str, args)], capture_output=True,
                              text=True, timeout=300, env=env)  # fmt: skip
        assert done.returncode == 0 and done.stdout and done.stderr == "", done.stderr
