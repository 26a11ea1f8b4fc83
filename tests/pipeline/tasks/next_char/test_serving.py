"""Generation from a next_char export: its signatures (pipeline/tasks/next_char/serving.py), as TF Serving and
clients without our code see them, and the client side (pipeline/clients/generate.py, `rnnpipe generate`)."""

import json
import os
import pty
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import custom_layers
from pipeline.cli import main
from pipeline.clients import generate as client
from pipeline.config import ModelConfig, replace
from pipeline.data.text import Vocabulary
from pipeline.errors import ConfigError, PipelineError
from pipeline.export import warmup
from pipeline.sampling import MAX_PROMPT_CHARS, MAX_SEED, UNSEEDED, Sampling
from pipeline.tasks.next_char import serving
from pipeline.tasks.next_char.serving import NextCharServing
from pipeline.training.model import build_language_model
from tests.isolation import BLOCK_OUR_CODE

CHARS = "\n abcdefghijklmnopqrstuvwxyz,.'"
SIGNATURES = ("serving_default", "generate_seeded", "next_char_probabilities", "sample", "read_prompt",
              "sample_from_state")  # fmt: skip
PROMPTS = ["to be", "", "x" * 50, "naïve 🎬"]


def controls(length, temperature=1.0, top_k=0, top_p=1.0, seed=UNSEEDED):
    return {"length": tf.constant(length, tf.int32), "temperature": tf.constant(temperature, tf.float32),
            "top_k": tf.constant(top_k, tf.int32), "top_p": tf.constant(top_p, tf.float32),
            "seed": tf.constant(seed, tf.int64)}  # fmt: skip


def texts(out):
    return [t.decode("utf-8") for t in out["text"].numpy()]


class Trained:
    """The trained tiny next_char run (LSTM): its export loaded as TF Serving would, and its vocabulary."""

    def __init__(self, next_char_run):
        self.config, self.run_dir, _, self.export_dir = next_char_run
        self.signatures = tf.saved_model.load(str(self.export_dir)).signatures
        self.tokens = json.loads((self.run_dir / "vocabulary.json").read_text())["tokens"]

    def sample(self, prompts, **kwargs):
        return texts(self.signatures["sample"](prompt=tf.constant(prompts), **controls(**kwargs)))

    def probabilities(self, prompts):
        """P(next character) after each prompt, over the vocabulary without its OOV entry (never sampled)."""
        out = self.signatures["next_char_probabilities"](text=tf.constant(prompts))["probabilities"].numpy()
        return out[:, 1:] / out[:, 1:].sum(axis=1, keepdims=True)

    def ids(self, text):
        """Positions of each character of `text` in probabilities()' columns."""
        return np.array([self.tokens.index(c) - 1 for c in text])


@pytest.fixture(scope="module")
def trained(next_char_run):
    return Trained(next_char_run)


@pytest.fixture(scope="module")
def cell_exports(tmp_path_factory):
    """{cell name: export dir}: a two-layer model of every cell in custom_layers.LAYERS, random weights, exported
    with max_length = 300 after a global seed was set (as training sets one)."""
    root = tmp_path_factory.mktemp("cells")
    vocab = Vocabulary("char", ("[UNK]",) + tuple(CHARS))
    exports = {}
    for name in custom_layers.LAYERS:
        keras.utils.set_random_seed(3)
        config = ModelConfig(cell=name, units=8, embedding_dim=4, layers=2)
        model = build_language_model(config, vocab.size, jit_compile=False)
        module = NextCharServing(model, vocab, num_layers=2, max_length=300)
        tf.saved_model.save(module, str(root / name), signatures=module.signatures())
        exports[name] = root / name
    return exports


