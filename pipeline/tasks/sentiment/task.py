"""The sentiment task: text classification, binary or multi-class.

Data: labelled examples ({"text", "label"}) from local files (CSV/TSV, one folder per class, one file per class) or
a TFDS dataset with a ClassLabel feature. Vocabulary: words, and with `tokenize.max_ngram` > 0 their character n-grams
(sub-words, pipeline.data.text), with `tokenize.pretrained_vectors` the vectors file's words too. Model:
`pipeline.training.model.build_classifier`; `train.class_weight` weighs the classes in its loss, and with
`train.calibration` a temperature fitted on the validation split (pipeline.training.calibration) scales its logits
in the exports.
Metrics: accuracy, macro F1, balanced accuracy, per-class precision / recall / F1 / support, the confusion matrix
(rows = true class, columns = predicted; up to pipeline.training.metrics.MATRIX_CLASSES classes, the most frequent
mistakes beyond) with its figure confusion_matrix.png (at most pipeline.training.plots.PLOT_CLASSES classes: the most
confused ones), and, for two classes, ROC AUC (rank-based, ties averaged); with calibration, ECE and NLL before and
after it, the reliability tables (per confidence bin: examples, summed confidence, correct; they add up across
cross-validation's folds) and the figure reliability_diagram.png. At most pipeline.data.files.MAX_CLASSES classes.

Serving, signature "serving_default":
    text: tf.string [None]  ->  probabilities: float32 [None, num_classes], label: tf.string [None]
Tokenization runs in the graph with the functions training used, so serving needs no Python; the class names are
in the variable `class_names`.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from pipeline.config import class_weights
from pipeline.data import inputs
from pipeline.data.inputs import class_counts
from pipeline.data.splits import Splits, labelled_file, labelled_file_splits, tfds_splits, unlabelled_texts
from pipeline.data.text import (
    LengthReport,
    Vocabulary,
    build_word_vocabulary,
    count_words,
    encode_words,
    inference_batch,
    lookup_table,
    ngram_table,
    with_vectors,
    words_per_text,
)
from pipeline.errors import ConfigError, DataError
from pipeline.run import artifacts
from pipeline.tasks.base import Serving, Task, in_passes
from pipeline.training import calibration, metrics, plots
from pipeline.training.calibration import ECE_BINS
from pipeline.training.model import Vectors, build_classifier

logger = logging.getLogger(__name__)

# The majority class's share of the training examples above which an unweighted model is warned about, and evaluate
# leads with macro F1 and balanced accuracy: accuracy says little once one class is four fifths of the data.
IMBALANCED = 0.8


class SentimentTask(Task):
    name = "sentiment"

    def load_splits(self, config) -> Splits:
        if config.data.source == "tfds":
            return tfds_splits(config.data, labelled=True)
        return labelled_file_splits(config.data, config.seed)

    def build_vocabulary(self, config, splits) -> Vocabulary:
        t = config.tokenize
        texts = splits.train.map(lambda x: x["text"])
        if config.data.unlabelled or config.data.unlabelled_split:
            # The words pretraining learns from the unlabelled texts are the vocabulary's too: a word they hold and
            # the few labelled ones lack keeps what pretraining learned of it.
            texts = texts.concatenate(unlabelled_texts(config.data))
        texts = texts.batch(1024)
        sizes = tuple(range(t.min_ngram, t.max_ngram + 1)) if t.max_ngram else ()
        return build_word_vocabulary(texts, t.max_tokens, t.standardize, t.sequence_length, t.min_word_count,
                                     sizes, t.max_ngrams, t.ngrams_per_word)  # fmt: skip

    def cut_texts(self, config, splits):
        t = config.tokenize
        lengths = words_per_text(splits.train.map(lambda x: x["text"]).batch(1024), t.standardize)
        return LengthReport.of(lengths, t.sequence_length).summary()

    def pretrained_vectors(self, config, splits, vocab, progress=None):
        t = config.tokenize
        counts = count_words(splits.train.map(lambda x: x["text"]).batch(1024), t.standardize)
        return with_vectors(vocab, t.pretrained_vectors, t.vector_words, counts, progress)

    def unlabelled(self, config, splits):
        if not (config.data.unlabelled or config.data.unlabelled_split):
            return None
        texts = [text.decode("utf-8") for text in unlabelled_texts(config.data).as_numpy_iterator()]
        if config.data.unlabelled_with_train:
            texts += [x["text"].decode("utf-8") for x in splits.train.as_numpy_iterator()]
        return texts

    def class_weight(self, config, splits, labels):
        counts = class_counts(splits.train, labels)
        rule = class_weights(config.train.class_weight)
        majority = counts.max() / max(counts.sum(), 1)
        if rule == "none":
            if majority > IMBALANCED and len(labels) > 1:
                logger.warning("class %r is %.0f%% of the training examples and train.class_weight is 'none': the "
                               "model may learn to predict it always; consider train.class_weight = 'balanced'",
                               labels[int(counts.argmax())], 100 * majority)  # fmt: skip
            return None
        if rule == "balanced":
            return {k: float(counts.sum() / (len(labels) * count)) for k, count in enumerate(counts) if count}
        unknown = sorted(set(rule) - set(labels))
        if unknown:
            raise ConfigError(f"train.class_weight: no class named {', '.join(map(repr, unknown))}; the classes are "
                              f"{', '.join(map(repr, labels[:20]))}")  # fmt: skip
        return {k: rule.get(name, 1.0) for k, name in enumerate(labels)}

    def calibrate(self, model, config, validation):
        if config.train.calibration == "none":
            return None
        logits, truth = [], []
        for ids, y in validation:
            logits.append(model(ids, training=False).numpy())
            truth.append(y.numpy())
        logits, truth = np.concatenate(logits).astype(np.float64), np.concatenate(truth)
        temperature = calibration.fit_temperature(logits, truth)
        return {"method": "temperature", "temperature": temperature,
                "validation": calibration.report(logits, truth, temperature),
                "held_out_check": calibration.held_out_check(logits, truth, seed=config.seed)}  # fmt: skip

    def labels(self, splits) -> tuple[str, ...]:
        return splits.labels

    def training_dataset(self, config, splits, vocab, labels, seed):
        t = config.train
        ds = inputs.sentiment_dataset(splits.train, vocab, labels, t.batch_size, shuffle_buffer=t.shuffle_buffer,
                                      seed=seed, bucketing=t.bucketing, word_dropout=t.word_dropout)  # fmt: skip
        texts = self.unlabelled(config, splits) if t.virtual_adversarial_epsilon else None
        if texts:
            # The virtual adversarial term needs no label: each step also takes it on a batch of unlabelled texts
            # (Miyato et al. 2017), pipeline.training.adversarial.
            ds = inputs.with_unlabelled(ds, texts, vocab, t.batch_size, seed)
        return ds

    def expected_steps(self, config, splits):
        examples = int(splits.train.cardinality())  # negative where unknown (a TFDS split read as a stream)
        return -(-examples // config.train.batch_size) if examples > 0 else None

    def validation_dataset(self, config, splits, vocab, labels):
        t = config.train
        return inputs.sentiment_dataset(splits.validation, vocab, labels, t.batch_size, bucketing=t.bucketing)

    def build_model(self, config, vocab, labels, seed=0, jit_compile=True, vectors=None) -> keras.Model:
        if vocab.vector_dim:
            vectors = Vectors(vocab.size, vocab.trained_words, vocab.vector_dim, vectors)
        return build_classifier(config, vocab.embedding_rows, len(labels), seed=seed, jit_compile=jit_compile,
                                word_width=vocab.word_width, vectors=vectors)  # fmt: skip

    def read_file(self, config, spec, labels):
        return labelled_file(config.data, "--data", spec, labels)

    def evaluate(self, model, config, split, vocab, labels, run_dir, into=None, progress=None) -> dict:
        # Per example only the true and predicted class, the predicted class's probability (and, for two classes,
        # the positive class's) are kept: memory grows with the examples, not with examples x classes.
        # An ensemble's members are scored alone too, so that its report shows what averaging them bought; each
        # member runs once and the model's own averaging layer joins their logits.
        into = into or run_dir
        members = [layer for layer in model.layers if layer.name.startswith("member_")]
        ds = inputs.sentiment_dataset(split, vocab, labels, inference_batch(vocab, config.evaluate.batch_size))
        temperature = artifacts.read_json(run_dir.calibration)["temperature"] if run_dir.calibration.exists() else None
        truth, predicted, probability, positive, member_predicted = [], [], [], [], [[] for _ in members]
        before, after = _TopClass(), _TopClass()
        forward = _forward(model, members)
        total, done = int(split.cardinality()), 0  # negative where unknown (a TFDS split read as a stream)
        for ids, y in ds:
            logits, member_logits = forward(ids)
            for member, out in zip(member_logits, member_predicted):
                out.append(tf.argmax(member, axis=-1).numpy())
            predicted.append(tf.argmax(logits, axis=-1).numpy())
            probabilities = tf.nn.softmax(logits)
            # The probability the export serves: calibrated when training fitted a temperature.
            served = probabilities if temperature is None else tf.nn.softmax(logits / temperature)
            probability.append(tf.reduce_max(served, axis=-1).numpy())
            truth.append(y.numpy())
            if len(labels) == 2:
                positive.append(probabilities[:, 1].numpy())
            if temperature is not None:
                before.add(logits, y)
                after.add(logits / temperature, y)
            done += len(y)
            if progress and total > 0:
                progress(done, total)
        if not truth:
            raise DataError(f"evaluate.split: the {config.evaluate.split!r} split is empty")
        truth, predicted = np.concatenate(truth), np.concatenate(predicted)
        scores = np.concatenate(positive) if positive else None
        result = metrics.classification_metrics(truth, predicted, labels, positive_scores=scores)
        if members:
            scored = (metrics.classification_metrics(truth, np.concatenate(out), labels) for out in member_predicted)
            result["members"] = [{"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]} for m in scored]
        plots.confusion_matrix(truth, predicted, labels, into.confusion_matrix)
        write_predictions(split, [labels[k] for k in truth], [labels[k] for k in predicted],
                          np.concatenate(probability), into.predictions)  # fmt: skip
        if temperature is not None:
            tables = {"reliability_before": before.sums(), "reliability_after": after.sums()}
            result["calibration"] = {"method": "temperature", "temperature": temperature, "bins": ECE_BINS,
                                     **before.scores("before"), **after.scores("after"), **tables}  # fmt: skip
            after_label = f"after (temperature {temperature:.2f})"
            plots.reliability_diagram(*(calibration.reliability_of(table) for table in tables.values()), after_label,
                                      into.reliability_diagram)  # fmt: skip
        else:
            into.reliability_diagram.unlink(missing_ok=True)
        return result

    def evaluation_files(self, run_dir):
        return (run_dir.predictions,)

    def summary(self, result) -> str:
        auc = f", ROC AUC {result['roc_auc']:.4f}" if "roc_auc" in result else ""
        if result.get("majority_share", 0.0) > IMBALANCED:  # accuracy says little here: the balanced figures first
            line = (f"{result['split']}: macro F1 {result['macro_f1']:.4f}, balanced accuracy "
                    f"{result['balanced_accuracy']:.4f}, accuracy {result['accuracy']:.4f} (majority class "
                    f"{result['majority_share']:.0%}){auc} ({result['examples']:,} examples)")  # fmt: skip
        else:
            line = (f"{result['split']}: accuracy {result['accuracy']:.4f}, macro F1 {result['macro_f1']:.4f}{auc} "
                    f"({result['examples']:,} examples)")  # fmt: skip
        if "calibration" in result:
            c = result["calibration"]
            line += f"; ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f} (temperature {c['temperature']:.2f})"
        if "members" in result:
            alone = [m["accuracy"] for m in result["members"]]
            line += (f"; its {len(alone)} members alone: accuracy {np.mean(alone):.4f} "
                     f"[{min(alone):.4f}-{max(alone):.4f}]")  # fmt: skip
        return line

    def litert_signatures(self, model, vocab, labels):
        from pipeline.tasks.sentiment import litert

        return litert.SentimentSignatures(model, vocab, labels)

    def serving(self, model, config, vocab, labels) -> Serving:
        module = SentimentServing(model, vocab, labels)
        return Serving(
            module,
            {"serving_default": module.serve},
            (("serving_default", {"text": ["a wonderful film", "", "dull and far too long " * 20]}),),
        )


PREDICTION_COLUMNS = ("text", "label", "predicted", "probability")


def write_predictions(split: tf.data.Dataset, truth: list[str], predicted: list[str], probability, path) -> None:
    """predictions.csv (PREDICTION_COLUMNS): per example of `split`, in its order, its text and label, the predicted
    class and that class's probability."""
    with artifacts.staged_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(PREDICTION_COLUMNS)
        texts = (example["text"].decode("utf-8") for example in split.as_numpy_iterator())
        for text, label, guess, p in zip(texts, truth, predicted, probability, strict=True):
            writer.writerow((text, label, guess, f"{p:.6f}"))


