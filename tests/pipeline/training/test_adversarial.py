"""Adversarial training: one step checked against the formula computed another way, the virtual adversarial
direction against random ones, and the pipeline path."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from pipeline.config import ConfigError, ModelConfig, load_config
from pipeline.stages import evaluate, tokenize, train
from pipeline.training.adversarial import AdversarialModel, _embedding_chain, _forward, _kl, _unit
from pipeline.training.model import build_classifier
from tests.pipeline.helpers import sentiment_csv, write_config

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _plain(seed=0, **model):
    config = ModelConfig(embedding_dim=6, units=5, bidirectional=True, pooling="max", **model)
    keras.utils.set_random_seed(seed)
    return build_classifier(config, vocab_size=40, num_classes=2, seed=seed)


def _batch():
    # Every token id appears at most once in the batch, so perturbing the embedding *rows* of the tokens is the
    # same as perturbing the embedded positions: the reference below needs no access to the model's internals.
    x = np.arange(1, 29, dtype="int32").reshape(4, 7)
    x[1, 5:] = 0  # padding, masked: its gradient and perturbation are 0
    x[3, 4:] = 0
    return x, np.array([0, 1, 1, 0], dtype="int32")


def test_one_step_matches_the_formula():
    """Tolerance 1e-5: the same float32 arithmetic in a different order (rows of the table vs positions)."""
    epsilon, lr = 0.7, 0.1
    x, y = _batch()
    reference = _plain()
    plain = _plain()
    trained = AdversarialModel(plain.inputs, plain.outputs, epsilon=epsilon)
    trained.set_weights(reference.get_weights())

    variables = reference.trainable_variables
    table = reference.get_layer("embedding").embeddings
    with tf.GradientTape() as tape:
        clean = LOSS(y, reference(x, training=True))
    grads = tape.gradient(clean, variables)
    table_grad = tf.convert_to_tensor(grads[[v.path for v in variables].index(table.path)])
    # Per example: the rows of its tokens, normalized together (padding's row 0 has zero gradient).
    rows = np.zeros_like(table_grad.numpy())
    for example in x:
        ids = example[example > 0]
        g = table_grad.numpy()[ids]
        rows[ids] = epsilon * g / np.sqrt((g**2).sum())
    assert np.abs(table_grad.numpy()[0]).max() == 0.0
    original = table.numpy()
    table.assign(original + rows)
    with tf.GradientTape() as tape:
        adversarial = LOSS(y, reference(x, training=True))
    adversarial_grads = tape.gradient(adversarial, variables)
    table.assign(original)
    expected = [v.numpy() - lr * (tf.convert_to_tensor(a) + tf.convert_to_tensor(b)).numpy()
                for v, a, b in zip(variables, grads, adversarial_grads)]  # fmt: skip
    assert float(adversarial) > float(clean)  # the perturbation points uphill

    trained.compile(keras.optimizers.SGD(lr), LOSS)
    logs = trained.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0).history
    for want, got in zip(expected, (v.numpy() for v in trained.trainable_variables)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert logs["loss"][0] == pytest.approx(float(clean), abs=1e-5)  # the clean loss is what is reported


def test_virtual_adversarial_direction_beats_random_directions():
    """The power-iteration direction must move the prediction more than random directions of the same norm."""
    x, _ = _batch()
    plain = _plain()
    model = AdversarialModel(plain.inputs, plain.outputs, virtual_epsilon=1.0)
    embedding, chain = _embedding_chain(model)
    embedded, mask = embedding(x), embedding.compute_mask(x)
    logits = _forward(chain, embedded, mask)
    target = tf.nn.softmax(logits)
    captured = {}

    def forward(inputs):
        out = _forward(chain, inputs, mask)
        captured["last"] = inputs
        return out

    tf.random.set_seed(0)
    virtual = float(model._virtual_adversarial_loss(forward, embedded, mask, logits))
    perturbation = (captured["last"] - embedded).numpy()
    np.testing.assert_allclose(np.sqrt((perturbation**2).sum(axis=(1, 2))), 1.0, rtol=1e-5)
    assert np.abs(perturbation[1, 5:]).max() == 0.0  # padding is never perturbed
    random = [float(_kl(target, _forward(chain, embedded + _unit(tf.random.normal(embedded.shape), mask), mask)))
              for _ in range(20)]  # fmt: skip
    assert virtual > 2 * max(random)


def test_virtual_adversarial_divergence_ignores_padded_positions():
    # Sequence outputs behind a padding mask: the divergence averages the unmasked positions only.
    rng = np.random.default_rng(0)
    target = tf.nn.softmax(tf.constant(rng.normal(size=(2, 4, 3)).astype("float32")))
    logits = tf.constant(rng.normal(size=(2, 4, 3)).astype("float32"))
    mask = tf.constant([[True, True, True, False], [True, False, False, False]])
    per_position = (target * (np.log(target + 1e-12) - tf.nn.log_softmax(logits))).numpy().sum(-1)
    assert float(_kl(target, logits, mask)) == pytest.approx(per_position[mask.numpy()].mean(), rel=1e-6)
    garbage = tf.where(mask[..., None], logits, 1e3 * tf.ones_like(logits))  # padded predictions may be anything
    assert float(_kl(target, garbage, mask)) == pytest.approx(float(_kl(target, logits, mask)), rel=1e-6)
    assert float(_kl(target, logits)) == pytest.approx(per_position.mean(), rel=1e-6)  # no mask: all positions


def test_virtual_adversarial_training_of_a_masked_sequence_model():
    # A per-position output with a padding mask reaches the divergence through _forward(..., with_mask=True).
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(30, 6, mask_zero=True, name="embedding")(tokens)
    x = custom_layers.LSTM(5, return_sequences=True)(x)
    plain = keras.Model(tokens, keras.layers.Dense(30)(x))
    model = AdversarialModel(plain.inputs, plain.outputs, virtual_epsilon=1.0)
    embedding, chain = _embedding_chain(model)
    x, _ = _batch()
    _, output_mask = _forward(chain, embedding(x), embedding.compute_mask(x), with_mask=True)
    np.testing.assert_array_equal(np.asarray(output_mask), x > 0)
    model.compile(keras.optimizers.Adam(1e-2), LOSS)
    history = model.fit(x, np.roll(x, -1, axis=1), batch_size=4, epochs=3, verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]


@pytest.mark.slow
def test_epsilon_zero_trains_like_keras_model():
    x, y = _batch()
    models = [_plain(dropout=0.2), _plain(dropout=0.2)]
    models[1] = AdversarialModel(models[1].inputs, models[1].outputs, epsilon=0.0)
    models[1].set_weights(models[0].get_weights())
    for model in models:
        keras.utils.set_random_seed(3)
        model.compile(keras.optimizers.Adam(1e-2), LOSS)
        model.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_saved_model_loads_and_predicts_the_same(tmp_path):
    x, _ = _batch()
    plain = _plain()
    model = AdversarialModel(plain.inputs, plain.outputs, name="sentiment", epsilon=0.5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, AdversarialModel) and loaded.epsilon == 0.0  # a training setting, not saved
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_rejects_bad_arguments():
    plain = _plain()
    with pytest.raises(ValueError, match="epsilon=-1.0"):
        AdversarialModel(plain.inputs, plain.outputs, epsilon=-1.0)
    with pytest.raises(ValueError, match="virtual_epsilon=-1.0"):
        AdversarialModel(plain.inputs, plain.outputs, virtual_epsilon=-1.0)
    tokens = keras.Input((None,), dtype="int32")
    branch = keras.layers.Embedding(10, 4, name="embedding")(tokens)
    merged = keras.layers.Add()([keras.layers.Dense(4)(branch), branch])
    with pytest.raises(ValueError, match="chain"):
        AdversarialModel(tokens, merged, epsilon=1.0)
    with pytest.raises(ValueError, match="named 'embedding'"):
        AdversarialModel(tokens, keras.layers.Embedding(10, 4, name="lookup")(tokens), epsilon=1.0)


@pytest.mark.slow
def test_pipeline_setting_reaches_training(tmp_path):
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    path = write_config(tmp_path / "adv.toml", "sentiment", data, train={"epochs": 2})
    results = {}
    settings = {"plain": [], "adversarial": ["train.adversarial_epsilon=0.5"],
                "virtual": ["train.virtual_adversarial_epsilon=0.5"]}  # fmt: skip
    for name, overrides in settings.items():
        config = load_config(path, overrides)
        tokenize.run(config, tmp_path / name)
        results[name] = train.run(config, tmp_path / name)
        assert results[name].epochs == 2
        assert "accuracy" in evaluate.run(config, tmp_path / name).metrics
    # Same seed and data: only the perturbations differ.
    assert results["plain"].best != pytest.approx(results["adversarial"].best, abs=1e-6)
    assert results["plain"].best != pytest.approx(results["virtual"].best, abs=1e-6)
    for key in ("train.adversarial_epsilon", "train.virtual_adversarial_epsilon"):
        with pytest.raises(ConfigError, match=key):
            load_config(path, [f"{key}=-0.5"])


@pytest.mark.slow
def test_a_checkpoint_of_adversarial_training_loads_in_a_fresh_process(tmp_path):
    """best.keras of adversarial training is an AdversarialModel: `rnnpipe evaluate` in a process of its own loads
    it, and so does `keras.saving.load_model` after `import pipeline.training.model` (what the README tells users)."""
    data = {"train": str(sentiment_csv(tmp_path / "train.csv")), "test_fraction": 0.2}
    path = write_config(tmp_path / "adv.toml", "sentiment", data, train={"epochs": 1, "adversarial_epsilon": 0.5})
    config, run_dir = load_config(path), tmp_path / "run"
    tokenize.run(config, run_dir)
    train.run(config, run_dir)
    rnnpipe = Path(sys.executable).with_name("rnnpipe")
    evaluated = subprocess.run([str(rnnpipe), "evaluate", str(path), "--run-dir", str(run_dir)], capture_output=True,
                               text=True, timeout=600)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "evaluate: test: accuracy" in evaluated.stdout
    load = "import sys, keras, pipeline.training.model; print(type(keras.saving.load_model(sys.argv[1])).__name__)"
    loaded = subprocess.run([sys.executable, "-c", load, str(run_dir / "checkpoints" / "best.keras")],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split()[-1] == "AdversarialModel"


def test_virtual_adversarial_training_takes_a_batch_of_unlabelled_texts_too():
    x, y = _batch()
    unlabelled = np.arange(30, 40, dtype="int32").reshape(2, 5)
    weights = []
    for inputs in (x, (x, unlabelled)):
        plain = _plain(seed=1)
        model = AdversarialModel(plain.inputs, plain.outputs, virtual_epsilon=1.0)
        model.compile(keras.optimizers.Adam(1e-2), LOSS)
        keras.utils.set_random_seed(5)
        data = tf.data.Dataset.from_tensors((inputs, y))
        history = model.fit(data, epochs=3, verbose=0).history
        assert np.all(np.isfinite(history["loss"]))
        weights.append(model.get_layer("embedding").get_weights()[0])
    # Rows of words only the unlabelled batch holds move only when it is given.
    np.testing.assert_array_equal(weights[0][30:40], _plain(seed=1).get_layer("embedding").get_weights()[0][30:40])
    assert np.abs(weights[1][30:40] - weights[0][30:40]).max() > 1e-4