# In a process that cannot import our packages or keras: for each export, one call of 200 characters against
# chunks of it from the returned state, the old signatures against the new, and unseeded text (compared across
# two such processes by the test).
CONTINUATION = BLOCK_OUR_CODE + textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    PROMPTS = json.loads(sys.argv[1])

    def controls(length, top_k=0, top_p=1.0, seed=-1):
        return {"length": tf.constant(length), "temperature": tf.constant(1.0), "top_k": tf.constant(top_k),
                "top_p": tf.constant(top_p), "seed": tf.constant(seed, tf.int64)}

    def text(out):
        return [t.decode("utf-8") for t in out["text"].numpy()]

    results = {}
    for path in sys.argv[2:]:
        s = tf.saved_model.load(path).signatures
        prompt = tf.constant(PROMPTS)
        result = {"one_call": {}, "chunked": {}}
        for name, (top_k, top_p) in {"plain": (0, 1.0), "top_k": (5, 1.0), "top_p": (0, 0.8), "both": (7, 0.9)}.items():
            result["one_call"][name] = text(s["sample"](prompt=prompt, **controls(200, top_k, top_p, seed=11)))
            state = s["read_prompt"](prompt=prompt)["state"]
            pieces, positions = [], []
            for length in (100, 0, 60, 40):
                out = s["sample_from_state"](state=state, **controls(length, top_k, top_p, seed=11))
                state = out["state"]
                pieces.append(text(out))
                positions.append(state.numpy()[:, -1].tolist())
            result["chunked"][name] = ["".join(parts) for parts in zip(*pieces)]
            result["positions"] = positions
        seeded = s["generate_seeded"](prompt=prompt, length=tf.constant(200), temperature=tf.constant(1.0),
                                      seed=tf.constant(11, tf.int64))
        result["generate_seeded"] = text(seeded)
        alone = [s["read_prompt"](prompt=tf.constant([p]))["state"].numpy()[0].tolist() for p in PROMPTS]
        result["state_alone"] = alone
        result["state_batched"] = s["read_prompt"](prompt=prompt)["state"].numpy().tolist()
        result["unseeded"] = [text(s["serving_default"](prompt=prompt, length=tf.constant(40),
                                                        temperature=tf.constant(1.0))) for _ in range(2)]
        result["unseeded_sample"] = text(s["sample"](prompt=prompt, **controls(40)))
        results[path] = result
    print(json.dumps(results))
    """
)


def run_continuation(paths):
    result = subprocess.run([sys.executable, "-c", CONTINUATION, json.dumps(PROMPTS)] + [str(p) for p in paths],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_continuation_equals_one_call_for_every_cell_without_our_code(cell_exports):
    paths = [str(cell_exports[name]) for name in custom_layers.LAYERS]
    first, second = run_continuation(paths), run_continuation(paths)
    for name, path in zip(custom_layers.LAYERS, paths):
        result = first[path]
        for controls_name, one_call in result["one_call"].items():
            assert [len(t) for t in one_call] == [200] * len(PROMPTS), (name, controls_name)
            assert result["chunked"][controls_name] == one_call, (name, controls_name)
            assert second[path]["one_call"][controls_name] == one_call, (name, "a seed reproduces across processes")
        assert result["positions"] == [[100.0] * 4, [100.0] * 4, [160.0] * 4, [200.0] * 4], name
        assert result["generate_seeded"] == result["one_call"]["plain"], name
        assert result["one_call"]["top_k"] != result["one_call"]["plain"], (name, "the controls change the draw")
        np.testing.assert_allclose(result["state_batched"], result["state_alone"], atol=1e-6, err_msg=name)
        unseeded = result["unseeded"][0] + result["unseeded"][1] + result["unseeded_sample"]
        again = second[path]["unseeded"][0] + second[path]["unseeded"][1] + second[path]["unseeded_sample"]
        assert result["unseeded"][0] != result["unseeded"][1], (name, "two unseeded calls differ")
        assert unseeded != again, (name, "two processes loading one export draw different unseeded text")
        assert "\ufffd" not in "".join(unseeded + result["one_call"]["plain"]), "the OOV entry is never sampled"


def test_saved_model_cli_lists_the_signatures_with_dtypes_and_shapes(next_char_run):
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir"]
    shown = subprocess.run(cli + [str(next_char_run[3])], capture_output=True, text=True, timeout=300).stdout
    sections = {name: shown.split(f"signature_def['{name}']:")[1].split("signature_def[")[0] for name in SIGNATURES}
    width = 2 * next_char_run[0].model.units + 1  # one LSTM layer: h, c and the position

    def tensor(kind, name, dtype, shape):
        return f"{kind}['{name}'] tensor_info:\n        dtype: {dtype}\n        shape: {shape}"

    controls_shown = [tensor("inputs", "length", "DT_INT32", "()"), tensor("inputs", "temperature", "DT_FLOAT", "()"),
                      tensor("inputs", "top_k", "DT_INT32", "()"), tensor("inputs", "top_p", "DT_FLOAT", "()"),
                      tensor("inputs", "seed", "DT_INT64", "()")]  # fmt: skip
    expected = {
        "serving_default": controls_shown[:2] + [tensor("inputs", "prompt", "DT_STRING", "(-1)"),
                                                 tensor("outputs", "text", "DT_STRING", "(-1)")],
        "generate_seeded": controls_shown[:2] + [controls_shown[4], tensor("outputs", "text", "DT_STRING", "(-1)")],
        "next_char_probabilities": [tensor("inputs", "text", "DT_STRING", "(-1)"),
                                    tensor("outputs", "probabilities", "DT_FLOAT", "(-1, 31)")],
        "sample": controls_shown + [tensor("inputs", "prompt", "DT_STRING", "(-1)"),
                                    tensor("outputs", "text", "DT_STRING", "(-1)")],
        "read_prompt": [tensor("inputs", "prompt", "DT_STRING", "(-1)"),
                        tensor("outputs", "state", "DT_FLOAT", f"(-1, {width})")],
        "sample_from_state": controls_shown + [tensor("inputs", "state", "DT_FLOAT", f"(-1, {width})"),
                                               tensor("outputs", "state", "DT_FLOAT", f"(-1, {width})"),
                                               tensor("outputs", "text", "DT_STRING", "(-1)")],
    }  # fmt: skip
    vocab_size = len(json.loads((next_char_run[1] / "vocabulary.json").read_text())["tokens"])
    for name, lines in expected.items():
        for line in lines:
            assert line.replace("(-1, 31)", f"(-1, {vocab_size})") in sections[name], (name, line, sections[name])


def test_top_k_1_and_a_tiny_top_p_give_the_argmax_continuation(trained):
    prompt = "to be"
    greedy = trained.sample([prompt], length=40, top_k=1, seed=1)[0]
    assert trained.sample([prompt], length=40, top_k=1)[0] == greedy, "unseeded: the same, there is one choice"
    assert trained.sample([prompt], length=40, top_p=1e-6, seed=2)[0] == greedy
    assert trained.sample([prompt], length=40, top_k=1, temperature=5.0)[0] == greedy
    for tiny in (1e-12, 1e-37):  # a tiny temperature is greedy too: no overflow, no OOV entry drawn
        assert trained.sample([prompt], length=40, temperature=tiny, seed=3)[0] == greedy
    # The argmax after every prefix, each prefix read afresh.
    probabilities = trained.probabilities([prompt + greedy[:i] for i in range(len(greedy))])
    chosen = probabilities[np.arange(len(greedy)), trained.ids(greedy)]
    # A tie within float rounding (reading a prefix afresh against stepping the cells) may go either way.
    np.testing.assert_array_less(probabilities.max(axis=1) - chosen, 1e-5)


def _spread_prompt(trained):
    """Of a few prompts, the one whose next character is least predictable (so that a cut removes real mass)."""
    candidates = ["to be", "o", "t", "that is", "or not", "nobler"]
    probabilities = trained.probabilities(candidates)
    return candidates[int(np.argmax(-(probabilities * np.log(probabilities + 1e-12)).sum(axis=1)))]


@pytest.mark.parametrize("cut", ["top_k", "top_p", "both"])
def test_ten_thousand_draws_stay_inside_the_top_k_and_the_nucleus(trained, cut):
    temperature = 1.3
    prompt = _spread_prompt(trained)
    reference = trained.probabilities([prompt])[0] ** (1 / temperature)
    reference /= reference.sum()
    order = np.argsort(-reference, kind="stable")
    k = 3 if cut in ("top_k", "both") else 0
    kept = reference[order[:k]] if k else reference[order]
    top_p = 1.0
    if cut in ("top_p", "both"):
        # p halfway between two cumulative sums, so that float rounding cannot move the nucleus' edge.
        cumulative = np.cumsum(kept / kept.sum())
        size = 2 if k else max(m for m in range(2, len(cumulative)) if 1 - cumulative[m - 1] >= 0.05)
        top_p = float((cumulative[size - 2] + cumulative[size - 1]) / 2)
        kept = kept[:size]
    allowed = order[: len(kept)]
    assert 1 < len(allowed) and reference[allowed].sum() <= 0.95, "the cut must remove real probability mass"

    draws = "".join(trained.sample([prompt] * 10_000, length=1, temperature=temperature, top_k=k, top_p=top_p,
                                   seed=7))  # fmt: skip
    ids = trained.ids(draws)
    assert len(ids) == 10_000
    assert set(ids) <= set(allowed), f"drew {sorted(set(ids) - set(allowed))} outside {sorted(allowed)}"
    # And in the proportions of the renormalized distribution (5 standard deviations).
    expected = 10_000 * reference[allowed] / reference[allowed].sum()
    counts = np.array([(ids == i).sum() for i in allowed])
    assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(expected) + 1), (counts, expected)


def test_length_zero_gives_empty_text_and_keeps_the_state(trained):
    s = trained.signatures
    assert trained.sample(PROMPTS, length=0, seed=1) == [""] * len(PROMPTS)
    assert texts(s["serving_default"](prompt=tf.constant(PROMPTS), length=tf.constant(0),
                                      temperature=tf.constant(1.0))) == [""] * len(PROMPTS)  # fmt: skip
    state = s["read_prompt"](prompt=tf.constant(PROMPTS))["state"]
    out = s["sample_from_state"](state=state, **controls(0))
    assert texts(out) == [""] * len(PROMPTS)
    np.testing.assert_array_equal(out["state"].numpy(), state.numpy())


def _refusal(signature, **inputs):
    """The message with which `signature` refuses `inputs`, and the seconds it took."""
    start = time.perf_counter()
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        signature(**inputs)
    return error.value.message, time.perf_counter() - start


def old_inputs(length, temperature=1.0):
    """The inputs of serving_default (prompt aside)."""
    return {"length": tf.constant(length, tf.int32), "temperature": tf.constant(temperature, tf.float32)}


def test_a_request_above_max_length_fails_at_once_inside_the_savedmodel(trained):
    s = trained.signatures
    max_length = trained.config.export.max_length
    assert max_length == 4096, "the default"
    for length in (100_000_000, max_length + 1):
        message, seconds = _refusal(s["sample"], prompt=tf.constant(["to be"]), **controls(length))
        assert f"length must be in [0, {max_length}]" in message and str(length) in message
        assert seconds < 1.0, seconds
        message, seconds = _refusal(s["serving_default"], prompt=tf.constant(["to be"]), **old_inputs(length))
        assert f"length must be in [0, {max_length}]" in message and seconds < 1.0
    state = s["read_prompt"](prompt=tf.constant(["to be"]))["state"]
    message, seconds = _refusal(s["sample_from_state"], state=state, **controls(100_000_000))
    assert "max_length" in message and seconds < 1.0
    assert len(trained.sample(["to be"], length=max_length, seed=1)[0]) == max_length


@pytest.mark.parametrize("bad, fragment", [
    ({"length": -1}, "length must be in [0, 4096]"),
    ({"temperature": 0.0}, "temperature must be finite and > 0"),
    ({"temperature": float("inf")}, "temperature must be finite and > 0"),
    ({"temperature": float("nan")}, "temperature must be finite and > 0"),
    ({"top_k": -1}, "top_k must be >= 0"),
    ({"top_p": 0.0}, "top_p must be in (0, 1]"),
    ({"top_p": 1.5}, "top_p must be in (0, 1]"),
    ({"top_p": float("nan")}, "top_p must be in (0, 1]"),
    ({"seed": -2}, "seed must be >= 0, or -1"),
])  # fmt: skip
def test_bad_controls_are_refused_by_every_sampling_signature(trained, bad, fragment):
    s = trained.signatures
    values = {"length": 10, **bad}
    message, _ = _refusal(s["sample"], prompt=tf.constant(["to be"]), **controls(**values))
    assert fragment in message, message
    state = s["read_prompt"](prompt=tf.constant(["to be"]))["state"]
    message, _ = _refusal(s["sample_from_state"], state=state, **controls(**values))
    assert fragment in message, message
    if set(bad) <= {"length", "temperature"}:
        message, _ = _refusal(s["serving_default"], prompt=tf.constant(["to be"]), **old_inputs(**values))
        assert fragment in message, message


def test_prompts_and_states_are_bounded_and_checked(trained):
    s = trained.signatures
    at_limit = "x" * MAX_PROMPT_CHARS
    assert len(trained.sample([at_limit, ""], length=3, seed=1)[1]) == 3
    too_long = tf.constant(["to be", "é" * (MAX_PROMPT_CHARS + 1)])
    for name, inputs in {"sample": {"prompt": too_long, **controls(3)},
                         "serving_default": {"prompt": too_long, **old_inputs(3)},
                         "read_prompt": {"prompt": too_long},
                         "next_char_probabilities": {"text": too_long}}.items():  # fmt: skip
        message, _ = _refusal(s[name], **inputs)
        assert f"at most {MAX_PROMPT_CHARS} characters" in message and str(MAX_PROMPT_CHARS + 1) in message, name
    state = s["read_prompt"](prompt=tf.constant(["to be", "or"]))["state"].numpy()
    positions = {"negative": [[-1.0], [0.0]], "fractional": [[0.5], [0.0]]}
    broken = {"NaN or an infinity": np.where(np.arange(state.shape[1]) == 0, np.nan, state)}
    broken.update({f"must be a position ({k})": np.concatenate([state[:, :-1], v], 1) for k, v in positions.items()})
    for fragment, value in broken.items():
        message, _ = _refusal(s["sample_from_state"], state=tf.constant(value, tf.float32), **controls(5))
        assert fragment.split(" (")[0] in message, message


def _tiny_module(cell="lstm"):
    keras.utils.set_random_seed(3)
    model = build_language_model(ModelConfig(cell=cell, units=8, embedding_dim=4, layers=2), len(CHARS) + 1,
                                 jit_compile=False)  # fmt: skip
    return NextCharServing(model, Vocabulary("char", ("[UNK]",) + tuple(CHARS)), num_layers=2, max_length=300)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_prompts_are_read_in_passes_of_bounded_size_with_the_same_states(cell, monkeypatch):
    whole = _tiny_module(cell)
    (state,) = whole.read_prompt(tf.constant(PROMPTS)).values()
    probabilities = whole.next_char_probabilities(tf.constant(PROMPTS))["probabilities"]
    # 60 characters a pass: the 50-character prompt is read alone, the others one a pass too (the longest rules).
    monkeypatch.setattr(serving, "READ_CHARS", 60)
    passes = _tiny_module(cell)
    np.testing.assert_allclose(passes.read_prompt(tf.constant(PROMPTS))["state"], state, atol=1e-6)
    np.testing.assert_allclose(passes.next_char_probabilities(tf.constant(PROMPTS))["probabilities"], probabilities,
                               atol=1e-6)  # fmt: skip
    assert passes.read_prompt(tf.constant([], tf.string))["state"].shape == (0, passes.state_width)


def test_a_request_of_too_many_prompts_or_characters_to_generate_is_refused(monkeypatch):
    monkeypatch.setattr(serving, "MAX_PROMPTS", 3)
    monkeypatch.setattr(serving, "MAX_GENERATED", 20)
    module = _tiny_module()
    four = tf.constant(["a", "b", "c", "d"])
    for signature, inputs in {"read_prompt": {"prompt": four}, "sample": {"prompt": four, **controls(2)},
                              "next_char_probabilities": {"text": four}}.items():  # fmt: skip
        message, _ = _refusal(module.signatures()[signature], **inputs)
        assert "a request may hold at most 3 prompts, got] [4]" in message, (signature, message)
    state = module.read_prompt(tf.constant(["a", "b", "c"]))["state"]
    message, _ = _refusal(module.sample_from_state, state=tf.concat([state, state[:1]], 0), **controls(2))
    assert "a request may hold at most 3 states, got] [4]" in message
    message, _ = _refusal(module.sample, prompt=tf.constant(["a", "b"]), **controls(11))
    assert "a request may generate at most 20 characters (prompts x length), got] [22]" in message
    assert [len(t) for t in texts(module.sample(prompt=tf.constant(["a", "b"]), **controls(10)))] == [10, 10]
    message, _ = _refusal(module.sample_from_state, state=state, **controls(7))
    assert "generate at most 20 characters" in message


def test_warmup_records_cover_every_signature_and_replay(trained):
    path = trained.export_dir / "assets.extra" / "tf_serving_warmup_requests"
    requests = [warmup.parse_prediction_log(r.numpy()).predict_log.request
                for r in tf.data.TFRecordDataset(str(path))]  # fmt: skip
    assert {r.model_spec.signature_name for r in requests} == set(SIGNATURES) - {"generate_seeded"}
    for request in requests:
        inputs = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
        signature = trained.signatures[request.model_spec.signature_name]
        assert set(inputs) == set(signature.structured_input_signature[1]), request.model_spec.signature_name
        signature(**inputs)  # replays as TF Serving does at load time
    try:  # the official classes, when tensorflow-serving-api is importable (pip install --no-deps ...)
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
        return
    for record in tf.data.TFRecordDataset(str(path)):
        official = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        assert official.SerializeToString() == record.numpy()


def test_a_module_refuses_a_max_length_it_cannot_honour_and_the_config_checks_it(trained):
    vocab = Vocabulary("char", ("[UNK]",) + tuple(CHARS))
    model = build_language_model(ModelConfig(units=4, embedding_dim=2), vocab.size, jit_compile=False)
    for bad in (0, 2**24 + 1):
        with pytest.raises(ValueError, match="max_length"):
            NextCharServing(model, vocab, 1, max_length=bad)
        with pytest.raises(ConfigError, match="export.max_length"):
            replace(trained.config, **{"export.max_length": bad})


# The client library and the CLI.


def test_streaming_gives_the_text_of_one_call_and_yields_as_it_goes(trained, monkeypatch):
    generator = client.Generator(trained.export_dir)
    sampling = Sampling(length=300, temperature=0.9, top_k=10, top_p=0.95, seed=5)
    whole = generator.sample(PROMPTS, sampling)
    calls = []
    call = generator._call
    monkeypatch.setattr(generator, "_call", lambda name, **inputs: calls.append(name) or call(name, **inputs))
    chunks = generator.stream(PROMPTS, sampling)
    first = next(chunks)
    assert calls == ["read_prompt", "sample_from_state"], "the first chunk is out after one call"
    assert [len(t) for t in first] == [client.STREAM_CHUNKS[0]] * len(PROMPTS)
    pieces = [first] + list(chunks)
    assert ["".join(parts) for parts in zip(*pieces)] == whole
    assert len(pieces) == len(calls) - 1 > 2


def invoke(*args):
    return CliRunner().invoke(main, ["generate", *[str(a) for a in args]])


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


def test_cli_generates_with_the_controls_reproducibly(trained):
    export = trained.export_dir.parent
    args = ["--prompt", "to be", "--length", 60, "--top-k", 5, "--top-p", 0.9, "--temperature", 0.8]
    first = invoke(export, *args, "--seed", 3)
    assert first.exit_code == 0, first.stderr
    assert first.output == invoke(export, *args, "--seed", 3).output
    assert first.output.startswith("to be") and first.output.endswith("\n")
    sampling = Sampling(60, 0.8, 5, 0.9, 3)
    assert first.output == "to be" + client.Generator(export).sample(["to be"], sampling)[0] + "\n"
    three = invoke(export, *args, "--seed", 3, "--num-samples", 3)
    assert three.output.count("--- sample ") == 3
    assert three.output.split("\n", 1)[1].startswith(first.output), "sample 1 is the single sample"
    assert invoke(export, *args).output != invoke(export, *args).output, "without a seed, every run differs"


def test_cli_input_file_gives_json_lines(trained, tmp_path, monkeypatch):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes("\ufeffto be\r\nor not\n\nto be\n".encode("utf-8"))
    result = invoke(trained.export_dir, "--input", prompts, "--length", 20, "--seed", 4, "--num-samples", 2)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["prompt"], r["sample"]) for r in lines] == [(p, s) for p in ["to be", "or not", "", "to be"]
                                                           for s in (0, 1)]  # fmt: skip
    assert all(len(r["text"]) == 20 for r in lines)
    # Rows in other batches get other seeds: the same prompt twice does not repeat its text.
    monkeypatch.setattr(client, "BATCH_ROWS", 2)
    small = [json.loads(line) for line in invoke(trained.export_dir, "--input", prompts, "--length", 20,
                                                 "--seed", 4, "--num-samples", 2).output.splitlines()]  # fmt: skip
    assert small[:2] == lines[:2], "the first batch uses the seed itself"
    assert small[0]["text"] != small[6]["text"] and small[1]["text"] != small[7]["text"]
    # A call generates at most MAX_GENERATED characters: 40 at 20 a row is two rows a call, as above.
    monkeypatch.setattr(client, "BATCH_ROWS", 64)
    monkeypatch.setattr(client, "MAX_GENERATED", 40)
    bounded = [json.loads(line) for line in invoke(trained.export_dir, "--input", prompts, "--length", 20,
                                                   "--seed", 4, "--num-samples", 2).output.splitlines()]  # fmt: skip
    assert bounded == small


def test_cli_bad_values_give_one_line(trained, tmp_path):
    export = trained.export_dir
    latin = tmp_path / "latin.txt"
    latin.write_bytes("to be\nna\xefve\n".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    long_line = tmp_path / "long.txt"
    long_line.write_text("to be\n" + "x" * (MAX_PROMPT_CHARS + 1) + "\n", encoding="utf-8")
    not_generation = tmp_path / "other"
    not_generation.mkdir()
    (not_generation / "saved_model.pb").write_bytes(b"")
    cases = [
        (["--length", 100_000_000], "--length 100,000,000 is above this export's max_length of 4,096"),
        (["--length", 99_999_999_999], "above this export's max_length"),
        (["--length", -1], "--length must be >= 0"),
        (["--temperature", "inf"], "--temperature must be > 0 and finite, got inf"),
        (["--temperature", "nan"], "--temperature must be > 0 and finite, got nan"),
        (["--temperature", 0], "--temperature must be > 0"),
        (["--temperature", "1e-50"], "(0.0 as a float32)"),
        (["--top-k", -1], "--top-k must be >= 0"),
        (["--top-p", 0], "--top-p must be in (0, 1]"),
        (["--top-p", 1.01], "--top-p must be in (0, 1]"),
        (["--seed", 2**66], f"--seed must be in [0, 2**63 - 1], got {2**66}"),
        (["--seed", -1], "--seed must be in [0, 2**63 - 1]"),
        (["--num-samples", 0], "--num-samples"),
        (["--prompt", "x" * (MAX_PROMPT_CHARS + 1)], f"this export reads at most {MAX_PROMPT_CHARS:,}"),
    ]  # fmt: skip
    for args, fragment in cases:
        prompt = [] if "--prompt" in args else ["--prompt", "to be"]
        start = time.perf_counter()
        line = one_error_line(invoke(export, *prompt, *args))
        assert fragment in line, (args, line)
        assert time.perf_counter() - start < 1.0, (args, "refused before loading the export")
    for args, fragment in [
        (["--input", latin], "latin.txt: line 2, byte offset 2: byte 0xef is not valid UTF-8"),
        (["--input", empty], "empty.txt holds no prompts"),
        (["--input", long_line], f"long.txt: line 2: the prompt has {MAX_PROMPT_CHARS + 1:,} characters"),
        ([], "give --prompt TEXT or --input FILE"),
        (["--prompt", "a", "--input", latin], "give --prompt TEXT or --input FILE"),
    ]:  # fmt: skip
        assert fragment in one_error_line(invoke(export, *args)), args
    assert "has no generation limits" in one_error_line(invoke(not_generation, "--prompt", "a"))


def test_library_refuses_what_the_export_would(trained):
    with pytest.raises(PipelineError, match="max_length of 4,096"):
        client.generate(trained.export_dir, "to be", length=5000)
    assert len(client.generate(trained.export_dir, "to be", length=0)) == 0
    assert client.batch_seed(None, 3) == UNSEEDED and client.batch_seed(9, 0) == 9
    assert len({client.batch_seed(9, b) for b in range(1, 1000)}) == 999
    assert all(0 <= client.batch_seed(2**63 - 1, b) <= MAX_SEED for b in range(1, 100))


@pytest.mark.slow
def test_cli_streams_on_a_terminal_the_text_it_prints_into_a_pipe(trained):
    rnnpipe = Path(sys.executable).with_name("rnnpipe")
    command = [str(rnnpipe), "generate", str(trained.export_dir), "--prompt", "to be", "--length", "500",
               "--seed", "8", "--top-p", "0.95"]  # fmt: skip
    piped = subprocess.run(command, capture_output=True, timeout=300)
    assert piped.returncode == 0, piped.stderr[-2000:]
    controller, terminal = pty.openpty()
    process = subprocess.Popen(command, stdout=terminal, stderr=subprocess.DEVNULL, close_fds=True)
    os.close(terminal)
    received = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 300)
        try:
            data = os.read(controller, 4096) if ready else b""
        except OSError:  # the terminal closed with the process
            data = b""
        if not data:
            break
        received += data
    os.close(controller)
    assert process.wait(timeout=60) == 0
    assert received.replace(b"\r\n", b"\n") == piped.stdout