def _forward(model: keras.Model, members: list) -> Callable:
    """ids -> (the model's logits, each member's) as one graph. Called eagerly, a batch of long texts would hold its
    intermediate tensors (the sub-word embeddings above all) about twice over."""

    @tf.function(reduce_retracing=True, autograph=False)
    def forward(ids):
        if not members:
            return model(ids, training=False), []
        member_logits = [member(ids, training=False) for member in members]
        return model.get_layer("ensemble")(member_logits), member_logits

    return forward


class _TopClass:
    """Per example only the top class's probability, whether it is right, and the true class's log-probability:
    what ECE, the reliability diagram and NLL need, in memory that grows with the examples alone."""

    def __init__(self):
        self.confidence, self.correct, self.log_likelihood = [], [], []

    def add(self, logits, truth):
        log_p = tf.nn.log_softmax(tf.cast(logits, tf.float64), axis=-1)
        self.confidence.append(tf.exp(tf.reduce_max(log_p, axis=-1)).numpy())
        self.correct.append(tf.argmax(log_p, axis=-1).numpy() == truth.numpy())
        self.log_likelihood.append(tf.gather(log_p, tf.cast(truth, tf.int32), batch_dims=1).numpy())

    def arrays(self):
        return np.concatenate(self.confidence), np.concatenate(self.correct)

    def scores(self, when: str) -> dict:
        return {f"ece_{when}": calibration.expected_calibration_error(*self.arrays()),
                f"nll_{when}": float(-np.concatenate(self.log_likelihood).mean())}  # fmt: skip

    def sums(self) -> dict:
        return calibration.bin_sums(*self.arrays())


class SentimentServing(tf.Module):
    """raw strings -> class probabilities and the most probable class name."""

    def __init__(self, model: keras.Model, vocab: Vocabulary, labels: tuple[str, ...]):
        super().__init__()
        self.model = model
        # Keras 3 layers do not expose every variable they read (e.g. the dropout seed-generator state recurrent
        # layers read even in inference) as a trackable attribute; tf.saved_model.save needs them all.
        self.model_variables = list(model.variables)
        self.vocab = vocab
        self.table = lookup_table(vocab)
        self.ngram_table = ngram_table(vocab)
        self.class_names = tf.Variable(list(labels), trainable=False, name="class_names")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        # A request is classified `inference_batch` texts at a time, one pass after the other, so that its memory
        # is bounded whatever the number of texts a client sends.
        def one_pass(start, stop):
            ids = encode_words(text[start:stop], self.vocab, self.table, self.ngram_table)
            return tf.nn.softmax(self.model(ids, training=False), axis=-1)

        probabilities = in_passes(tf.shape(text)[0], inference_batch(self.vocab), one_pass, self.class_names.shape[0])
        label = tf.gather(self.class_names, tf.argmax(probabilities, axis=-1, output_type=tf.int32))
        return {"probabilities": probabilities, "label": label}


TASK = SentimentTask()
